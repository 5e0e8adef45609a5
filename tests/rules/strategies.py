"""Hypothesis strategies for reading series: several points, gaps, duplicates, status bits,
values hovering at the thresholds, threshold versions, arrival out of order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

from rules.thresholds import ThresholdSet, ThresholdTable

S = 1_000_000_000
GAP = 300 * S  # the max_gap most rows carry
T0 = 1_795_392_000 * S  # 2026-11-23 UTC
# Steps between readings: duplicates (0), normal, exactly the gap, 1 ns over it, far over.
STEPS = [0, 30 * S, 60 * S, 60 * S, 240 * S, GAP, GAP + 1, 900 * S]
STATUS = [0] * 8 + [1, 2, 3, 4, 5, 8, 16, 32, 64, 128, 132]
UPPER_VALUES = [0.3, 0.79, 0.8, 0.81, 0.99, 1.0, 1.01, 1.49, 1.5, 1.51, 2.0, 3.0, 3.5, math.nan]
LOWER_VALUES = [21.0, 20.5, 20.49, 20.01, 20.0, 19.99, 19.5, 19.0, 18.9, math.nan]
UPPER_SETS = [
    ThresholdSet(alarm_hi=1.0),
    ThresholdSet(alarm_hi=1.0, clear_hi=0.8),
    ThresholdSet(alarm_hi=1.0, clear_hi=0.8, poweroff_hi=1.5),
    ThresholdSet(alarm_hi=1.5, poweroff_hi=1.5),
    ThresholdSet(alarm_hi=0.8, clear_hi=0.8, poweroff_hi=1.0),
]
LOWER_SETS = [
    ThresholdSet(alarm_lo=20.0),
    ThresholdSet(alarm_lo=20.0, clear_lo=20.5),
    ThresholdSet(alarm_lo=20.0, clear_lo=20.5, poweroff_lo=19.0),
]


@dataclass
class Series:
    """Readings sorted by (point, ts) plus their threshold versions."""

    point: NDArray[np.int64]
    ts: NDArray[np.int64]
    values: NDArray[np.float64]
    status: NDArray[np.int64]
    max_gap: NDArray[np.int64]
    version_point: NDArray[np.int64]
    version_from: NDArray[np.int64]
    table: ThresholdTable
    lower_by_point: NDArray[np.bool_]
    n_points: int


@st.composite
def series(draw: st.DrawFn, max_points: int = 4, max_rows: int = 40) -> Series:
    n_points = draw(st.integers(1, max_points))
    rows: list[tuple[int, int, float, int, int]] = []
    vsets: list[ThresholdSet] = []
    vpoint: list[int] = []
    vfrom: list[int] = []
    lower = []
    for p in range(n_points):
        is_lower = draw(st.booleans())
        lower.append(is_lower)
        n = draw(st.integers(0, max_rows))
        t = T0 + draw(st.integers(0, 10)) * 60 * S
        values = LOWER_VALUES if is_lower else UPPER_VALUES
        first = t
        times = []
        for _ in range(n):
            t += draw(st.sampled_from(STEPS))
            times.append(t)
            gap = draw(st.sampled_from([GAP, GAP, GAP, 240 * S]))
            rows.append((p, t, draw(st.sampled_from(values)), draw(st.sampled_from(STATUS)), gap))
        # Versions take effect before, inside or after the readings, often exactly on one.
        when = st.integers(first - 600 * S, t + 60 * S)
        if times:
            when = st.one_of(when, st.sampled_from(times))
        froms = sorted(draw(st.lists(when, min_size=0, max_size=3)))
        for f in froms:
            vpoint.append(p)
            vfrom.append(f)
            vsets.append(draw(st.sampled_from(LOWER_SETS if is_lower else UPPER_SETS)))
    # Arrival order is arbitrary; storage order is a stable sort by (point, ts).
    perm = draw(st.permutations(range(len(rows))))
    shuffled = [rows[i] for i in perm]
    arr = np.array([r[:2] for r in shuffled], dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((arr[:, 1], arr[:, 0]))
    ordered = [shuffled[i] for i in order]
    return Series(
        point=np.array([r[0] for r in ordered], np.int64),
        ts=np.array([r[1] for r in ordered], np.int64),
        values=np.array([r[2] for r in ordered], np.float64),
        status=np.array([r[3] for r in ordered], np.int64),
        max_gap=np.array([r[4] for r in ordered], np.int64),
        version_point=np.array(vpoint, np.int64),
        version_from=np.array(vfrom, np.int64),
        table=ThresholdTable.from_sets(vsets),
        lower_by_point=np.array(lower, np.bool_),
        n_points=n_points,
    )
