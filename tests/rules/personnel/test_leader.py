"""no_leader and local shifts: kernels against loop references (shifts crossing local midnight
included), and the leader who surfaces 29 / 30 / 31 min before the closing margin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.rule_ids import KNOWN
from rules.errors import RulesError
from rules.personnel.leader import LEADER, RULE, VISITOR, WORKER, NoLeader, no_leader
from rules.personnel.params import PersonnelParams
from rules.personnel.shifts import shift_bounds
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import HOUR, MIN, S, by_hand, kernel_presence, ref_presence
from tests.rules.personnel.strategies import T0, Reads, reads

ZONES = ["Asia/Shanghai", "Asia/Kolkata", "UTC"]
# Defaults, a night shift crossing local midnight (22:00–06:00), and uneven starts.
STARTS = [(0, 480, 960), (360, 840, 1320), (90, 600, 1290), (420, 1140)]


@settings(max_examples=200)
@given(st.sampled_from(ZONES), st.sampled_from(STARTS), st.integers(T0 - 2 * 86_400 * S, T0 + 2 * 86_400 * S),
       st.integers(0, 3 * 86_400 * S))
def test_shift_bounds_match_wall_arithmetic(tz: str, starts: tuple[int, ...], a: int, length: int) -> None:
    start, end = shift_bounds(a, a + length, tz, starts)
    assert len(start) > 0 and start[0] <= a < end[-1]
    assert bool(np.all(start[1:] == end[:-1]))  # back to back
    for t in (a, a + length // 2, max(a, a + length - 1)):
        i = int(np.searchsorted(start, t, side="right")) - 1
        assert (int(start[i]), int(end[i])) == ref.shift_of(t, tz, starts)


def test_default_shifts_in_shanghai() -> None:
    # T0 is 2026-11-23 08:00 local: the day shift 08–16 is [T0, T0 + 8 h).
    start, end = shift_bounds(T0, T0 + 1, "Asia/Shanghai")
    assert (start.tolist(), end.tolist()) == ([T0], [T0 + 8 * HOUR])


def test_a_night_shift_crosses_local_midnight() -> None:
    start, end = shift_bounds(T0 + 15 * HOUR, T0 + 15 * HOUR + 1, "Asia/Shanghai", (360, 840, 1320))
    # 23:00 local lies in the shift of 22:00 that ends at 06:00 the next local day.
    assert (start.tolist(), end.tolist()) == ([T0 + 14 * HOUR], [T0 + 22 * HOUR])


def test_a_dst_day_has_one_long_or_short_shift() -> None:
    # Europe/Berlin falls back on 2026-10-25: the 00–08 shift lasts 9 h there.
    day = 1_792_879_200 * S  # 2026-10-25 00:00 +02:00
    start, end = shift_bounds(day, day + 1, "Europe/Berlin")
    assert (int(end[0] - start[0])) == 9 * HOUR


def test_bad_shift_starts_are_refused() -> None:
    with pytest.raises(RulesError, match="shift_starts_min"):
        PersonnelParams(shift_starts_min=(480, 0))


def rows(f: NoLeader) -> list[tuple[int, int, int]]:
    return list(zip(f.shift.tolist(), f.start.tolist(), f.end.tolist(), strict=True))


@settings(max_examples=300)
@given(reads(), st.lists(st.sampled_from([WORKER, WORKER, LEADER, VISITOR]), min_size=6, max_size=6),
       st.sampled_from(ZONES), st.sampled_from(STARTS), st.sampled_from([30 * MIN, 0, 2 * HOUR]),
       st.sampled_from([30 * MIN, 0, S]))
def test_no_leader_matches_reference(r: Reads, roles: list[int], tz: str, starts: tuple[int, ...], travel: int,
                                     min_span: int) -> None:
    params = PersonnelParams(leader_travel_ns=travel, leader_min_span_ns=min_span, shift_starts_min=starts)
    ss, se = shift_bounds(r.first - HOUR, r.now + HOUR, tz, starts)
    _, stays = kernel_presence(r)
    _, ref_stays = ref_presence(r)
    got = no_leader(stays, np.array(roles), ss, se, now_ns=r.now, params=params)
    expected = ref.no_leader(ref_stays, roles, list(zip(ss.tolist(), se.tolist(), strict=True)), r.now, travel,
                             min_span)
    assert rows(got) == expected
    assert got.is_open.tolist() == [e == -1 for _, _, e in expected]


def leader_surfaces(minutes_before_margin: float) -> NoLeader:
    """Shift 08–16 local (T0 is 08:00); workers 0 and 1 underground 07:40–16:00, the leader (2)
    from 08:10 until it surfaces `minutes_before_margin` before 15:30; a visitor (3) stays."""
    up = 7 * 60 + 30 - minutes_before_margin
    r = by_hand([(0, -20, 2), (1, -20, 3), (0, 8 * 60, 0), (1, 8 * 60, 1),
                 (2, 10, 4), (2, up, 0), (3, 0, 5)], now_min=24 * 60)
    _, stays = kernel_presence(r)
    ss, se = shift_bounds(T0 - 8 * HOUR, r.now, "Asia/Shanghai")
    return no_leader(stays, np.array([WORKER, WORKER, LEADER, VISITOR]), ss, se, now_ns=r.now)


@pytest.mark.parametrize(("before", "found"), [(29, False), (30, True), (31, True)])
def test_a_leader_who_surfaces_before_the_closing_margin(before: int, found: bool) -> None:
    # rules.md §7: a span of >= 30 min with workers and no leader, after cutting the last 30 min
    # of the shift (15:30–16:00), is a finding: 29 min is not, 31 min is (so is exactly 30).
    # The visitor underground does not stand in for a leader. The workers' 07:40–08:10 without
    # a leader lies in the night shift's closing margin and the day shift's opening one (the
    # leader goes down at 08:10, before 08:30), so it is cut away.
    f = leader_surfaces(before)
    spans = [(s, e) for _, s, e in rows(f)]
    if found:
        assert spans == [(T0 + (7 * 60 + 30 - before) * MIN, T0 + 7 * HOUR + 30 * MIN)]
    else:
        assert spans == []


def test_an_open_span_fires_on_the_clock() -> None:
    r = by_hand([(0, 0, 2)], now_min=30 + 30)  # in at 08:00, window from 08:30, 30 min later
    _, stays = kernel_presence(r)
    ss, se = shift_bounds(T0, r.now, "Asia/Shanghai")
    f = no_leader(stays, np.array([WORKER]), ss, se, now_ns=r.now)
    assert rows(f) == [(0, T0 + 30 * MIN, -1)] and f.is_open.tolist() == [True]
    early = no_leader(stays, np.array([WORKER]), ss, se, now_ns=r.now - S)
    assert len(early) == 0


def test_the_rule_id_is_the_contracts() -> None:
    assert RULE in KNOWN
