"""Count-in-window and orders: against the loop reference, streaming == back-fill, edge cases."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from minewatch.timeutil import to_ns
from rules.calendar import cycle_id, period_ids
from rules.errors import RulesError
from rules.orders import ROLE_ATTACHED, ROLE_TRIGGER, Orders, apply_count_rule, scan_orders
from rules.packs import parse_pack
from rules.windows import (
    count_before,
    frequent,
    period_bounds,
    rolling_bounds,
    rolling_month_bounds,
)
from tests.rules import reference as ref

S = 1_000_000_000
H = 3600 * S
D = 24 * H
TZ = "Asia/Shanghai"
SHANGHAI = ZoneInfo(TZ)
T0 = to_ns(datetime(2026, 1, 1, tzinfo=SHANGHAI))

# A clause is ("rolling", ns) | ("months", m) | ("iso_week" | "month", 0) | ("cycle", months).
clause_kinds = st.one_of(
    st.tuples(st.just("rolling"), st.sampled_from([D, 7 * D, 30 * D])),
    st.tuples(st.just("months"), st.sampled_from([1, 3])),
    st.tuples(st.sampled_from(["iso_week", "month"]), st.just(0)),
    st.tuples(st.just("cycle"), st.sampled_from([2, 3])),
)
finding_times = st.lists(st.sampled_from([0, 0, 12 * H, D, 3 * D, 7 * D - S, 7 * D, 7 * D + S,
                                          10 * D, 30 * D]), max_size=25).map(
    lambda steps: np.cumsum(np.array([0, *steps], np.int64)) + T0)


def bounds(kind: tuple[str, int], t: NDArray[np.int64]) -> NDArray[np.int64]:
    name, arg = kind
    if name == "rolling":
        return rolling_bounds(t, arg)[0]
    if name == "months":
        return rolling_month_bounds(t, arg, TZ)[0]
    months = arg if name == "cycle" else 1
    return period_bounds(period_ids(t, name, TZ, months=months))[0]  # type: ignore[arg-type]


def in_window(kind: tuple[str, int], t: list[int]):  # type: ignore[no-untyped-def]
    name, arg = kind

    def test(j: int, i: int) -> bool:
        if name == "rolling":
            return t[j] > t[i] - arg
        if name == "months":
            return t[j] > ref.minus_months(t[i], arg, TZ)
        if name == "iso_week":
            return ref.iso_week(t[j], TZ) == ref.iso_week(t[i], TZ)
        if name == "month":
            return ref.month(t[j], TZ) == ref.month(t[i], TZ)
        return ref.cycle(t[j], TZ, arg, 1) == ref.cycle(t[i], TZ, arg, 1)

    return test


OrderRow = tuple[int, int, int, int, list[int], list[int]]


def as_list(o: Orders) -> list[OrderRow]:
    return [(int(o.start[k]), int(o.min_end[k]), int(o.step[k]), int(o.clause[k]),
             o.triggers_of(k).tolist(), o.attached_of(k).tolist()) for k in range(len(o))]


@settings(max_examples=200, deadline=None)
@given(finding_times, st.lists(st.tuples(clause_kinds, st.integers(1, 3)), min_size=1,
                               max_size=2),
       st.lists(st.sampled_from([0, D, 3 * D, 72 * H, 6 * D]), min_size=1, max_size=3),
       st.booleans())
def test_orders_match_reference(t, clauses, durations, ladder) -> None:  # type: ignore[no-untyped-def]
    cyc = cycle_id(t, 2, TZ) if ladder else None
    got = scan_orders(t, [(bounds(k, t), n) for k, n in clauses], durations, cyc)
    tl = t.tolist()
    tests = [in_window(k, tl) for k, _ in clauses]
    expected = ref.orders(tl, [(c, n) for c, (_, n) in enumerate(clauses)],
                          lambda c, j, i: tests[c](j, i), durations,
                          None if cyc is None else cyc.tolist())
    assert as_list(got) == [(o.start, o.min_end, o.step, o.clause, o.triggers, o.attached)
                            for o in expected]
    for k in range(len(got)):
        assert all(got.order_of[got.triggers_of(k)] == k)
        assert all(got.role[got.triggers_of(k)] == ROLE_TRIGGER)
        assert all(got.role[got.attached_of(k)] == ROLE_ATTACHED)

    # Streaming agrees with back-fill: the data up to any finding gives the same orders
    # as the whole history, restricted to what that data can know.
    for cut in range(len(t) + 1):
        part = t[:cut]
        sub = scan_orders(part, [(bounds(k, part), n) for k, n in clauses], durations,
                          None if cyc is None else cyc[:cut])
        known = [(s, e, st_, c, tr, [a for a in at if a < cut])
                 for s, e, st_, c, tr, at in as_list(got) if max(tr) < cut]
        assert as_list(sub) == known


SEED = parse_pack({"name": "t", "count_rules": [{
    "id": "m", "kind": "methane_event", "any_of": [{"n": 2, "window": {"rolling": "7d"}}],
    "action": {"type": "order", "duration": "72h"}}]}, "test").count_rules[0]


def seed_orders(offsets: list[int]) -> Orders:
    return apply_count_rule(SEED, np.array(offsets, np.int64) + T0, TZ)


def test_second_event_seven_days_minus_one_second_later_orders() -> None:
    o = seed_orders([0, 7 * D - S])
    assert len(o) == 1
    assert (o.start[0], o.min_end[0]) == (T0 + 7 * D - S, T0 + 7 * D - S + 72 * H)
    assert o.triggers_of(0).tolist() == [0, 1]


def test_second_event_seven_days_or_more_later_does_not() -> None:
    assert len(seed_orders([0, 7 * D + S])) == 0
    assert len(seed_orders([0, 7 * D])) == 0  # (t - 7 d, t]: exactly 7 d is outside


def test_third_event_during_active_order_attaches() -> None:
    o = seed_orders([0, D, D + 71 * H])
    assert len(o) == 1 and o.attached_of(0).tolist() == [2]
    assert o.role.tolist() == [ROLE_TRIGGER, ROLE_TRIGGER, ROLE_ATTACHED]


def test_consumed_events_are_not_counted_again() -> None:
    # After the order ends, one new event is not enough: the triggers are spent.
    o = seed_orders([0, D, D + 73 * H])
    assert len(o) == 1 and o.attached_of(0).tolist() == []
    # Two new ones after the order are.
    o2 = seed_orders([0, D, D + 73 * H, D + 74 * H])
    assert len(o2) == 2 and o2.triggers_of(1).tolist() == [2, 3]


def test_rerun_gives_identical_orders() -> None:
    offsets = [0, D, 2 * D, 5 * D, 9 * D, 9 * D + H, 20 * D]
    assert as_list(seed_orders(offsets)) == as_list(seed_orders(offsets))


def test_iso_week_pack_sunday_night_and_monday_morning_are_two_weeks() -> None:
    rule = parse_pack({"name": "w", "count_rules": [{
        "id": "w", "kind": "methane_event",
        "any_of": [{"n": 2, "window": {"calendar": "iso_week"}}],
        "action": {"type": "order", "duration": "72h"}}]}, "test").count_rules[0]
    sunday = to_ns(datetime(2026, 11, 22, 23, 59, tzinfo=SHANGHAI))
    monday = to_ns(datetime(2026, 11, 23, 0, 1, tzinfo=SHANGHAI))
    assert len(apply_count_rule(rule, np.array([sunday, monday]), TZ)) == 0
    tuesday = to_ns(datetime(2026, 11, 24, 9, 0, tzinfo=SHANGHAI))
    assert len(apply_count_rule(rule, np.array([sunday, monday, tuesday]), TZ)) == 1


def test_frequent_flag_three_in_thirty_days() -> None:
    t = np.array([0, 10 * D, 29 * D, 45 * D], np.int64) + T0
    start, end = rolling_bounds(t, 30 * D)
    assert frequent(start, end, 3).tolist() == [False, False, True, False]
    assert count_before(t, int(t[2]), 30 * D) == 3
    assert count_before(t, int(t[2]) + D, 30 * D) == 2


def test_window_bounds_at_exact_edges() -> None:
    t = np.array([0, 7 * D - S, 7 * D, 14 * D], np.int64) + T0
    start, end = rolling_bounds(t, 7 * D)
    # (t - 7 d, t]: the finding exactly 7 d earlier is out, 7 d − 1 s earlier is in.
    assert start.tolist() == [0, 0, 1, 3] and end.tolist() == [1, 2, 3, 4]
    p_start, p_end = period_bounds(np.array([5, 5, 6, 6, 6], np.int64))
    assert p_start.tolist() == [0, 0, 2, 2, 2] and p_end.tolist() == [1, 2, 3, 4, 5]


def test_bad_window_input_is_refused() -> None:
    with pytest.raises(RulesError, match="positive"):
        rolling_bounds(np.array([T0]), 0)
    with pytest.raises(RulesError, match="sorted"):
        rolling_bounds(np.array([T0 + 1, T0]), D)
    with pytest.raises(RulesError, match="N >= 1"):
        scan_orders(np.array([T0]), [(np.zeros(1, np.int64), 0)], [D])
