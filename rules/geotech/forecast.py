"""Inverse-velocity (Fukuzono) failure-time forecast: the zero of a line fitted to 1/v.

rules.md §8: from orange up, the finding's evidence carries an inverse-velocity forecast of
the failure time: the zero of a straight line fitted to 1/v over the last 24 h. Before a
failure the velocity grows so that 1/v falls about linearly to zero (Fukuzono 1985); the time
the fitted line reaches zero is the forecast. Per reading, the fit is over the readings of its
point in (t − 24 h, t] with a positive, finite velocity v (the `rate` of each reading); the
forecast exists only when the line falls (slope < 0) — a steady or slowing slope has none
(``failure_ts`` −1). The fit's slope, intercept and r² are given with it (evidence); slope is
in (1/v) per unit of time, intercept is 1/v at the point's first reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import NS_PER_DAY
from rules.geotech.rate import least_squares, time_axis
from rules.geotech.windows import segment_starts

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

# A forecast further than this from its origin is no forecast (it would not fit in int64 ns).
_HORIZON_NS = float(100 * 365 * NS_PER_DAY)


@dataclass(frozen=True)
class ForecastParams:
    """Trailing window of the fit (rules.md §8: the last 24 h), the time unit of the fit, and
    the fewest readings a line is fitted to."""

    window_ns: int = NS_PER_DAY
    unit_ns: int = NS_PER_DAY
    min_points: int = 2


@dataclass(frozen=True, eq=False)
class Forecast:
    """Per reading: forecast failure time (int64 ns, −1 when none) and the fit it came from."""

    failure_ts: I64
    slope: F64
    intercept: F64
    r2: F64
    n: F64


def inverse_velocity_forecast(point_idx: I64, ts: I64, velocity: F64, start: I64, end: I64,
                              params: ForecastParams = ForecastParams()) -> Forecast:
    """Per window ``[start, end)`` (rows of one point, sorted by ts), the Fukuzono forecast."""
    v = np.asarray(velocity, np.float64)
    if len(v) != len(ts):
        raise RulesError("ts and velocity must have the same length")
    x, origin = time_axis(point_idx, ts, params.unit_ns)
    usable = np.isfinite(v) & (v > 0)
    with np.errstate(divide="ignore"):
        inv = np.where(usable, 1.0 / np.where(usable, v, 1.0), 0.0)
    fit = least_squares(x, inv, start, end, restart=segment_starts(point_idx), weight=usable,
                        min_points=params.min_points)
    e = np.asarray(end, np.int64) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        zero_ns = -fit.intercept / fit.slope * float(params.unit_ns)
    ok = (fit.slope < 0) & (np.abs(zero_ns) < _HORIZON_NS)
    failure = np.where(ok, origin[e] + np.rint(np.where(ok, zero_ns, 0.0)).astype(np.int64), -1)
    return Forecast(failure.astype(np.int64), fit.slope, fit.intercept, fit.r2, fit.n)
