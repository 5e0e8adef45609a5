"""overtime: the kernel against the loop reference, the strict limit, the clock, and a late shaft read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.rule_ids import KNOWN
from rules.errors import RulesError
from rules.personnel.overtime import RULE, Overtime, overtime
from rules.personnel.params import PersonnelParams
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import HOUR, MIN, S, by_hand, kernel_presence, ref_presence
from tests.rules.personnel.strategies import T0, Reads, reads


def rows(o: Overtime) -> list[tuple[int, int, int, int]]:
    return list(zip(o.card.tolist(), o.stay.tolist(), o.start.tolist(), o.end.tolist(), strict=True))


@settings(max_examples=300)
@given(reads(), st.sampled_from([8 * HOUR, 30 * MIN, 299 * S]), st.sampled_from([2 * HOUR, 0, 1 * S]))
def test_overtime_matches_reference(r: Reads, shift: int, grace: int) -> None:
    _, stays = kernel_presence(r)
    _, ref_stays = ref_presence(r)
    got = overtime(stays, shift_ns=shift, now_ns=r.now, params=PersonnelParams(overtime_grace_ns=grace))
    expected = ref.overtime(ref_stays, shift + grace, r.now)
    assert rows(got) == expected
    assert got.is_open.tolist() == [e == -1 for *_, e in expected]


@pytest.mark.parametrize(("out_after_s", "found"), [(10 * 3600 - 1, False), (10 * 3600, False), (10 * 3600 + 1, True)])
def test_strictly_longer_than_shift_plus_grace(out_after_s: int, found: bool) -> None:
    r = by_hand([(0, 0, 2), (0, out_after_s / 60, 0)], now_min=24 * 60)
    _, stays = kernel_presence(r)
    got = overtime(stays, shift_ns=8 * HOUR, now_ns=r.now)
    assert rows(got) == ([(0, 0, T0 + 10 * HOUR, T0 + out_after_s * S)] if found else [])


def test_a_silent_card_fires_on_the_clock_and_a_late_shaft_read_ends_or_removes_it() -> None:
    # In at T0, never read again: nothing at entry + 10 h, an open finding 1 s later.
    silent = [(0, 0.0, 2)]
    _, stays = kernel_presence(by_hand(silent, now_min=10 * 60))
    assert len(overtime(stays, shift_ns=8 * HOUR, now_ns=T0 + 10 * HOUR)) == 0
    _, stays = kernel_presence(by_hand(silent, now_min=10 * 60 + 1))
    got = overtime(stays, shift_ns=8 * HOUR, now_ns=T0 + 10 * HOUR + MIN)
    assert rows(got) == [(0, 0, T0 + 10 * HOUR, -1)] and got.is_open.tolist() == [True]
    # A shaft read arriving late, timed 9 h after entry: re-evaluated, there is no overtime at
    # all (the worker withdraws the finding it raised and tells the case).
    r = by_hand([*silent, (0, 9 * 60, 0)], now_min=11 * 60)
    _, stays = kernel_presence(r)
    assert len(overtime(stays, shift_ns=8 * HOUR, now_ns=r.now)) == 0
    # Timed 10 h 30 min after entry, it ends the finding there (rules.md: it ends when the card
    # leaves); the finding stays, closed.
    r = by_hand([*silent, (0, 10.5 * 60, 0)], now_min=11 * 60)
    _, stays = kernel_presence(r)
    assert rows(overtime(stays, shift_ns=8 * HOUR, now_ns=r.now)) == [(0, 0, T0 + 10 * HOUR, T0 + 10 * HOUR + 30 * MIN)]


def test_moves_do_not_restart_the_clock() -> None:
    r = by_hand([(0, 0, 2), (0, 4 * 60, 3), (0, 8 * 60, 4), (0, 11 * 60, 0)], now_min=12 * 60)
    _, stays = kernel_presence(r)
    assert rows(overtime(stays, shift_ns=8 * HOUR, now_ns=r.now)) == [(0, 0, T0 + 10 * HOUR, T0 + 11 * HOUR)]


def test_a_shift_length_must_be_positive() -> None:
    _, stays = kernel_presence(by_hand([], now_min=0))
    with pytest.raises(RulesError, match="shift length"):
        overtime(stays, shift_ns=0, now_ns=T0)


def test_the_rule_id_is_the_contracts() -> None:
    assert RULE in KNOWN
