"""Hypothesis strategies for geotech series: several points of either direction, thresholds on a
grid the readings hit exactly, gaps, duplicate times, excluded rows, late (out-of-order) arrival."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from numpy.typing import NDArray

MS = 1_000_000
S = 1_000 * MS
MIN = 60 * S
H = 60 * MIN
DAY = 24 * H
T0 = 1_795_392_000 * S  # 2026-11-23 UTC
# Steps between a point's readings: duplicates (0), 1 ms, the usual periods, exactly one
# window (24 h) and 1 ns either side of it, and multi-day outages.
STEPS = [0, MS, MIN, 10 * MIN, 30 * MIN, H, H, 6 * H, DAY - 1, DAY, DAY + 1, 3 * DAY]
STATUS = [0] * 10 + [1, 4, 16, 128]
GRID = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # thresholds sit on it, readings hit them exactly
VALUES = [*GRID, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, -1.0, 6.0, math.nan]


@dataclass
class GeoSeries:
    """Readings sorted by (point, ts) — a stable sort of their arrival — and per point its
    thresholds (blue, yellow, orange, red; NaN absent) and direction."""

    point: NDArray[np.int64]
    ts: NDArray[np.int64]
    values: NDArray[np.float64]
    status: NDArray[np.int64]
    thresholds: list[tuple[float, float, float, float]]
    lower_worse: list[bool]


@st.composite
def thresholds(draw: st.DrawFn, lower_worse: bool) -> tuple[float, float, float, float]:
    picked = sorted(draw(st.lists(st.sampled_from(GRID), min_size=4, max_size=4, unique=True)),
                    reverse=lower_worse)
    # Some levels are not configured (rainfall has no blue, the angle none either).
    return tuple(math.nan if draw(st.integers(0, 5)) == 0 else v for v in picked)  # type: ignore[return-value]


@st.composite
def geo_series(draw: st.DrawFn, max_points: int = 4, max_rows: int = 30,
               values: st.SearchStrategy[float] | None = None, steps: list[int] | None = None,
               walk: bool = False) -> GeoSeries:
    n_points = draw(st.integers(1, max_points))
    rows: list[tuple[int, int, float, int]] = []
    ths, lower = [], []
    for p in range(n_points):
        lw = draw(st.booleans())
        lower.append(lw)
        ths.append(draw(thresholds(lw)))
        t = T0 + draw(st.integers(0, 10)) * MIN
        level = 0.0
        for _ in range(draw(st.integers(0, max_rows))):
            t += draw(st.sampled_from(steps or STEPS))
            if values is None:
                v = draw(st.sampled_from(VALUES))
            elif walk:
                level += draw(values)  # cumulative displacement: a walk of increments
                v = level
            else:
                v = draw(values)
            rows.append((p, t, v, draw(st.sampled_from(STATUS))))
    # Arrival is arbitrary (a logger uploads an hour late); storage is a stable sort by
    # (point, ts), so of two rows with one (point, ts) the earlier arrival comes first.
    perm = draw(st.permutations(range(len(rows))))
    arrived = [rows[i] for i in perm]
    order = sorted(range(len(arrived)), key=lambda i: (arrived[i][0], arrived[i][1]))
    stored = [arrived[i] for i in order]
    return GeoSeries(
        point=np.array([r[0] for r in stored], np.int64),
        ts=np.array([r[1] for r in stored], np.int64),
        values=np.array([r[2] for r in stored], np.float64),
        status=np.array([r[3] for r in stored], np.int64),
        thresholds=ths,
        lower_worse=lower,
    )


@dataclass
class MemberSteps:
    """Member step functions sorted by (member, ts) — repeats of a level, returns to none and
    several changes at one instant included — and each member's group."""

    key: NDArray[np.int64]
    ts: NDArray[np.int64]
    level: NDArray[np.int8]
    group_of_key: NDArray[np.int64]


@st.composite
def member_steps(draw: st.DrawFn, max_members: int = 12, max_groups: int = 3) -> MemberSteps:
    n_members = draw(st.integers(1, max_members))
    groups = [draw(st.integers(0, max_groups - 1)) for _ in range(n_members)]
    # Few instants, so members often change together; 1 ms apart from each other too.
    instants = [T0 + k for k in (0, MS, 2 * MS, S, S + MS, MIN, H)]
    rows = []
    for m in range(n_members):
        times = sorted(draw(st.lists(st.sampled_from(instants), max_size=6)))
        rows += [(m, t, draw(st.integers(0, 4))) for t in times]
    return MemberSteps(np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                       np.array([r[2] for r in rows], np.int8), np.array(groups, np.int64))
