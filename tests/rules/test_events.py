"""Events: merging against the loop reference, scope keys, and the named edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import Episodes
from rules.errors import RulesError
from rules.events import Events, merge_events, scope_keys
from tests.rules import reference as ref

MIN = 60_000_000_000
GAP = 10 * MIN


def make_episodes(rows: list[tuple[int, int, int | None, float, int]],
                  lower: bool = False) -> Episodes:
    """(point, start, end or None for open, peak, level) per episode, peak at the start."""
    n = len(rows)
    start = np.array([r[1] for r in rows], np.int64)
    is_open = np.array([r[2] is None for r in rows], np.bool_)
    end = np.array([-1 if r[2] is None else r[2] for r in rows], np.int64)
    i64 = np.arange(n, dtype=np.int64)
    return Episodes(
        point_idx=np.array([r[0] for r in rows], np.int64), start=start, end=end,
        is_open=is_open, peak=np.array([r[3] for r in rows], np.float64), peak_ts=start.copy(),
        level=np.array([r[4] for r in rows], np.int8), lower=np.full(n, lower),
        version=i64, first_row=i64, last_row=i64, end_row=np.where(is_open, -1, i64),
        end_reason=np.where(is_open, 0, 1).astype(np.int8),
    )


episode_rows = st.lists(
    st.tuples(
        st.integers(0, 5),  # point
        st.integers(0, 60),  # start, minutes
        st.one_of(st.none(), st.integers(0, 15)),  # open, or length in minutes
        st.sampled_from([1.0, 1.2, 1.5, 2.0, 3.5]),
        st.sampled_from([1, 2]),
    ),
    max_size=25,
).map(lambda rows: [(p, s * MIN, None if d is None else (s + d) * MIN, pk, lv)
                    for p, s, d, pk, lv in rows])


@settings(max_examples=200, deadline=None)
@given(episode_rows, st.lists(st.integers(-1, 2), min_size=6, max_size=6),
       st.sampled_from(["point", "face", "mine"]), st.sampled_from([0, 5 * MIN, GAP]),
       st.booleans())
def test_events_match_reference(rows, faces, scope, gap, lower) -> None:  # type: ignore[no-untyped-def]
    eps = make_episodes(rows, lower)
    mines = np.array([0, 0, 0, 1, 1, 1], np.int64)
    keys = scope_keys(scope, np.array(faces, np.int64), mines)[eps.point_idx]
    got = merge_events(eps, keys, mines[eps.point_idx], gap_ns=gap)
    expected = ref.events(eps.start.tolist(), eps.end.tolist(), eps.is_open.tolist(),
                          keys.tolist(), mines[eps.point_idx].tolist(), gap)
    assert len(got) == len(expected)
    for k, ev in enumerate(expected):
        members = ev.members
        assert got.episodes_of(k).tolist() == members
        assert all(got.event_of_episode[m] == k for m in members)
        assert (got.scope[k], got.mine[k], got.start[k]) == (ev.scope, ev.mine, ev.start)
        assert bool(got.is_open[k]) == (ev.reach == float("inf"))
        assert got.end[k] == (-1 if got.is_open[k] else ev.reach)
        peaks = [eps.peak[m] for m in members]
        best = min(peaks) if lower else max(peaks)
        assert got.peak[k] == best
        assert got.peak_ts[k] == min(eps.peak_ts[m] for m in members if eps.peak[m] == best)
        assert got.level[k] == max(eps.level[m] for m in members)


def merged(rows: list[tuple[int, int, int | None, float, int]], faces: list[int]) -> Events:
    eps = make_episodes(rows)
    keys = scope_keys("face", np.array(faces, np.int64), np.zeros(len(faces), np.int64))
    return merge_events(eps, keys[eps.point_idx], np.zeros(len(eps), np.int64), gap_ns=GAP)


def test_nine_minutes_apart_on_one_point_is_one_event() -> None:
    ev = merged([(0, 0, 5 * MIN, 1.2, 1), (0, 14 * MIN, 16 * MIN, 1.6, 2)], [-1])
    assert len(ev) == 1 and ev.count.tolist() == [2]
    assert (ev.start[0], ev.end[0], ev.peak[0], ev.level[0]) == (0, 16 * MIN, 1.6, 2)


def test_exactly_ten_minutes_apart_is_one_event() -> None:
    assert len(merged([(0, 0, 5 * MIN, 1.2, 1), (0, 15 * MIN, 16 * MIN, 1.2, 1)], [-1])) == 1


def test_eleven_minutes_apart_on_one_point_is_two_events() -> None:
    ev = merged([(0, 0, 5 * MIN, 1.2, 1), (0, 16 * MIN, 17 * MIN, 1.6, 2)], [-1])
    assert len(ev) == 2 and ev.start.tolist() == [0, 16 * MIN]


def test_two_points_of_one_face_overlapping_are_one_event() -> None:
    ev = merged([(0, 0, 30 * MIN, 1.2, 1), (1, 10 * MIN, 50 * MIN, 1.3, 1)], [7, 7])
    assert len(ev) == 1 and ev.scope.tolist() == [7] and ev.end.tolist() == [50 * MIN]


def test_two_points_of_two_faces_are_two_events() -> None:
    ev = merged([(0, 0, 30 * MIN, 1.2, 1), (1, 10 * MIN, 50 * MIN, 1.3, 1)], [7, 8])
    assert len(ev) == 2 and sorted(ev.scope.tolist()) == [7, 8]


def test_points_without_face_are_their_own_scope() -> None:
    ev = merged([(0, 0, 30 * MIN, 1.2, 1), (1, 10 * MIN, 50 * MIN, 1.3, 1)], [-1, -1])
    assert len(ev) == 2


def test_open_episode_keeps_the_event_open() -> None:
    ev = merged([(0, 0, None, 1.2, 1), (1, 600 * MIN, 601 * MIN, 1.3, 1)], [3, 3])
    assert len(ev) == 1 and bool(ev.is_open[0]) and ev.end[0] == -1


def test_unknown_scope_is_refused() -> None:
    with pytest.raises(RulesError, match="allowed: point, face, mine"):
        scope_keys("district", np.zeros(1, np.int64), np.zeros(1, np.int64))  # type: ignore[arg-type]
