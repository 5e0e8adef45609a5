"""24 h rainfall and trailing windows: kernels against the loop reference, and a rainfall sum of
exactly 50 mm over 24 h (the rainstorm class, yellow)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.geotech import NONE, YELLOW
from rules.geotech import windows as windows_module
from rules.geotech.levels import point_levels
from rules.geotech.rainfall import RAINSTORM_MM, RainfallParams, rainfall_24h, rainfall_levels
from rules.geotech.windows import trailing_bounds, usable_rows
from tests.rules.geotech import reference as ref
from tests.rules.geotech.strategies import DAY, MIN, T0, GeoSeries, geo_series

RAIN = st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.7, 1.0, 2.5, 10.0, 12.3, 25.0, 49.9, 50.0, math.nan])


def kept(s: GeoSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = usable_rows(s.point, s.ts, s.values, s.status, exclude_mask=DEFAULT_EXCLUDE_MASK)
    return s.point[keep], s.ts[keep], s.values[keep]


@settings(max_examples=200, deadline=None)
@given(geo_series(values=RAIN), st.sampled_from([DAY, 60 * MIN, 1]))
def test_trailing_bounds_match_reference(s: GeoSeries, window: int) -> None:
    p, t, _ = kept(s)
    start, end = trailing_bounds(p, t, window)
    for i in range(len(t)):
        w = ref.window(p.tolist(), t.tolist(), i, window)
        assert (int(start[i]), int(end[i])) == (w[0], w[-1] + 1) and w == list(range(w[0], w[-1] + 1))


@settings(max_examples=200, deadline=None)
@given(geo_series(values=RAIN))
def test_rainfall_matches_reference_exactly(s: GeoSeries) -> None:
    p, t, v = kept(s)
    got = rainfall_24h(p, t, v)
    assert got.tolist() == ref.rainfall(p.tolist(), t.tolist(), v.tolist(), DAY, 1000)
    levels = point_levels(p, got, rainfall_levels(len(s.thresholds)))
    assert levels.tolist() == [YELLOW if x >= 50.0 else NONE for x in got.tolist()]


def test_keys_split_into_batches_give_the_same_bounds() -> None:
    # With a tiny key limit every point is its own searchsorted batch: same bounds. At 120 min
    # the window (60, 120] holds 61 and 120; at 61, (1, 61] holds 30 and 61.
    p = np.repeat(np.arange(5, dtype=np.int64), 4)
    t = T0 + np.tile(np.array([0, 30, 61, 120], np.int64) * MIN, 5)
    whole = trailing_bounds(p, t, 60 * MIN)
    saved = windows_module._KEY_LIMIT
    windows_module._KEY_LIMIT = 2 * 181 * MIN  # each point's keys span 180 min + 1 ns
    try:
        split = trailing_bounds(p, t, 60 * MIN)
    finally:
        windows_module._KEY_LIMIT = saved
    assert whole[0].tolist() == split[0].tolist() == [0, 0, 1, 2, 4, 4, 5, 6, 8, 8, 9, 10, 12, 12, 13, 14, 16, 16, 17, 18]


def rain_of(hours: list[float], mm: list[float]) -> list[float]:
    t = T0 + (np.array(hours) * 60 * MIN).astype(np.int64)
    return rainfall_24h(np.zeros(len(t), np.int64), t, np.array(mm)).tolist()


def test_a_rainfall_sum_of_exactly_50_mm_over_24_h_is_yellow() -> None:
    assert RAINSTORM_MM == 50.0
    # 20 mm then 30 mm twelve hours later: 50 mm in (t − 24 h, t], exactly the rainstorm class.
    sums = rain_of([0, 12], [20.0, 30.0])
    assert sums == [20.0, 50.0]
    levels = point_levels(np.zeros(2, np.int64), np.array(sums), rainfall_levels(1))
    assert levels.tolist() == [NONE, YELLOW]
    # 500 tips of 0.1 mm, one every 2 minutes (16 h 38 min): exactly 50.0, still yellow.
    t = T0 + np.arange(500, dtype=np.int64) * 2 * MIN
    tips = rainfall_24h(np.zeros(500, np.int64), t, np.full(500, 0.1))
    assert tips[-1] == 50.0 and tips[-2] == 49.9
    assert point_levels(np.zeros(1, np.int64), tips[-1:], rainfall_levels(1)).tolist() == [YELLOW]


def test_the_window_is_24_h_open_at_its_start() -> None:
    # A reading exactly 24 h earlier is out of (t − 24 h, t]; 1 ns less than 24 h is in.
    assert rain_of([0, 24], [20.0, 30.0]) == [20.0, 30.0]
    t = np.array([T0, T0 + DAY - 1], np.int64)
    assert rainfall_24h(np.zeros(2, np.int64), t, np.array([20.0, 30.0])).tolist() == [20.0, 50.0]


def test_the_window_is_a_parameter() -> None:
    t = np.array([T0, T0 + 2 * 60 * MIN], np.int64)
    one_hour = RainfallParams(window_ns=60 * MIN)
    assert rainfall_24h(np.zeros(2, np.int64), t, np.array([20.0, 30.0]), one_hour).tolist() == [20.0, 30.0]
