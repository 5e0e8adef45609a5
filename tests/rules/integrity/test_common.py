"""The shared pieces of the integrity kernels: segment searches against per-segment
`np.searchsorted`, the segmented running maximum and shift boundaries against loops, and
every kernel refusing rows that are not sorted by (point, ts)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.errors import RulesError
from rules.integrity.calibration import calibration_in_episodes, shift_calibration
from rules.integrity.common import segment_searchsorted, segmented_cummax
from rules.integrity.pairs import implausible_spans
from rules.integrity.relation import power_off_response, power_off_triggers
from rules.integrity.shifts import local_boundaries
from rules.integrity.silence import flagged_station_states, offline_spans, station_fault_spans
from rules.integrity.stuck import stuck_runs
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import T0

S = 1_000_000_000


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=6).map(sorted), min_size=1, max_size=5), st.data())
def test_segment_searchsorted_is_searchsorted_per_segment(segments: list[list[int]], data: st.DataObject) -> None:
    values = np.array([v for seg in segments for v in seg], np.int64)
    sizes = np.array([len(s) for s in segments])
    lo = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    hi = (lo + sizes).astype(np.int64)
    which = data.draw(st.lists(st.integers(0, len(segments) - 1), min_size=1, max_size=8))
    queries = data.draw(st.lists(st.integers(-1, 7), min_size=len(which), max_size=len(which)))
    for side in ("left", "right"):
        got = segment_searchsorted(values, lo[which], hi[which], np.array(queries, np.int64), side=side)
        expected = [int(lo[w]) + int(np.searchsorted(np.array(segments[w], np.int64), q, side=side))
                    for w, q in zip(which, queries, strict=True)]
        assert got.tolist() == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(-5, 5)), max_size=20))
def test_segmented_cummax_matches_a_loop(items: list[tuple[bool, int]]) -> None:
    start = np.array([i == 0 or s for i, (s, _) in enumerate(items)], np.bool_)
    values = np.array([v for _, v in items], np.int64)
    expected, best = [], 0
    for i, v in enumerate(values.tolist()):
        best = v if start[i] else max(best, v)
        expected.append(best)
    assert segmented_cummax(values, start).tolist() == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(-400, 400), st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York"]),
       st.sampled_from([(0, 8, 16), (6, 14, 22), (0,)]))
def test_local_boundaries_match_the_reference(days: int, tz: str, hours: tuple[int, ...]) -> None:
    lo = T0 + days * 86_400 * S
    assert local_boundaries(lo, lo + 3600 * S, tz, hours).tolist() == ref.local_starts(lo, lo + 3600 * S, tz, hours)


P = np.array([0, 0], np.int64)
T = np.array([T0 + S, T0], np.int64)  # one point, times going backwards
V = np.array([0.1, 0.2])
Z = np.zeros(2, np.int64)
B = np.zeros(2, np.bool_)
ONE = np.array([0], np.int64)
KERNELS: dict[str, Callable[[], object]] = {
    "offline_spans": lambda: offline_spans(P, T, n_points=1, now_ns=T0),
    "station_fault_spans": lambda: station_fault_spans(P, T, Z, n_stations=1, now_ns=T0),
    "flagged_station_states": lambda: flagged_station_states(P, T, Z, ONE, n_stations=1),
    "stuck_runs": lambda: stuck_runs(P, T, V, Z, point_mine=ONE, analog=np.ones(1, bool), methane=np.ones(1, bool)),
    "shift_calibration": lambda: shift_calibration(P, T, Z, now_ns=T0),
    "calibration_in_episodes": lambda: calibration_in_episodes(P, T, Z, point_face=ONE, episode_point=ONE,
                                                               episode_start=ONE, episode_end=ONE),
    "implausible_spans": lambda: implausible_spans(P, T, V, Z, upstream=ONE, downstream=ONE, n_points=1),
    "power_off_triggers": lambda: power_off_triggers(P, T, Z, B, episode_first_row=ONE, episode_last_row=ONE),
    "power_off_response": lambda: power_off_response(P, T, V, Z, trigger_point=ONE, trigger_ts=ONE,
                                                     relation_point=ONE, relation_feed=ONE, now_ns=T0),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_kernel_refuses_unsorted_rows(name: str) -> None:
    with pytest.raises(RulesError, match="sorted"):
        KERNELS[name]()


def test_rows_of_unequal_length_are_refused() -> None:
    with pytest.raises(RulesError, match="same length"):
        offline_spans(P, T[:1], n_points=1, now_ns=T0)
