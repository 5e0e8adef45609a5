"""seal_breach: the kernels against loop references, and entries 1 s either side of an order's bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.rule_ids import KNOWN
from rules.personnel.presence import find_presence
from rules.personnel.seal import RULE, SealBreaches, card_breaches, signal_breaches
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import HOUR, MIN, S, kernel_presence, ref_presence
from tests.rules.personnel.strategies import T0, Reads, intervals, reads


def rows(b: SealBreaches) -> list[tuple[int, int, int, int, int]]:
    return list(zip(b.subject.tolist(), b.source.tolist(), b.order.tolist(), b.start.tolist(), b.end.tolist(),
                    strict=True))


def arrays(orders: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([s for s, _ in orders], np.int64).reshape(-1), np.array([e for _, e in orders], np.int64).reshape(-1))


@settings(max_examples=300)
@given(st.data(), reads())
def test_card_breaches_match_reference(data: st.DataObject, r: Reads) -> None:
    orders = data.draw(intervals(r))
    _, stays = kernel_presence(r)
    _, ref_stays = ref_presence(r)
    got = card_breaches(stays, *arrays(orders))
    expected = ref.card_breaches(ref_stays, orders)
    assert rows(got) == expected
    assert got.is_open.tolist() == [e == -1 for *_, e in expected]


@settings(max_examples=300)
@given(st.data(), reads())
def test_signal_breaches_match_reference(data: st.DataObject, r: Reads) -> None:
    orders = data.draw(intervals(r))
    spans = [(data.draw(st.integers(0, 3)), s, e) for s, e in data.draw(intervals(r, max_n=5))]
    got = signal_breaches(np.array([p for p, _, _ in spans], np.int64), np.array([s for _, s, _ in spans], np.int64),
                          np.array([e for _, _, e in spans], np.int64), *arrays(orders))
    expected = ref.signal_breaches(spans, orders)
    assert rows(got) == expected


ORDER_START = T0 + 2 * HOUR
ORDER_END = T0 + 74 * HOUR


def breach_of_entry(entry: int, order_end: int = ORDER_END) -> bool:
    """One card, entering at `entry` and leaving an hour later, under one order."""
    card, ts, area = np.array([0, 0]), np.array([entry, entry + HOUR]), np.array([2, 0])
    _, stays = find_presence(card, ts, area, shaft=np.array([True, False, False]), now_ns=ORDER_END + 10 * HOUR)
    return len(card_breaches(stays, np.array([ORDER_START]), np.array([order_end]))) == 1


@pytest.mark.parametrize(("entry", "breach"), [
    (ORDER_START - S, False), (ORDER_START, True), (ORDER_START + S, True),
    (ORDER_END - S, True), (ORDER_END, False), (ORDER_END + S, False),
])
def test_an_entry_either_side_of_an_orders_bounds(entry: int, breach: bool) -> None:
    # rules.md at a glance: an entry at the very instant the order starts counts; the order
    # covers [start, lifted), so an entry at the instant it is lifted does not.
    assert breach_of_entry(entry) is breach


def test_an_order_not_yet_lifted_covers_every_later_entry() -> None:
    assert breach_of_entry(ORDER_END + S, order_end=-1)


def test_cards_already_underground_and_moving_are_not_breaches_a_reentry_is() -> None:
    # Card 0 went down before the order and moves and leaves during it; card 1 comes up during
    # the order and goes down again: that re-entry is a breach, spanning until it leaves.
    card = np.array([0, 0, 0, 1, 1, 1, 1])
    ts = np.array([ORDER_START - HOUR, ORDER_START + MIN, ORDER_START + HOUR,
                   ORDER_START - HOUR, ORDER_START + MIN, ORDER_START + 2 * MIN, ORDER_START + 3 * HOUR])
    area = np.array([2, 3, 0, 2, 0, 2, 1])
    _, stays = find_presence(card, ts, area, shaft=np.array([True, True, False, False]), now_ns=ORDER_END)
    got = card_breaches(stays, np.array([ORDER_START]), np.array([-1]))
    assert rows(got) == [(1, 2, 0, ORDER_START + 2 * MIN, ORDER_START + 3 * HOUR)]


def test_a_signal_switching_on_under_an_order_is_a_breach() -> None:
    got = signal_breaches(np.array([7, 8, 9]), np.array([ORDER_START - S, ORDER_START, ORDER_END]),
                          np.array([ORDER_START + HOUR, -1, ORDER_END + HOUR]), np.array([ORDER_START]),
                          np.array([ORDER_END]))
    assert rows(got) == [(8, 1, 0, ORDER_START, -1)] and got.is_open.tolist() == [True]


def test_the_rule_id_is_the_contracts() -> None:
    assert RULE in KNOWN


# --- production signals: readings of the marked points → producing spans -------------------

@st.composite
def signal_readings(draw: st.DrawFn) -> list[tuple[int, int, float, bool]]:
    """Readings of up to 4 points sorted by (point, ts), some at the same time, counters and
    on-off points mixed, values from a small set so rises, falls and repeats all occur."""
    out: list[tuple[int, int, float, bool]] = []
    for point in range(draw(st.integers(0, 4))):
        counter = draw(st.booleans())
        times = sorted(draw(st.lists(st.integers(0, 40), max_size=25)))
        values = [0.0, 1.0] if not counter else [0.0, 1.0, 2.0, 3.0]
        out += [(point, T0 + t * MIN, float(draw(st.sampled_from(values))), counter) for t in times]
    return out


def span_rows(r: list[tuple[int, int, float, bool]], splits: list[int] | None = None
              ) -> list[tuple[int, int, int, int, bool]]:
    from rules.personnel.seal import signal_spans

    got = signal_spans(np.array([x[0] for x in r], np.int64), np.array([x[1] for x in r], np.int64),
                       np.array([x[2] for x in r], np.float64), np.array([x[3] for x in r], np.bool_),
                       None if splits is None else np.array(splits, np.int64))
    return list(zip(got.point.tolist(), got.start.tolist(), got.end.tolist(), got.first.tolist(),
                    got.truncated.tolist(), strict=True))


@settings(max_examples=400)
@given(signal_readings(), st.lists(st.integers(0, 41), max_size=3))
def test_signal_spans_match_reference(r: list[tuple[int, int, float, bool]], split_min: list[int]) -> None:
    splits = [T0 + m * MIN for m in split_min]
    assert span_rows(r, splits) == ref.signal_spans(r, splits)


def test_a_counter_still_rising_when_an_order_starts_breaches_from_its_first_rise_at_or_after_it() -> None:
    t = [T0 + k * MIN for k in range(5)]
    r = [(0, t[0], 1.0, True), (0, t[1], 2.0, True), (0, t[2], 3.0, True), (0, t[3], 4.0, True), (0, t[4], 4.0, True)]
    # The order starts at t2 exactly: the run t1 → is cut at t2 (the reading at the instant counts).
    assert span_rows(r, [t[2]]) == [(0, t[1], t[2], 1, True), (0, t[2], t[4], 2, False)]
    # Starting between t2 and t3: cut at t3. An on-off point is never cut: it breaches by switching on.
    assert span_rows(r, [t[2] + S]) == [(0, t[1], t[3], 1, True), (0, t[3], t[4], 3, False)]
    onoff = [(0, x, 1.0, False) for x in t]
    assert span_rows(onoff, [t[2]]) == [(0, t[0], -1, 0, True)]


def test_a_counter_span_runs_from_its_first_rise_to_its_first_reading_without_one() -> None:
    t = [T0 + k * MIN for k in range(7)]
    r = [(5, t[0], 10.0, True), (5, t[1], 10.0, True), (5, t[2], 12.0, True), (5, t[3], 13.5, True),
         (5, t[4], 13.5, True), (5, t[5], 0.0, True), (5, t[6], 0.5, True)]
    # 10 → 10 no rise; 12 and 13.5 rise (span t2 → t4, where it stays); a reset to 0 is no
    # production; 0.5 rises again: an open span from t6.
    assert span_rows(r) == [(5, t[2], t[4], 2, False), (5, t[6], -1, 6, False)]


def test_an_on_off_span_runs_from_switching_on_to_switching_off() -> None:
    t = [T0 + k * MIN for k in range(6)]
    r = [(1, t[0], 1.0, False), (1, t[1], 0.0, False), (1, t[2], 1.0, False), (1, t[3], 1.0, False),
         (1, t[3], 0.0, False), (1, t[4], 0.0, False), (1, t[5], 1.0, False)]
    # on at the first reading: a span that may have begun before (truncated); the duplicate at
    # t3 counts once (the first, still on).
    assert span_rows(r) == [(1, t[0], t[1], 0, True), (1, t[2], t[4], 2, False), (1, t[5], -1, 6, False)]


def test_a_counter_rising_from_its_first_pair_may_have_risen_before() -> None:
    t = [T0, T0 + MIN, T0 + 2 * MIN]
    assert span_rows([(0, t[0], 1.0, True), (0, t[1], 2.0, True), (0, t[2], 2.0, True)]) == [(0, t[1], t[2], 1, True)]


def test_signal_spans_refuse_unsorted_readings() -> None:
    from rules.errors import RulesError
    from rules.personnel.seal import signal_spans

    with pytest.raises(RulesError, match="sorted"):
        signal_spans(np.array([0, 0]), np.array([T0 + MIN, T0]), np.array([1.0, 0.0]), np.array([False, False]))
