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
