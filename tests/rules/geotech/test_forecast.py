"""Inverse-velocity (Fukuzono) forecast: the kernel against the loop reference, and a worked
example. Compared with a tolerance for the reason given in test_rate.py (prefix sums against
a loop's own sums); the failure time to within a millionth of how far ahead it lies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.geotech.forecast import ForecastParams, inverse_velocity_forecast
from rules.geotech.windows import trailing_bounds, usable_rows
from tests.rules.geotech import reference as ref
from tests.rules.geotech.strategies import DAY, MIN, T0, GeoSeries, H, S, geo_series

# Velocities (mm/day) as the rate kernel gives them: rising, steady, none, negative, missing.
VELOCITY = st.sampled_from([0.5, 1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0, 0.0, -1.0, math.inf])
STEPS = [0, S, MIN, 30 * MIN, H, 6 * H, DAY - 1, DAY, DAY + 1, 3 * DAY]


def close(g: float, e: float, tol: float) -> bool:
    return (math.isnan(g) and math.isnan(e)) or abs(g - e) <= tol


@settings(max_examples=300, deadline=None)
@given(geo_series(values=VELOCITY, steps=STEPS))
def test_forecast_matches_reference(s: GeoSeries) -> None:
    keep = usable_rows(s.point, s.ts, np.where(np.isinf(s.values), 0.0, s.values), s.status,
                       exclude_mask=DEFAULT_EXCLUDE_MASK)
    p, t, v = s.point[keep], s.ts[keep], s.values[keep]
    start, end = trailing_bounds(p, t, DAY)
    got = inverse_velocity_forecast(p, t, v, start, end)
    expected = ref.forecast(p.tolist(), t.tolist(), v.tolist(), DAY, DAY)
    origin = {int(q): int(t[np.argmax(p == q)]) for q in set(p.tolist())}
    for i, (f, slope, intercept, r2) in enumerate(expected):
        # The tolerance is relative to the window's own scale: a fit that is flat in truth
        # comes out ±1e-12 of rise over run in either sum, not 0 in both.
        used = [j for j in range(int(start[i]), int(end[i])) if math.isfinite(v[j]) and v[j] > 0]
        xs = [(int(t[j]) - origin[int(p[i])]) / DAY for j in used]
        ys = [1 / float(v[j]) for j in used]
        scale = (max(ys) - min(ys)) / (max(xs) - min(xs)) if len(used) > 1 and max(xs) > min(xs) else 0.0
        slope_tol = 1e-9 * (abs(slope) + scale) if not math.isnan(slope) else 0.0
        assert close(float(got.slope[i]), slope, slope_tol)
        if not math.isnan(intercept):
            assert close(float(got.intercept[i]), intercept, 1e-9 * abs(intercept) + slope_tol * max(xs))
        assert close(float(got.r2[i]), r2, 1e-9)
        assert (got.failure_ts[i] == -1) == (f == -1)
        if f != -1:
            # The zero, −intercept / slope, carries both their rounding, magnified by how far
            # ahead it lies: a millionth of the lead (86 ms a day ahead) is far below any use.
            lead = abs(f - int(t[i]))
            assert abs(int(got.failure_ts[i]) - f) <= 1_000 + lead * 1e-6


def test_worked_example_forecast() -> None:
    # 1/v falls by 0.25 day/mm per day: readings every 6 h over one day,
    #   t (d)   0      0.25    0.5    0.75    1.0
    #   1/v     1      0.9375  0.875  0.8125  0.75      (v = 1 / that, mm/day)
    # Window of the 1.0 d reading: (0, 1.0 d] holds the last four; the line through them is
    # 1/v = 1 − 0.25 t (slope −0.25, intercept 1 at the first reading, r² = 1): zero at t = 4 d.
    t = T0 + np.array([0, 6, 12, 18, 24], np.int64) * H
    inv = np.array([1.0, 0.9375, 0.875, 0.8125, 0.75])
    p = np.zeros(5, np.int64)
    start, end = trailing_bounds(p, t, DAY)
    f = inverse_velocity_forecast(p, t, 1.0 / inv, start, end)
    assert f.slope[4] == pytest.approx(-0.25, rel=1e-12)
    assert f.intercept[4] == pytest.approx(1.0, rel=1e-12)
    assert f.r2[4] == pytest.approx(1.0, rel=1e-12)
    assert f.n[4] == 4
    assert abs(int(f.failure_ts[4]) - (T0 + 4 * DAY)) < 1_000  # within a microsecond
    assert f.failure_ts[0] == -1  # one reading: no line


def test_steady_or_slowing_creep_has_no_forecast() -> None:
    t = T0 + np.arange(5, dtype=np.int64) * 6 * H
    p = np.zeros(5, np.int64)
    start, end = trailing_bounds(p, t, DAY)
    steady = inverse_velocity_forecast(p, t, np.full(5, 3.3), start, end)
    assert steady.failure_ts.tolist() == [-1] * 5 and steady.slope[4] == 0.0
    slowing = inverse_velocity_forecast(p, t, np.array([5.0, 4.0, 3.0, 2.0, 1.0]), start, end)
    assert slowing.failure_ts.tolist() == [-1] * 5 and slowing.slope[4] > 0


def test_non_positive_velocities_are_left_out_of_the_fit() -> None:
    t = T0 + np.arange(5, dtype=np.int64) * 6 * H
    p = np.zeros(5, np.int64)
    start, end = trailing_bounds(p, t, DAY)
    v = 1.0 / np.array([1.0, 0.9375, 0.875, 0.8125, 0.75])
    v[2] = -3.0  # a rebound: no inverse velocity
    f = inverse_velocity_forecast(p, t, v, start, end, ForecastParams())
    assert f.n[4] == 3 and abs(int(f.failure_ts[4]) - (T0 + 4 * DAY)) < 1_000
