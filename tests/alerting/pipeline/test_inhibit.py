"""Inhibit stage: an order mutes repeats of its kind, never seal breach or power-off failure."""

from __future__ import annotations

from alerting.lifecycle import Reason, Severity
from alerting.pipeline.inhibit import inhibit
from alerting.pipeline.types import ActiveOrder, StageContext
from tests.alerting.builders import MINE, T0, finding, note

ORDER = ActiveOrder(mine=MINE, order_id="O1", kind="methane", severity=Severity.RED)
CTX = StageContext(now=T0, active_orders={MINE: ORDER})


def test_repeated_methane_notification_is_muted_under_order() -> None:
    assert inhibit([note(1), note(2, reason=Reason.REMINDER)], CTX) == []


def test_seal_breach_and_power_off_failure_are_never_muted() -> None:
    seal = note(1, findings=(finding(1, rule="seal_breach", kind="methane"),))
    power = note(2, findings=(finding(2, rule="power_off_failure", kind="methane"),))
    assert inhibit([seal, power], CTX) == [seal, power]


def test_what_the_order_does_not_cover_goes_through() -> None:
    kept = [
        note(1, mine="140100000002"),  # another mine
        note(2, findings=(finding(2, rule="over_capacity", kind="personnel"),)),  # other kind
        note(3, severity=Severity.MAJOR),  # worse than what caused the order
        note(4, reason=Reason.ESCALATED),  # news, not a repeat
        note(5, reason=Reason.RESOLVED),
    ]
    assert inhibit(kept, CTX) == kept
    assert inhibit([note(6)], StageContext(now=T0)) == [note(6)]  # no order at all


def test_grouped_notification_keeps_only_what_must_get_through() -> None:
    mixed = note(1, findings=(finding(1), finding(2, rule="seal_breach"), finding(3)))
    (out,) = inhibit([mixed], CTX)
    assert [f.rule for f in out.findings] == ["seal_breach"]
    assert out.keys == mixed.keys and out.members == mixed.members
