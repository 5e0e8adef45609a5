"""Presence: the vectorized kernel and head counts against the loop references, and the model's edges."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from rules.errors import RulesError
from rules.personnel.presence import area_counts, find_presence, head_counts, mine_counts
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import MIN, by_hand, interval_rows, kernel_presence, ref_presence, stay_rows
from tests.rules.personnel.strategies import T0, Reads, reads


@settings(max_examples=300)
@given(reads())
def test_presence_matches_reference(r: Reads) -> None:
    got, got_stays = kernel_presence(r)
    intervals, stays = ref_presence(r)
    assert interval_rows(got) == [(i.card, i.area, i.start, i.end, i.stay) for i in intervals]
    assert stay_rows(got_stays) == [(s.card, s.start, s.end) for s in stays]
    assert got.is_open.tolist() == [i.end == -1 for i in intervals]
    assert got_stays.is_open.tolist() == [s.end == -1 for s in stays]
    # The row that started each interval is a stored read of that card, area and time.
    assert r.card[got.start_row].tolist() == got.card.tolist()
    assert r.area[got.start_row].tolist() == got.area.tolist()
    assert r.ts[got.start_row].tolist() == got.start.tolist()


@settings(max_examples=300)
@given(reads())
def test_head_counts_match_reference(r: Reads) -> None:
    got, stays = kernel_presence(r)
    intervals, ref_stays = ref_presence(r)
    per_area = area_counts(got)
    expected = ref.head_counts([(i.area, i.start, i.end) for i in intervals])
    assert list(zip(per_area.key.tolist(), per_area.time.tolist(), per_area.count.tolist(), strict=True)) == expected
    mine = mine_counts(stays)
    expected_mine = ref.head_counts([(0, s.start, s.end) for s in ref_stays])
    assert list(zip(mine.key.tolist(), mine.time.tolist(), mine.count.tolist(), strict=True)) == expected_mine
    # Summed over areas, the area counts are the mine count at every step (one card, one area).
    for t in mine.time.tolist():
        total = sum(int(c[np.searchsorted(tt, t, side="right") - 1]) if np.searchsorted(tt, t, side="right") else 0
                    for tt, c in (per_area.of(a) for a in range(7)))
        assert total == int(mine.count[np.searchsorted(mine.time, t, side="right") - 1])


def test_the_model_by_hand() -> None:
    # Card 0: enters at area 2, re-read there, moves to 3, leaves through shaft 0, a shaft read
    # above ground changes nothing, re-enters at 4 and is still there.
    # Card 1: two stations read it at one instant: the first stored (area 5) wins; then it is
    # silent for 6 h and stays underground.
    r = by_hand([(0, 0, 2), (0, 1, 2), (0, 2, 3), (0, 3, 0), (0, 4, 1), (0, 5, 4),
                 (1, 0, 5), (1, 0, 6)], now_min=6 * 60)
    p, s = kernel_presence(r)
    T = [T0 + m * MIN for m in range(6)]
    assert interval_rows(p) == [(0, 2, T[0], T[2], 0), (0, 3, T[2], T[3], 0), (0, 4, T[5], -1, 1), (1, 5, T[0], -1, 2)]
    assert stay_rows(s) == [(0, T[0], T[3]), (0, T[5], -1), (1, T[0], -1)]


def test_reads_after_now_are_not_seen_yet() -> None:
    r = by_hand([(0, 0, 2), (0, 10, 0)], now_min=5)
    p, s = kernel_presence(r)
    assert p.end.tolist() == [-1] and s.is_open.tolist() == [True]


def test_a_first_shaft_read_is_above_ground() -> None:
    r = by_hand([(0, 0, 0), (0, 1, 1)], now_min=5)
    p, s = kernel_presence(r)
    assert len(p) == 0 and len(s) == 0


@pytest.mark.parametrize(("card", "ts", "area"), [
    ([0, 0], [2, 1], [2, 2]),  # time back within a card, same area
    ([0, 0, 0], [1, 3, 2], [2, 3, 3]),  # time back within a card, after a move
    ([0, 1, 0], [1, 2, 3], [2, 2, 2]),  # a card again after another one
    ([1, 0], [1, 2], [2, 2]),  # cards descending
])
def test_unsorted_reads_are_refused(card: list[int], ts: list[int], area: list[int]) -> None:
    with pytest.raises(RulesError, match="sorted"):
        find_presence(np.array(card), np.array(ts), np.array(area), shaft=np.array([True, False, False, False]),
                      now_ns=5)


def test_an_unknown_area_is_refused() -> None:
    with pytest.raises(RulesError, match="area"):
        find_presence(np.array([0]), np.array([1]), np.array([3]), shaft=np.array([True, False]), now_ns=5)


def test_empty() -> None:
    z = np.zeros(0, np.int64)
    p, s = find_presence(z, z, z, shaft=np.array([True]), now_ns=0)
    assert len(p) == 0 and len(s) == 0
    assert len(head_counts(z, z, z, np.zeros(0, bool))) == 0


def test_three_stations_at_one_instant_the_first_stored_wins() -> None:
    # At minute 1 stations of areas 3, 4, 4 read card 0: it moves to 3 (first stored); the read
    # at minute 2 in area 4 moves it again (it is compared with area 3, not with the repeats);
    # the shaft read at that same minute is a repeat too, so it leaves only at minute 3.
    r = by_hand([(0, 0, 2), (0, 1, 3), (0, 1, 4), (0, 1, 4), (0, 2, 4), (0, 2, 0), (0, 3, 0)], now_min=5)
    p, s = kernel_presence(r)
    T = [T0 + m * MIN for m in range(4)]
    assert interval_rows(p) == [(0, 2, T[0], T[1], 0), (0, 3, T[1], T[2], 0), (0, 4, T[2], T[3], 0)]
    assert stay_rows(s) == [(0, T[0], T[3])]


def test_head_counts_beyond_the_packed_sort() -> None:
    # Times far apart do not fit key, time and sign in one int64: the lexsort fallback answers.
    big = 4 * 10**18
    key = np.array([0, 1, 1, 0], np.int64)
    start = np.array([0, 5, big - 10, big - 20], np.int64)
    end = np.array([big, -1, big, big - 5], np.int64)
    is_open = end == -1
    got = head_counts(key, start, end, is_open)
    expected = ref.head_counts(list(zip(key.tolist(), start.tolist(), end.tolist(), strict=True)))
    assert list(zip(got.key.tolist(), got.time.tolist(), got.count.tolist(), strict=True)) == expected
