"""Power-off relays and feed sensors: open while a methane point wired to them is at power-off."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from simulators.noise import F64, I64

# A relay opens and its feed sensor reads "no voltage" about 2 s after the
# methane reading that crossed the power-off threshold. Being longer than
# twice the reading jitter (±250 ms) it also keeps every window causal: the
# readings a relay reading depends on all lie in its own or earlier windows.
RELAY_DELAY_MS = 2_000
POWER_SWITCHES = ("1009", "1011", "1015")


@dataclass
class Trace:
    """A source's power-off state over the previous window, and the state before it."""

    before_prev: bool = False
    prev_ts: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    prev_st: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))

    def roll(self, cur_ts: I64, cur_st: NDArray[np.bool_]) -> None:
        """Move on one window: the current window becomes the previous one."""
        if self.prev_st.size:
            self.before_prev = bool(self.prev_st[-1])
        self.prev_ts, self.prev_st = cur_ts, cur_st


Source = tuple[Trace, I64, NDArray[np.bool_]]  # trace, this window's reading times and states


def relay_readings(ts: I64, sources: list[Source], normal: float, end_ms: int | None) -> tuple[I64, F64]:
    """The relay's periodic readings at `ts` plus one reading per change of state.

    Periodic readings show the state RELAY_DELAY_MS earlier; every change is
    also reported RELAY_DELAY_MS after the source reading that caused it, as a
    real switch sensor reports on change. Off is `1 - normal`.
    """
    union = np.unique(np.concatenate([np.concatenate([t.prev_ts, c]) for t, c, _ in sources] or [np.zeros(0, np.int64)]))
    off = np.zeros(union.shape, np.bool_)
    init = False
    for trace, cur_ts, cur_st in sources:
        t_all = np.concatenate([trace.prev_ts, cur_ts])
        st_all = np.concatenate([trace.prev_st, cur_st])
        if len(st_all) == 0:  # a source with no reading yet, others with some: its state before
            off |= trace.before_prev
        else:
            i = np.searchsorted(t_all, union, side="right") - 1
            off |= np.where(i >= 0, st_all[np.maximum(i, 0)], trace.before_prev)
        init |= trace.before_prev
    if off.size == 0:  # no source reading at all: every periodic reading shows the state before
        periodic_off = np.full(ts.shape, init, np.bool_)
    else:
        j = np.searchsorted(union, ts - RELAY_DELAY_MS, side="right") - 1
        periodic_off = np.where(j >= 0, off[np.maximum(j, 0)], init)
    # change reports, only for changes caused by this window's source readings
    prev = np.concatenate([[init], off[:-1]]) if off.size else off
    own = np.isin(union, np.concatenate([c for _, c, _ in sources] or [np.zeros(0, np.int64)]))
    change = (off != prev) & own
    ev_ts = union[change] + RELAY_DELAY_MS
    ev_off = off[change]
    if end_ms is not None:
        ev_off, ev_ts = ev_off[ev_ts < end_ms], ev_ts[ev_ts < end_ms]
    ev_ts = ev_ts + np.isin(ev_ts, ts).astype(np.int64)  # never two readings at one ms
    all_ts = np.concatenate([ts, ev_ts])
    all_off = np.concatenate([periodic_off, ev_off])
    order = np.argsort(all_ts, kind="stable")
    return all_ts[order], np.where(all_off[order], 1.0 - normal, normal)
