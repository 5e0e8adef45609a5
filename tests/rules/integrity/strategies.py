"""Hypothesis strategies for the integrity kernels: several points, random gaps (exactly at
and 1 ns over the limits), duplicate times, status bits, few distinct values (so equal runs
and exact comparisons happen), and arrival in any order, stored by a stable sort."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

S = 1_000_000_000
MIN = 60 * S
T0 = 1_795_392_000 * S  # 2026-11-23 00:00 UTC (08:00 in Shanghai: a shift boundary)
PERIOD = 30 * S
# Steps: duplicates, the period, exactly 3 and 2 periods (the offline and as-of limits),
# 1 ns over them, the 60 s response window and 1 s over, the 5 min cap, long silences.
STEPS = [0, PERIOD, PERIOD, PERIOD, 2 * PERIOD, 2 * PERIOD + 1, 3 * PERIOD, 3 * PERIOD + 1,
         60 * S, 61 * S, 5 * MIN, 5 * MIN + 1, 20 * MIN, 60 * MIN]
STATUS = [0] * 8 + [1, 2, 4, 4, 4, 16, 20, 128]
VALUES = [0.0, 0.0, 0.12, 0.12, 0.12, 0.4, 0.7, 1.0, 1.5, math.nan]


@dataclass
class Rows:
    """Readings sorted by (point, ts)."""

    point: NDArray[np.int64]
    ts: NDArray[np.int64]
    values: NDArray[np.float64]
    status: NDArray[np.int64]
    n_points: int

    def lists(self) -> tuple[list[int], list[int], list[float], list[int]]:
        return self.point.tolist(), self.ts.tolist(), self.values.tolist(), self.status.tolist()


@st.composite
def rows(draw: st.DrawFn, max_points: int = 4, max_rows: int = 30, steps: list[int] | None = None,
         values: list[float] | None = None, statuses: list[int] | None = None,
         start_spread: int = 10 * MIN) -> Rows:
    n_points = draw(st.integers(1, max_points))
    out: list[tuple[int, int, float, int]] = []
    for p in range(n_points):
        t = T0 + draw(st.integers(0, start_spread // S)) * S
        for _ in range(draw(st.integers(0, max_rows))):
            t += draw(st.sampled_from(steps or STEPS))
            out.append((p, t, draw(st.sampled_from(values or VALUES)),
                        draw(st.sampled_from(statuses or STATUS))))
    # Arrival order is arbitrary; storage order is a stable sort by (point, ts).
    perm = draw(st.permutations(range(len(out))))
    shuffled = [out[i] for i in perm]
    keys = np.array([r[:2] for r in shuffled], dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    ordered = [shuffled[i] for i in order]
    return Rows(np.array([r[0] for r in ordered], np.int64), np.array([r[1] for r in ordered], np.int64),
                np.array([r[2] for r in ordered], np.float64), np.array([r[3] for r in ordered], np.int64),
                n_points)
