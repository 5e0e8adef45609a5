"""restricted_area: the kernel against the loop reference, and visits by hand."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.rule_ids import KNOWN
from rules.personnel.restricted import RULE, RestrictedVisits, restricted_visits
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import MIN, by_hand, kernel_presence, ref_presence
from tests.rules.personnel.strategies import T0, Reads, reads


def rows(v: RestrictedVisits) -> list[tuple[int, int, int, int, int]]:
    return list(zip(v.card.tolist(), v.area.tolist(), v.interval.tolist(), v.start.tolist(), v.end.tolist(), strict=True))


@settings(max_examples=300)
@given(reads(), st.lists(st.booleans(), min_size=7, max_size=7))
def test_restricted_matches_reference(r: Reads, flags: list[bool]) -> None:
    p, _ = kernel_presence(r)
    intervals, _ = ref_presence(r)
    got = restricted_visits(p, np.array(flags))
    expected = ref.restricted(intervals, flags)
    assert rows(got) == expected
    assert got.is_open.tolist() == [e == -1 for *_, e in expected]


def test_one_finding_per_visit() -> None:
    # Area 5 is restricted. Card 0: in at 2, into 5 (read twice), back to 2, into 5 again, and
    # still there. Card 1 goes from 5 straight up the shaft.
    flags = np.array([False, False, False, False, False, True, False])
    r = by_hand([(0, 0, 2), (0, 1, 5), (0, 2, 5), (0, 3, 2), (0, 4, 5), (1, 0, 5), (1, 7, 0)], now_min=10)
    p, _ = kernel_presence(r)
    v = restricted_visits(p, flags)
    t = [T0 + m * MIN for m in range(8)]
    assert [(c, a, s, e) for c, a, _, s, e in rows(v)] == [(0, 5, t[1], t[3]), (0, 5, t[4], -1), (1, 5, t[0], t[7])]


def test_the_rule_id_is_the_contracts() -> None:
    assert RULE in KNOWN
