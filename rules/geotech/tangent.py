"""The improved tangent angle of a displacement point over a trailing window, and its levels.

rules.md §8: α = arctan(ΔT/Δt) with T = S / v — S the cumulative displacement, v the point's
configured constant-velocity rate, T and t in the same time unit — over a trailing 24 h
window; levels 45° / 80° / 85° for yellow / orange / red (no blue). Over the window
(t − 24 h, t] of reading i, with j its first reading: ΔT = (S_i − S_j) / v and Δt = t_i − t_j,
both in the rate's unit (days for v in mm/day). α = 45° means moving exactly at the
constant-velocity rate; 90° is the vertical of an accelerating failure. A window with one
reading, or a point without a positive v, has no angle (NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import NS_PER_DAY
from rules.geotech.levels import LevelTable

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

# rules.md §8: improved tangent angle levels, yellow / orange / red (no blue level).
YELLOW_DEG, ORANGE_DEG, RED_DEG = 45.0, 80.0, 85.0
_DEG_PER_RAD = 180.0 / math.pi  # numpy's rad2deg constant, 180.0 / NPY_PI


@dataclass(frozen=True)
class TangentParams:
    """Trailing window (rules.md §8: 24 h) and the unit of v and of T, t (a day: v in mm/day)."""

    window_ns: int = NS_PER_DAY
    unit_ns: int = NS_PER_DAY


def tangent_ratio(ts: I64, displacement: F64, start: I64, end: I64, velocity: F64,
                  unit_ns: int = NS_PER_DAY) -> F64:
    """Per window ``[start, end)`` ending at its reading, ΔT/Δt = ((S_i − S_j) / v) / (Δt in
    units), i the window's last row and j its first; NaN for one reading or v <= 0."""
    t = np.asarray(ts, np.int64)
    s = np.asarray(displacement, np.float64)
    v = np.asarray(velocity, np.float64)
    j, i = np.asarray(start, np.int64), np.asarray(end, np.int64) - 1
    if len(t) != len(s) or len(v) != len(j) or len(i) != len(j):
        raise RulesError("ts and displacement, and start, end and velocity, must have the same lengths")
    with np.errstate(divide="ignore", invalid="ignore"):
        # In place: every temporary is a pass over fresh memory (the same operations, so the
        # same bits as ((s_i − s_j) / v) / ((t_i − t_j) / unit)).
        ratio = s[i]
        ratio -= s[j]
        ratio /= v
        d_t = t[i]
        d_t -= t[j]
        ratio /= d_t / float(unit_ns)
    ratio[~((i > j) & (v > 0))] = np.nan
    return ratio


def tangent_angle(ts: I64, displacement: F64, start: I64, end: I64, velocity: F64,
                  unit_ns: int = NS_PER_DAY) -> F64:
    """Per window, the improved tangent angle in degrees (see `tangent_ratio`)."""
    angle = tangent_ratio(ts, displacement, start, end, velocity, unit_ns)
    np.arctan(angle, out=angle)
    # np.degrees is x · (180/π) in one multiplication, bit for bit, but its loop is not
    # vectorised: the multiplication itself is ten times faster.
    np.multiply(angle, _DEG_PER_RAD, out=angle)
    return angle


def tangent_levels(n_points: int, yellow: float = YELLOW_DEG, orange: float = ORANGE_DEG,
                   red: float = RED_DEG) -> LevelTable:
    """The level table of the angle for ``n_points`` points (higher is worse; no blue)."""
    for deg in (yellow, orange, red):
        if not 0 < deg < 90 or math.isnan(deg):
            raise RulesError(f"a tangent-angle level must lie in (0°, 90°), got {deg}")
    return LevelTable.from_rows([(None, yellow, orange, red, False)] * n_points)
