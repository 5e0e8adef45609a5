"""Late and out-of-order delivery: a fraction of messages is held back and released later, shuffled.

Real links drop out and gateways back-fill; the rules must re-evaluate the
windows late data touches, so the simulators can deliver some data late.
"""

from __future__ import annotations

import heapq

import numpy as np

from simulators.errors import SimulatorError
from simulators.render import Message


class LateShuffler:
    """Holds each message back with probability `fraction` for 1-10 min of simulated time."""

    def __init__(self, fraction: float, seed: int, min_delay_ms: int = 60_000, max_delay_ms: int = 600_000) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise SimulatorError(f"late fraction {fraction}: allowed 0 to 1")
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise SimulatorError("late delays: need 0 <= min <= max")
        self.fraction = fraction
        self.min_delay_ms, self.max_delay_ms = min_delay_ms, max_delay_ms
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._held: list[tuple[int, int, Message]] = []
        self._n = 0
        self.held_total = 0

    def push(self, messages: list[Message], now_ms: int) -> list[Message]:
        """The messages to publish now: those not held, then held ones due by `now_ms`."""
        if self.fraction == 0.0:
            return messages
        out: list[Message] = []
        hold = self._rng.random(len(messages)) < self.fraction
        delay = self._rng.integers(self.min_delay_ms, self.max_delay_ms + 1, len(messages))
        for m, h, d in zip(messages, hold.tolist(), delay.tolist(), strict=True):
            if h:
                self._n += 1
                self.held_total += 1
                heapq.heappush(self._held, (m.ts_ms + d, self._n, m))
            else:
                out.append(m)
        while self._held and self._held[0][0] <= now_ms:
            out.append(heapq.heappop(self._held)[2])
        return out

    def flush(self) -> list[Message]:
        """Everything still held, in random order."""
        rest = [m for _, _, m in self._held]
        self._held.clear()
        order = self._rng.permutation(len(rest)).tolist()
        return [rest[i] for i in order]

    @property
    def pending(self) -> int:
        return len(self._held)
