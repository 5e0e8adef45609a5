"""The GB 50863 ladder: the sweep against the loop reference (points → quantity → pond), and the
named edge cases (3 versus 4 points at blue; 2 orange points at the same instant versus 1 ms
apart with no overlap)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from rules.errors import RulesError
from rules.geotech import BLUE, NONE, ORANGE, RED, YELLOW
from rules.geotech.ladder import GB50863, Rung, ladder
from rules.geotech.steps import Steps
from tests.rules.geotech import reference as ref
from tests.rules.geotech.strategies import MS, T0, MemberSteps, member_steps


def steps_of(rows: list[tuple[int, int, int]]) -> Steps:
    """Member steps from (member, ts, level) rows, sorted by (member, ts) as given."""
    n = len(rows)
    return Steps(np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
                 np.array([r[2] for r in rows], np.int8), np.arange(n, dtype=np.int64), np.zeros(n, np.bool_))


def as_ref(s: Steps) -> list[ref.Step]:
    return [ref.Step(k, t, lv, r) for k, t, lv, r in
            zip(s.key.tolist(), s.ts.tolist(), s.level.tolist(), s.raised.tolist(), strict=True)]


@settings(max_examples=300, deadline=None)
@given(member_steps())
def test_ladder_matches_reference(m: MemberSteps) -> None:
    inp = Steps(m.key, m.ts, m.level, np.arange(len(m.ts), dtype=np.int64), np.zeros(len(m.ts), np.bool_))
    got = ladder(inp, m.group_of_key)
    expected = ref.ladder(as_ref(inp), m.group_of_key.tolist())
    assert as_ref(got) == expected
    # `row` is the input step that completed the instant: the last of its group at that time.
    for g, t, row in zip(got.key.tolist(), got.ts.tolist(), got.row.tolist(), strict=True):
        same = [i for i in range(len(m.ts)) if m.group_of_key[m.key[i]] == g and m.ts[i] == t]
        assert row == same[-1]
    # The next rung: those groups as members of one pond (the same ladder across quantities).
    pond = ladder(got, np.zeros(max(int(m.group_of_key.max()) + 1, 1), np.int64))
    assert as_ref(pond) == ref.ladder(expected, [0] * (int(m.group_of_key.max()) + 1))


def at_blue(n: int) -> Steps:
    """n beach-length points all stepping to blue at T0 (none above blue)."""
    return steps_of([(p, T0, BLUE) for p in range(n)])


def test_three_points_at_blue_stay_blue() -> None:
    q = ladder(at_blue(3), np.zeros(3, np.int64))
    assert (q.ts.tolist(), q.level.tolist(), q.raised.tolist()) == ([T0], [BLUE], [False])


def test_four_points_at_blue_raise_the_quantity_to_yellow() -> None:
    q = ladder(at_blue(4), np.zeros(4, np.int64))
    assert (q.ts.tolist(), q.level.tolist(), q.raised.tolist()) == ([T0], [YELLOW], [True])
    # The fourth arriving 1 ms later raises it only then; one leaving drops it back to blue.
    later = steps_of([(0, T0, BLUE), (1, T0, BLUE), (2, T0, BLUE), (3, T0 + MS, BLUE), (3, T0 + 2 * MS, NONE)])
    q = ladder(later, np.zeros(4, np.int64))
    assert q.ts.tolist() == [T0, T0 + MS, T0 + 2 * MS]
    assert q.level.tolist() == [BLUE, YELLOW, BLUE]


def test_two_orange_points_at_the_same_instant_make_red() -> None:
    s = steps_of([(0, T0, ORANGE), (1, T0, ORANGE)])
    q = ladder(s, np.zeros(2, np.int64))
    assert (q.level.tolist(), q.raised.tolist()) == ([RED], [True])


def test_two_orange_points_1_ms_apart_without_overlap_stay_orange() -> None:
    # Point 0 is orange at T0 and back to none at T0 + 1 ms, the instant point 1 turns orange:
    # both changes apply together, so at no instant are two points orange.
    s = steps_of([(0, T0, ORANGE), (0, T0 + MS, NONE), (1, T0 + MS, ORANGE), (1, T0 + 2 * MS, NONE)])
    q = ladder(s, np.zeros(2, np.int64))
    assert (q.ts.tolist(), q.level.tolist()) == ([T0, T0 + 2 * MS], [ORANGE, NONE])
    assert not q.raised.any()
    # With 1 ms of overlap they are red for that millisecond.
    s = steps_of([(0, T0, ORANGE), (0, T0 + 2 * MS, NONE), (1, T0 + MS, ORANGE), (1, T0 + 3 * MS, NONE)])
    q = ladder(s, np.zeros(2, np.int64))
    assert q.level.tolist() == [ORANGE, RED, ORANGE, NONE]


def test_three_at_yellow_make_orange_and_the_highest_member_otherwise() -> None:
    s = steps_of([(0, T0, YELLOW), (1, T0, YELLOW), (2, T0, YELLOW), (3, T0, RED)])
    assert ladder(s, np.zeros(4, np.int64)).level.tolist() == [RED]  # red member beats the rung
    s = steps_of([(0, T0, YELLOW), (1, T0, ORANGE), (2, T0, BLUE)])
    assert ladder(s, np.zeros(3, np.int64)).level.tolist() == [ORANGE]  # highest member


def test_groups_are_kept_apart() -> None:
    # Four points at blue, but two in each quantity: neither quantity is raised.
    q = ladder(at_blue(4), np.array([0, 0, 1, 1]))
    assert (q.key.tolist(), q.level.tolist()) == ([0, 1], [BLUE, BLUE])


def test_rungs_are_parameters() -> None:
    assert (Rung(BLUE, 4, YELLOW), Rung(YELLOW, 3, ORANGE), Rung(ORANGE, 2, RED)) == GB50863
    q = ladder(at_blue(3), np.zeros(3, np.int64), rungs=(Rung(BLUE, 3, ORANGE),))
    assert q.level.tolist() == [ORANGE]
    with pytest.raises(RulesError, match="rung"):
        Rung(BLUE, 0, YELLOW)


def test_bad_input_is_refused() -> None:
    with pytest.raises(RulesError, match="sorted"):
        ladder(steps_of([(1, T0, BLUE), (0, T0, BLUE)]), np.zeros(2, np.int64))
    with pytest.raises(RulesError, match="group_of_key"):
        ladder(steps_of([(5, T0, BLUE)]), np.zeros(2, np.int64))
    assert len(ladder(Steps.empty(), np.zeros(0, np.int64))) == 0
