"""over_capacity: the kernel against the loop reference, and the limit-of-10 edge cases by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.rule_ids import KNOWN
from rules.personnel.capacity import LEVEL_MAJOR, LEVEL_NAMES, RULE, OverCapacity, over_capacity
from rules.personnel.params import PersonnelParams
from rules.personnel.presence import head_counts
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import MIN, S, by_hand, kernel_presence, ref_presence
from tests.rules.personnel.strategies import T0, Reads, reads


def rows(o: OverCapacity) -> list[tuple[int, ...]]:
    return list(zip(o.key.tolist(), o.start.tolist(), o.end.tolist(), o.major_start.tolist(), o.peak.tolist(),
                    o.peak_ts.tolist(), o.limit.tolist(), strict=True))


def ref_rows(spans: list[ref.Span]) -> list[tuple[int, ...]]:
    return [(s.key, s.start, s.end, s.major_start, s.peak, s.peak_ts, s.limit) for s in spans]


@settings(max_examples=300)
@given(reads(), st.lists(st.integers(-1, 3), min_size=7, max_size=7), st.integers(-1, 4),
       st.sampled_from([5 * MIN, 0, S, 30 * MIN]), st.sampled_from([20, 0, 50, 100]))
def test_over_capacity_matches_reference(r: Reads, limits: list[int], mine_limit: int, min_ns: int, pct: int) -> None:
    params = PersonnelParams(over_capacity_min_ns=min_ns, major_excess_pct=pct)
    p, s = kernel_presence(r)
    intervals, stays = ref_presence(r)
    area = over_capacity(head_counts(p.area, p.start, p.end, p.is_open), np.array(limits), now_ns=r.now, params=params)
    expected = ref.over_capacity(ref.head_counts([(i.area, i.start, i.end) for i in intervals]), limits, r.now, min_ns, pct)
    assert rows(area) == ref_rows(expected)
    assert area.is_open.tolist() == [e.end == -1 for e in expected]
    assert area.level.tolist() == [2 if e.major_start >= 0 else 1 for e in expected]
    mine = over_capacity(head_counts(np.zeros(len(s), np.int64), s.start, s.end, s.is_open), np.array([mine_limit]),
                         now_ns=r.now, params=params)
    expected_mine = ref.over_capacity(ref.head_counts([(0, x.start, x.end) for x in stays]), [mine_limit], r.now,
                                      min_ns, pct)
    assert rows(mine) == ref_rows(expected_mine)


def crowd(n: int, seconds: int, now_min: float = 60) -> Reads:
    """n cards enter area 2 at minute 0 and leave through the shaft `seconds` later."""
    reads_ = [(c, 0.0, 2) for c in range(n)] + [(c, seconds / 60, 0) for c in range(n)]
    return by_hand(reads_, now_min=now_min)


@pytest.mark.parametrize(("cards", "level"), [(10, None), (11, "warning"), (12, "warning"), (13, "major")])
@pytest.mark.parametrize("seconds", [4 * 60 + 59, 5 * 60])
def test_a_limit_of_ten(cards: int, level: str | None, seconds: int) -> None:
    # rules.md §7 and the at-a-glance table: over 10 for >= 5 min is a finding; exactly 1.2 x 10
    # is still warning; 13 > 12 is major. 4 min 59 s is a surge, not a finding, whatever the count.
    r = crowd(cards, seconds)
    p, s = kernel_presence(r)
    limits = np.array([-1, -1, 10, -1, -1, -1, -1])
    for found in (over_capacity(head_counts(p.area, p.start, p.end, p.is_open), limits, now_ns=r.now),
                  over_capacity(head_counts(np.zeros(len(s), np.int64), s.start, s.end, s.is_open), np.array([10]),
                                now_ns=r.now)):
        if level is None or seconds < 5 * 60:
            assert len(found) == 0
            continue
        assert len(found) == 1
        assert LEVEL_NAMES[int(found.level[0])] == level
        assert (found.start[0], found.end[0], found.peak[0], found.peak_ts[0], found.limit[0]) == (
            T0, T0 + seconds * S, cards, T0, 10)


def test_an_open_span_fires_on_the_clock() -> None:
    limits = np.array([-1, -1, 10, -1, -1, -1, -1])

    def as_of(now_min: float) -> OverCapacity:
        p, _ = kernel_presence(crowd(13, 3600, now_min))
        return over_capacity(head_counts(p.area, p.start, p.end, p.is_open), limits, now_ns=T0 + round(now_min * MIN))

    assert len(as_of(5 - 1 / 60)) == 0
    found = as_of(5)
    assert found.is_open.tolist() == [True] and found.end.tolist() == [-1]
    assert found.level.tolist() == [LEVEL_MAJOR] and found.major_start.tolist() == [T0]


def test_a_span_whose_major_part_is_short_stays_warning() -> None:
    # 13 cards for 3 min, then 11 for 10 min: one span, over for 13 min, major for only 3.
    rows_ = [(c, 0.0, 2) for c in range(13)] + [(c, 3.0, 0) for c in (11, 12)] + [(c, 13.0, 0) for c in range(11)]
    r = by_hand(rows_, now_min=60)
    p, _ = kernel_presence(r)
    found = over_capacity(head_counts(p.area, p.start, p.end, p.is_open), np.array([-1, -1, 10, -1, -1, -1, -1]),
                          now_ns=r.now)
    assert LEVEL_NAMES[int(found.level[0])] == "warning" and found.major_start.tolist() == [-1]
    assert (found.start[0], found.end[0], found.peak[0]) == (T0, T0 + 13 * MIN, 13)


def test_the_rule_id_is_the_contracts() -> None:
    assert RULE in KNOWN
