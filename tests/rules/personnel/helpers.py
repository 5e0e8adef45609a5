"""Shared by the personnel tests: kernel outputs as plain tuples, and reads written by hand."""

from __future__ import annotations

import numpy as np

from rules.personnel.presence import Presence, Stays, find_presence
from tests.rules.personnel import reference as ref
from tests.rules.personnel.strategies import SHAFT, Reads

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN


def kernel_presence(r: Reads, shaft: list[bool] = SHAFT) -> tuple[Presence, Stays]:
    return find_presence(r.card, r.ts, r.area, shaft=np.array(shaft), now_ns=r.now)


def ref_presence(r: Reads, shaft: list[bool] = SHAFT) -> tuple[list[ref.Interval], list[ref.Stay]]:
    return ref.presence(r.arrival, shaft, r.now)


def interval_rows(p: Presence) -> list[tuple[int, int, int, int, int]]:
    return list(zip(p.card.tolist(), p.area.tolist(), p.start.tolist(), p.end.tolist(), p.stay.tolist(), strict=True))


def stay_rows(s: Stays) -> list[tuple[int, int, int]]:
    return list(zip(s.card.tolist(), s.start.tolist(), s.end.tolist(), strict=True))


def by_hand(rows: list[tuple[int, float, int]], now_min: float) -> Reads:
    """Reads (card, minutes after T0, area) in arrival order, now in minutes after T0."""
    from tests.rules.personnel.strategies import T0

    arrival = [(c, T0 + round(m * MIN), a) for c, m, a in rows]
    arr = np.array(arrival, dtype=np.int64).reshape(-1, 3)
    order = np.lexsort((arr[:, 1], arr[:, 0]))
    times = [t for _, t, _ in arrival] or [T0]
    return Reads(arrival, arr[order, 0].copy(), arr[order, 1].copy(), arr[order, 2].copy(),
                 max((c for c, _, _ in rows), default=-1) + 1, T0 + round(now_min * MIN), min(times), max(times))
