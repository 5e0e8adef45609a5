"""Displacement rate, improved tangent angle and cumulative displacement: kernels against the
loop reference, and a worked example computed by hand.

The rate is compared with a tolerance, not to the bit: the kernel sums by prefix
differences (Σx over the window = P[end] − P[start]) while the reference sums each window's
own centred terms in a loop, so the two round differently (about 1e-12 relative here; the
kernel recomputes ill-conditioned windows directly, see `rules.geotech.rate`). The tangent
ratio ΔT/Δt uses the same float operations in the same order in both, so it is compared
exactly; the angle, by a tolerance of a few ulps, because numpy's vectorized arctan and
libm's atan may differ in the last bit (they do for about 4 in 10 000 arguments).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.geotech import NONE, ORANGE, YELLOW
from rules.geotech import rate as rate_module
from rules.geotech.levels import point_levels
from rules.geotech.rate import PER_DAY, PER_HOUR, RateParams, cumulative_exceeds, displacement_rate, least_squares
from rules.geotech.tangent import tangent_angle, tangent_levels, tangent_ratio
from rules.geotech.windows import trailing_bounds, usable_rows
from tests.rules.geotech import reference as ref
from tests.rules.geotech.strategies import DAY, MIN, T0, GeoSeries, H, S, geo_series

# Increments of cumulative displacement (mm): creep, pauses, a jump, a little rebound.
CREEP = st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 7.5, -0.3, math.nan])
# Sampling of displacement points: 1 s to hours, duplicates, exactly a window, outages.
DISP_STEPS = [0, S, MIN, 10 * MIN, 30 * MIN, H, H - 1, H + 1, 6 * H, DAY - 1, DAY, DAY + 1, 3 * DAY]


def kept(s: GeoSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = usable_rows(s.point, s.ts, s.values, s.status, exclude_mask=DEFAULT_EXCLUDE_MASK)
    return s.point[keep], s.ts[keep], s.values[keep]


def close(got: list[float], expected: list[float], rel: float, abs_: float) -> bool:
    return all((math.isnan(g) and math.isnan(e)) or math.isclose(g, e, rel_tol=rel, abs_tol=abs_)
               for g, e in zip(got, expected, strict=True))


@settings(max_examples=300, deadline=None)
@given(geo_series(values=CREEP, steps=DISP_STEPS, walk=True), st.sampled_from([PER_DAY, PER_HOUR]))
def test_rate_matches_reference(s: GeoSeries, params: RateParams) -> None:
    p, t, v = kept(s)
    got = displacement_rate(p, t, v, params).tolist()
    expected = ref.rate(p.tolist(), t.tolist(), v.tolist(), params.window_ns, params.unit_ns)
    assert [math.isnan(g) for g in got] == [math.isnan(e) for e in expected]
    # Displacements are tens of mm; 1e-9 mm per unit of absolute slack covers a flat window
    # whose prefix differences leave rounding noise instead of an exact 0.
    assert close(got, expected, 1e-9, 1e-9)


@settings(max_examples=300, deadline=None)
@given(geo_series(values=CREEP, steps=DISP_STEPS, walk=True),
       st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.7, 0.0, -1.0]), min_size=4, max_size=4))
def test_tangent_matches_reference(s: GeoSeries, v_by_point: list[float]) -> None:
    p, t, d = kept(s)
    start, end = trailing_bounds(p, t, DAY)
    v = np.array(v_by_point)[p]
    ratio = tangent_ratio(t, d, start, end, v).tolist()
    expected = ref.tangent_ratio(p.tolist(), t.tolist(), d.tolist(), v_by_point, DAY, DAY)
    assert [math.isnan(x) for x in ratio] == [math.isnan(x) for x in expected]
    assert [x for x in ratio if not math.isnan(x)] == [x for x in expected if not math.isnan(x)]
    angle = tangent_angle(t, d, start, end, v).tolist()
    assert close(angle, [math.degrees(math.atan(x)) for x in expected], 1e-14, 1e-13)


def test_worked_example_rate_and_angle() -> None:
    # One slope point, a reading every 6 h, cumulative displacement S in mm:
    #   row   t        S
    #   0     0 h     10
    #   1     6 h     12
    #   2    12 h     15
    #   3    18 h     19
    #   4    24 h     24
    t = T0 + np.array([0, 6, 12, 18, 24], np.int64) * H
    disp = np.array([10.0, 12.0, 15.0, 19.0, 24.0])
    p = np.zeros(5, np.int64)
    # Windows (t − 24 h, t]: the 0 h reading is exactly 24 h before row 4, so it is out.
    start, end = trailing_bounds(p, t, DAY)
    assert start.tolist() == [0, 0, 0, 0, 1] and end.tolist() == [1, 2, 3, 4, 5]
    # Rate at row 4, least squares over rows 1..4, x in days since the first reading:
    #   x = 0.25, 0.5, 0.75, 1.0        mean x = 0.625
    #   S = 12, 15, 19, 24              mean S = 17.5
    #   x − x̄ = −0.375, −0.125, 0.125, 0.375
    #   S − S̄ = −5.5, −2.5, 1.5, 6.5
    #   Sxy = 2.0625 + 0.3125 + 0.1875 + 2.4375 = 5.0
    #   Sxx = 0.140625 + 0.015625 + 0.015625 + 0.140625 = 0.3125
    #   rate = Sxy / Sxx = 16 mm/day
    # Row 3 (rows 0..3): x̄ = 0.375, S̄ = 14, Sxy = 1.5 + 0.25 + 0.125 + 1.875 = 3.75 → 12 mm/day.
    # Row 2 (rows 0..2): x̄ = 0.25, Sxy = (−0.25)(−7/3) + 0 + (0.25)(8/3) = 1.25, Sxx = 0.125 → 10.
    # Row 1 (rows 0..1): (12 − 10) / 0.25 = 8.  Row 0: one reading, no line.
    rate = displacement_rate(p, t, disp, PER_DAY)
    assert math.isnan(rate[0])
    assert rate[1:].tolist() == pytest.approx([8.0, 10.0, 12.0, 16.0], rel=1e-12)
    # Improved tangent angle, constant-velocity rate v = 2 mm/day, T = S / v in days:
    #   row 4: first reading of its window is row 1 (6 h)
    #     ΔT = (24 − 12) / 2 = 6 d,  Δt = 24 h − 6 h = 0.75 d,  ΔT/Δt = 8
    #     α = arctan 8 = 82.8749836510982°  → orange (80° ≤ α < 85°)
    #   row 3: window from row 0: ΔT = (19 − 10) / 2 = 4.5 d, Δt = 0.75 d → 6 → 80.53767779197439° orange
    #   row 2: ΔT = 2.5 d, Δt = 0.5 d → 5 → 78.69006752597979° yellow (45° ≤ α < 80°)
    #   row 1: ΔT = 1 d, Δt = 0.25 d → 4 → 75.96375653207353° yellow
    #   row 0: one reading, no angle
    v = np.full(5, 2.0)
    assert tangent_ratio(t, disp, start, end, v)[1:].tolist() == [4.0, 5.0, 6.0, 8.0]
    angle = tangent_angle(t, disp, start, end, v)
    assert math.isnan(angle[0])
    assert angle[1:].tolist() == pytest.approx(
        [75.96375653207353, 78.69006752597979, 80.53767779197439, 82.8749836510982], rel=1e-14)
    levels = point_levels(p[1:], angle[1:], tangent_levels(1))
    assert levels.tolist() == [YELLOW, YELLOW, ORANGE, ORANGE]
    # Cumulative displacement against a 3 m slope: 6×10⁻³ × 3 m = 18 mm; above from 19 mm.
    assert cumulative_exceeds(p, disp, np.array([3.0])).tolist() == [False, False, False, True, True]


def test_tangent_levels_at_exact_angles() -> None:
    # ΔT = Δt is exactly 45°: yellow; just below is none (there is no blue for the angle).
    lv = point_levels(np.zeros(3, np.int64), np.array([44.999, 45.0, 85.0]), tangent_levels(1))
    assert lv.tolist() == [NONE, YELLOW, 4]
    t = T0 + np.array([0, 12], np.int64) * H
    angle = tangent_angle(t, np.array([0.0, 1.0]), np.array([0, 0]), np.array([1, 2]), np.array([2.0, 2.0]))
    assert angle[1] == 45.0  # moving exactly at the constant-velocity rate


def test_cumulative_limit_is_strict() -> None:
    # Exactly 6×10⁻³ × 10 m = 60 mm is not above; NaN height: no limit.
    got = cumulative_exceeds(np.array([0, 0, 1]), np.array([60.0, 60.001, 1e6]), np.array([10.0, math.nan]))
    assert got.tolist() == [False, True, False]


def test_rate_after_an_outage_is_precise() -> None:
    # Ten days of creep at 1 mm/h read every 10 min, an outage, then two readings 1 s apart:
    # the last window holds those two alone (the condition check recomputes it directly).
    k = np.arange(1440, dtype=np.int64)
    t = np.append(T0 + k * 10 * MIN, [T0 + 300 * H, T0 + 300 * H + S])
    d = np.append(k / 6.0, [400.0, 400.001])
    rate = displacement_rate(np.zeros(len(t), np.int64), t, d, PER_HOUR)
    assert rate[1439] == pytest.approx(1.0, rel=1e-12)
    assert math.isnan(rate[1440])
    assert rate[1441] == pytest.approx(0.001 * 3600, rel=1e-9)


def test_prefix_sums_restart_per_point_without_cutting_a_window() -> None:
    # Three points of 3000 minute readings: each its own prefix group, so sums
    # restart at point boundaries; every window must still see all of its own rows.
    rng = np.random.default_rng(3)
    p = np.repeat(np.arange(3, dtype=np.int64), 3000)
    t = T0 + np.tile(np.arange(3000, dtype=np.int64), 3) * MIN
    d = np.cumsum(rng.uniform(0.0, 0.1, len(t)))
    got = displacement_rate(p, t, d, PER_DAY)
    for i in (0, 1, 1439, 1440, 2999, 3000, 3001, 4500, 5999, 6000, 8999):
        w = ref.window(p.tolist(), t.tolist(), i, DAY) if i < 50 else \
            [j for j in range(max(0, i - 1500), i + 1) if p[j] == p[i] and t[i] - DAY < t[j]]
        origin = int(t[ref.first_of_point(p.tolist(), i)])
        expected = ref.line_fit([(int(t[j]) - origin) / DAY for j in w], [float(d[j]) for j in w])[0]
        assert close([float(got[i])], [expected], 1e-9, 1e-9), i


def test_prefix_groups_start_only_at_point_boundaries() -> None:
    # The safety net of direct recomputation would hide a group cut inside a point, so the
    # grouping is checked on its own: prefix sums of ones count up from 1 at each group start.
    sizes = [3000, 3000, 3000, 5, 7, 4100, 1]
    restart = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
    out = rate_module._segmented_prefix(np.ones(sum(sizes)), rate_module._groups(restart, sum(sizes)))
    group_starts = set(np.flatnonzero(out == 1.0).tolist())
    assert group_starts <= set(restart.tolist()) and 0 in group_starts
    # Each group runs to the first boundary at least 64 rows on: the 5 and 7 join the 4100.
    assert group_starts == {0, 3000, 6000, 9000, 13112}


def test_least_squares_kernel_over_given_windows() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    y = np.array([1.0, 3.0, 5.0, 7.0])
    fit = least_squares(x, y, np.array([0, 1, 2]), np.array([4, 3, 3]))
    assert fit.slope[:2].tolist() == [2.0, 2.0] and fit.intercept[:2].tolist() == [1.0, 1.0]
    assert fit.r2[0] == pytest.approx(1.0) and math.isnan(fit.slope[2]) and fit.n.tolist() == [4, 2, 1]
    # A flat window: slope exactly 0, no r².
    flat = least_squares(x, np.full(4, 0.3), np.array([0]), np.array([4]))
    assert flat.slope[0] == 0.0 and math.isnan(flat.r2[0])
