"""Counter-based randomness: reproducible, independent of how a range is cut, well spread."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.noise import key, normal, smooth, uniform, uniform1


def test_uniform_is_a_function_of_stream_and_counter() -> None:
    c = np.arange(1_000, 2_000, dtype=np.int64)
    a = uniform(key(7, "P1", "x"), c)
    assert np.array_equal(a, uniform(key(7, "P1", "x"), c))
    assert not np.array_equal(a, uniform(key(8, "P1", "x"), c))
    assert not np.array_equal(a, uniform(key(7, "P2", "x"), c))
    assert (a >= 0).all() and (a < 1).all()


@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=1, max_value=300),
    st.integers(min_value=0, max_value=299),
)
def test_any_cut_of_a_counter_range_gives_the_same_numbers(start: int, n: int, cut: int) -> None:
    """Windows of any length must see the same random numbers (chunk independence)."""
    c = np.arange(start, start + n, dtype=np.int64)
    cut = min(cut, n)
    whole = uniform(12345, c)
    parts = np.concatenate([uniform(12345, c[:cut]), uniform(12345, c[cut:])])
    assert np.array_equal(whole, parts)
    assert uniform1(12345, start) == whole[0]


def test_distributions_are_plausible() -> None:
    c = np.arange(200_000, dtype=np.int64)
    u = uniform(key(1, "u"), c)
    assert abs(u.mean() - 0.5) < 0.005
    assert abs(np.histogram(u, bins=10, range=(0, 1))[0] / c.size - 0.1).max() < 0.005
    z = normal(key(1, "n"), c)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01


def test_smooth_noise_is_bounded_and_continuous() -> None:
    t = np.arange(0, 86_400_000, 30_000, dtype=np.int64)
    s = smooth(key(3, "s"), t, 1_200_000)
    assert s.min() >= -1.0 and s.max() <= 1.0
    assert np.abs(np.diff(s)).max() < 0.1  # 30 s steps on 20 min features: no jumps
    assert s.std() > 0.2
