"""Outstation states: each station reports its run state every minute (0 ok; scenarios 1, 2, 9)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from minewatch.registry import Mine, Registry
from simulators.model import DEFAULT_CHUNK_MS, MAX_JITTER_MS
from simulators.noise import I64, key, uniform, uniform1
from simulators.scenario import Scenario, StationDown
from simulators.timebase import as_ms, windows

STATE_PERIOD_MS = 60_000


@dataclass(frozen=True, slots=True)
class StationBatch:
    """One mine's station states in one window, sorted by (ts, station); indexes `stations`."""

    mine: str
    stations: tuple[str, ...]
    station: NDArray[np.int32]
    ts_ms: I64
    state: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.ts_ms.size)


class StationModel:
    """The outstations of one mine."""

    def __init__(
        self,
        mine: Mine,
        seed: int,
        start_ms: int,
        end_ms: int | None,
        scenario: Scenario | None = None,
    ) -> None:
        self.mine, self.seed, self.start_ms, self.end_ms = mine, seed, start_ms, end_ms
        self.stations = tuple(s.code for s in mine.stations)
        self.phase = [int(uniform1(key(seed, s, "state-phase"), 0) * STATE_PERIOD_MS) for s in self.stations]
        events = (scenario or Scenario()).events
        self.down = [[e for e in events if isinstance(e, StationDown) and e.station == s] for s in self.stations]

    def window(self, a: int, b: int) -> StationBatch:
        """State reports whose nominal minute falls in [a, b)."""
        parts: list[tuple[int, I64, NDArray[np.int32]]] = []
        hi = self.end_ms - 1 if self.end_ms is not None else np.iinfo(np.int64).max
        for i, code in enumerate(self.stations):
            ph = self.phase[i]
            k = np.arange(-((ph - a) // STATE_PERIOD_MS), -((ph - b) // STATE_PERIOD_MS), dtype=np.int64)
            jit = np.rint((uniform(key(self.seed, code, "state-jitter"), k) - 0.5) * 2 * MAX_JITTER_MS)
            ts = np.clip(k * STATE_PERIOD_MS + ph + jit.astype(np.int64), self.start_ms, hi)
            state = np.zeros(ts.shape, np.int32)
            for e in self.down[i]:
                s0, s1 = e.start_ms(self.start_ms), e.end_ms(self.start_ms)
                state[(ts >= s0) & (ts < s1)] = e.state
            parts.append((i, ts, state))
        if not parts:
            z = np.zeros(0, np.int64)
            return StationBatch(self.mine.code, self.stations, z.astype(np.int32), z, z.astype(np.int32))
        station = np.concatenate([np.full(t.size, i, np.int32) for i, t, _ in parts])
        ts = np.concatenate([t for _, t, _ in parts])
        state = np.concatenate([s for _, _, s in parts])
        order = np.lexsort((station, ts))
        return StationBatch(self.mine.code, self.stations, station[order], ts[order], state[order])


def generate_stations(
    registry: Registry,
    seed: int,
    start: datetime | int,
    end: datetime | int | None,
    scenario: Scenario | None = None,
    *,
    chunk_ms: int = DEFAULT_CHUNK_MS,
) -> Iterator[StationBatch]:
    """Per-mine station-state batches of the whole registry, window by window."""
    s, e = as_ms(start), (as_ms(end) if end is not None else None)
    models = [StationModel(m, seed, s, e, scenario) for m in registry.mines]
    for a, b in windows(s, e, chunk_ms):
        for model in models:
            batch = model.window(a, b)
            if len(batch):
                yield batch
