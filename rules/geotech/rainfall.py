"""24 h rainfall: the trailing sum of a rain gauge's readings, each the rain since the previous one.

rules.md §8: a rain gauge's reading is the rain fallen since its previous reading, in mm; the
service sums them over a trailing (t − 24 h, t] window (a reading exactly 24 h earlier is out),
and the sum is the gauge's 24 h rainfall, a quantity whose yellow level is the rainstorm
class, 50 mm / 24 h. Its level then comes from `levels.point_levels` like any higher-is-worse
quantity (`rainfall_levels` builds that table).

The sum is exact: readings are counted in integer units of 1/1000 mm (`UNITS_PER_MM`, far finer
than any gauge's 0.1–0.5 mm bucket) and summed in int64. Summed as floats, 500 tips of 0.1 mm
come to 50.00000000000044 mm, and a rolling sum by prefix differences lands on either side of
50 depending on what came before — a storm exactly at the rainstorm class would be judged by
rounding, and the kernel would not agree with a plain loop to the last bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import NS_PER_DAY
from rules.geotech.levels import LevelTable
from rules.geotech.windows import trailing_bounds

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

# rules.md §8: yellow at rainstorm class (暴雨), 50 mm in 24 h.
RAINSTORM_MM = 50.0
# Integer counting units per mm: 1 µm, so any gauge resolution (0.1, 0.2, 0.5 mm) is exact.
UNITS_PER_MM = 1000


@dataclass(frozen=True)
class RainfallParams:
    """The trailing window (rules.md §8: 24 h) and the counting resolution."""

    window_ns: int = NS_PER_DAY
    units_per_mm: int = UNITS_PER_MM


def rolling_sum(units: I64, start: I64, end: I64) -> I64:
    """Per window ``[start, end)``, the exact sum of integer ``units`` (prefix differences)."""
    u = np.asarray(units, dtype=np.int64)
    prefix = np.zeros(len(u) + 1, np.int64)
    np.cumsum(u, out=prefix[1:])
    return prefix[np.asarray(end, np.int64)] - prefix[np.asarray(start, np.int64)]


def to_units(rain_mm: F64, units_per_mm: int = UNITS_PER_MM) -> I64:
    """Rain in mm as integer counting units (rounded to the nearest unit)."""
    return np.rint(np.asarray(rain_mm, dtype=np.float64) * units_per_mm).astype(np.int64)


def rainfall_24h(point_idx: I64, ts: I64, rain_mm: F64, params: RainfallParams = RainfallParams()) -> F64:
    """Per reading (sorted by (gauge, ts), one per instant), the rain of its gauge over
    (t − window, t], in mm."""
    if len(rain_mm) != len(ts):
        raise RulesError("ts and rain_mm must have the same length")
    start, end = trailing_bounds(point_idx, ts, params.window_ns)
    total = rolling_sum(to_units(rain_mm, params.units_per_mm), start, end)
    # Division, not multiplication by 0.001: a whole number of mm comes out exact (50000 → 50.0).
    return total / float(params.units_per_mm)


def rainfall_levels(n_gauges: int, yellow_mm: float = RAINSTORM_MM) -> LevelTable:
    """The default level table of ``n_gauges`` rain gauges: yellow at the rainstorm class, the
    other levels absent until a gauge's own configuration sets them (rules.md §8)."""
    return LevelTable.from_rows([(None, yellow_mm, None, None, False)] * n_gauges)
