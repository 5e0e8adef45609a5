"""A point's warning level at each reading: the highest of its four thresholds the reading reaches.

rules.md §8: per point, four thresholds blue < yellow < orange < red (in order of severity)
are configured with the quantity's direction — higher is worse (reservoir water level, 24 h
rainfall, displacement, rate, angle) or lower is worse (safety freeboard, dry beach length,
phreatic-line burial depth: shallower is worse). A point's level at a reading is the highest
threshold that reading *reaches*: at or above it when higher is worse, at or below it when
lower is worse — a reading exactly at a threshold is at that level, in both directions. An
absent threshold (NaN) is never reached; the level is the highest *reached*, so a point with
only yellow configured goes from none straight to yellow. A NaN value reaches nothing
(`windows.usable_rows` drops such rows before this kernel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import LEVELS

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class LevelTable:
    """Per point index: its blue, yellow, orange and red thresholds (NaN where absent) and
    whether lower is worse. The registry's `GeoLevels` of each point, as arrays."""

    blue: F64
    yellow: F64
    orange: F64
    red: F64
    lower_worse: Bools

    def __post_init__(self) -> None:
        n = len(self.lower_worse)
        if any(len(a) != n for a in self.thresholds):
            raise RulesError("a level table needs one value per point in every column")

    def __len__(self) -> int:
        return len(self.lower_worse)

    @property
    def thresholds(self) -> tuple[F64, F64, F64, F64]:
        """The four columns, blue first."""
        return self.blue, self.yellow, self.orange, self.red

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[float | None, float | None, float | None, float | None, bool]]) -> LevelTable:
        """From one ``(blue, yellow, orange, red, lower_worse)`` per point; None is absent."""
        cols = [np.array([np.nan if r[k] is None else r[k] for r in rows], np.float64) for k in range(4)]
        return cls(cols[0], cols[1], cols[2], cols[3], np.array([bool(r[4]) for r in rows], np.bool_))


def point_levels(point_idx: I64, values: F64, table: LevelTable) -> I8:
    """Per reading, its point's level 0..4 (none … red) by that point's thresholds and direction."""
    p = np.asarray(point_idx, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if len(p) != len(v):
        raise RulesError("point_idx and values must have the same length")
    if len(p) and (int(p.min()) < 0 or int(p.max()) >= len(table)):
        raise RulesError(f"a reading's point index is outside the level table of {len(table)} points")
    # Lower-is-worse points compare −value ≥ −threshold: negation is exact, so this is value ≤
    # threshold to the last bit, and one comparison serves both directions.
    sign = np.where(table.lower_worse, -1.0, 1.0)
    signed_thr = [column * sign for column in table.thresholds]
    # Most readings reach no threshold: find the few that reach the mildest configured one
    # (a reading that reaches none of them is at none), and judge only those four times.
    with np.errstate(invalid="ignore"):
        mildest = np.fmin.reduce(np.stack(signed_thr), axis=0)  # NaN only where none is configured
    signed = v * sign[p]
    rows = np.flatnonzero(signed >= mildest[p])
    level = np.zeros(len(p), np.int8)
    if len(rows) == 0:
        return level
    sv, sp = signed[rows], p[rows]
    found = np.zeros(len(rows), np.int8)
    for k, column in zip(LEVELS, signed_thr, strict=True):
        # Ascending k, so the last assignment is the highest threshold reached (thresholds
        # need not be monotone for this to hold; NaN compares False: never reached).
        found[sv >= column[sp]] = k
    level[rows] = found
    return level
