"""Hypothesis strategies for card reads: several cards and areas, duplicates, same-time reads at two
stations, re-entries through the shaft, arrival out of order, and a now inside or after the data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN
T0 = 1_795_392_000 * S  # 2026-11-23 00:00 UTC = 08:00 in Asia/Shanghai
# Steps between a card's reads: duplicates / same-time reads (0), 1 s, and the edges of every
# duration the rules speak of (5 min, 30 min, 10 h), one second either side.
STEPS = [0, 0, S, MIN, 299 * S, 300 * S, 301 * S, 29 * MIN, 30 * MIN, 31 * MIN, 2 * HOUR, 10 * HOUR, 10 * HOUR + S]
# Areas: 0 and 1 are shafts; 2..6 underground, faces and restricted flags drawn per example.
N_AREAS = 7
SHAFT = [True, True, False, False, False, False, False]


@dataclass
class Reads:
    """Card reads in arrival order, and the same sorted by (card, ts) stably (storage order)."""

    arrival: list[tuple[int, int, int]]
    card: NDArray[np.int64]
    ts: NDArray[np.int64]
    area: NDArray[np.int64]
    n_cards: int
    now: int
    first: int  # the earliest read's time
    last: int  # the latest read's time


@st.composite
def reads(draw: st.DrawFn, max_cards: int = 6, max_reads: int = 14) -> Reads:
    n_cards = draw(st.integers(1, max_cards))
    rows: list[tuple[int, int, int]] = []
    for card in range(n_cards):
        t = T0 + draw(st.sampled_from([0, MIN, 30 * MIN, 5 * HOUR]))
        for _ in range(draw(st.integers(0, max_reads))):
            t += draw(st.sampled_from(STEPS))
            # Underground areas more often than shafts, so cards go down, move and come back up.
            area = draw(st.sampled_from([0, 1, 2, 2, 3, 3, 4, 5, 6]))
            rows.append((card, t, area))
    perm = draw(st.permutations(range(len(rows))))
    arrival = [rows[i] for i in perm]
    arr = np.array([r for r in arrival], dtype=np.int64).reshape(-1, 3)
    order = np.lexsort((arr[:, 1], arr[:, 0]))  # stable: arrival order among equal keys
    first = min((r[1] for r in rows), default=T0)
    last = max((r[1] for r in rows), default=T0)
    now = draw(st.one_of(st.just(last), st.just(last + 20 * HOUR), st.integers(first - MIN, last + 11 * HOUR),
                         st.sampled_from([r[1] for r in rows] or [T0])))
    return Reads(arrival, arr[order, 0].copy(), arr[order, 1].copy(), arr[order, 2].copy(), n_cards, now, first, last)


@st.composite
def intervals(draw: st.DrawFn, around: Reads, max_n: int = 3) -> list[tuple[int, int]]:
    """Spans (start, end or -1) near the reads, often starting or ending exactly on a read."""
    times = sorted({t for _, t, _ in around.arrival}) or [T0]
    when = st.one_of(st.sampled_from(times), st.integers(around.first - HOUR, around.last + HOUR),
                     st.sampled_from(times).map(lambda t: t + S), st.sampled_from(times).map(lambda t: t - S))
    out = []
    for _ in range(draw(st.integers(0, max_n))):
        s = draw(when)
        e = -1 if draw(st.booleans()) else s + draw(st.integers(1, 12 * HOUR))
        out.append((s, e))
    return out
