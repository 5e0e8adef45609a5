"""Trailing window bounds: the sampled search of `rules.geotech.windows` against a binary search
per query and the loop reference, on series with the shapes that defeat its guesses (point
starts, duplicates, outages, irregular periods) and on long steady ones where the guesses hold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.geotech import windows
from rules.geotech.windows import trailing_bounds
from tests.rules.geotech import reference as ref

S = 1_000_000_000


@st.composite
def sorted_series(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Readings sorted by (point, ts): per point a run of steps drawn from a few shapes."""
    points, times = [], []
    for p in range(draw(st.integers(1, 4))):
        t = draw(st.integers(0, 10 * S))
        for _ in range(draw(st.integers(0, 120))):
            points.append(p)
            times.append(t)
            t += draw(st.sampled_from([0, 1, 60 * S, 60 * S, 60 * S, 61 * S, 3_600 * S, 7 * S]))
    return np.array(points, np.int64), np.array(times, np.int64)


@settings(max_examples=300, deadline=None)
@given(sorted_series(), st.sampled_from([1, 60 * S, 300 * S, 3_600 * S, 86_400 * S]))
def test_right_ranks_is_searchsorted(series: tuple[np.ndarray, np.ndarray], window_ns: int) -> None:
    point, ts = series
    key = point * (10**15) + ts
    query = key - window_ns
    assert np.array_equal(windows._right_ranks(key, query), np.searchsorted(key, query, side="right"))


@settings(max_examples=200, deadline=None)
@given(sorted_series(), st.sampled_from([1, 60 * S, 3_600 * S]))
def test_trailing_bounds_match_the_loop(series: tuple[np.ndarray, np.ndarray], window_ns: int) -> None:
    point, ts = series
    start, end = trailing_bounds(point, ts, window_ns)
    for i in range(len(ts)):
        rows = ref.window(point.tolist(), ts.tolist(), i, window_ns)
        assert (int(start[i]), int(end[i])) == ((rows[0], rows[-1] + 1) if rows else (i, i + 1))


def test_steady_series_with_rare_breaks() -> None:
    rng = np.random.default_rng(5)
    n = 200_000
    point = np.repeat(np.arange(40, dtype=np.int64), n // 40)
    step = rng.choice(np.array([60 * S, 0, 3_600 * S, 59 * S]), p=[0.996, 0.002, 0.001, 0.001], size=n)
    ts = np.cumsum(step)
    for window_ns in (3_600 * S, 86_400 * S):
        start, _ = trailing_bounds(point, ts, window_ns)
        expected = np.empty(n, np.int64)
        for a in range(0, n, n // 40):
            b = a + n // 40
            expected[a:b] = np.searchsorted(ts[a:b], ts[a:b] - window_ns, side="right") + a
        assert np.array_equal(start, expected)
