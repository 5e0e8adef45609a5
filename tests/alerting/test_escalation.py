"""Escalation and reminder timing, with explicit `now`s: windows elapse without waiting."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from alerting.escalation import (
    Decision,
    Escalate,
    EscalationCause,
    EscalationPolicy,
    Remind,
    ReminderKind,
    decision_effects,
    due_escalation,
    next_due,
)
from alerting.lifecycle import CaseState, CaseView, Level, Notify, Reason, Severity
from tests.alerting.builders import T0, make_case, minutes

NO_REMINDERS = EscalationPolicy(ack_reminder_interval=None, verification_reminder_interval=None,
                                overdue_reminder_interval=None, plan_reminder_interval=None)


def apply(case: CaseView, decision: Decision, now: datetime) -> CaseView:
    """What the worker does with a decision."""
    if isinstance(decision, Escalate):
        return replace(case, level=decision.to_level, level_since=now)
    return replace(case, last_reminded_at=now)


@pytest.mark.parametrize(("severity", "window"), [
    (Severity.NORMAL, 60), (Severity.RED, 15), (Severity.MAJOR, 15),
])
def test_unacknowledged_case_escalates_after_its_window(severity: Severity, window: int) -> None:
    case = make_case(severity=severity)
    assert due_escalation(case, T0 + minutes(window) - timedelta(seconds=1), NO_REMINDERS) is None
    decision = due_escalation(case, T0 + minutes(window), NO_REMINDERS)
    assert isinstance(decision, Escalate)
    assert (decision.from_level, decision.to_level) == (Level.COUNTY, Level.CITY)
    assert decision.cause is EscalationCause.ACK_TIMEOUT
    assert f"{window} min" in decision.detail


def test_escalation_repeats_each_window_up_to_the_province_then_stops() -> None:
    case = make_case(severity=Severity.RED, level=Level.MINE)
    escalations: list[tuple[int, Level]] = []
    for minute in range(0, 24 * 60):  # a day, minute by minute, without waiting
        now = T0 + minutes(minute)
        decision = due_escalation(case, now, NO_REMINDERS)
        if decision is not None:
            assert isinstance(decision, Escalate)
            escalations.append((minute, decision.to_level))
            case = apply(case, decision, now)
    assert escalations == [(15, Level.COUNTY), (30, Level.CITY), (45, Level.PROVINCE)]


def test_acknowledged_case_never_escalates_for_ack() -> None:
    case = make_case(state=CaseState.ACKNOWLEDGED)
    assert due_escalation(case, T0 + timedelta(days=30), NO_REMINDERS) is None
    assert next_due(case, NO_REMINDERS) is None


def test_acknowledged_case_without_a_plan_reminds_the_mine_daily() -> None:
    case = make_case(state=CaseState.ACKNOWLEDGED, state_since=T0 + minutes(5))
    policy = EscalationPolicy()
    assert due_escalation(case, T0 + minutes(5) + timedelta(hours=23), policy) is None
    decision = due_escalation(case, T0 + minutes(5) + timedelta(hours=24), policy)
    assert isinstance(decision, Remind) and decision.kind is ReminderKind.AWAITING_PLAN
    assert decision.levels == (Level.MINE,)


def test_escalation_window_counts_from_when_the_level_was_told() -> None:
    case = make_case(level=Level.CITY, level_since=T0 + minutes(60))
    assert due_escalation(case, T0 + minutes(119), NO_REMINDERS) is None
    decision = due_escalation(case, T0 + minutes(120), NO_REMINDERS)
    assert isinstance(decision, Escalate) and decision.to_level is Level.PROVINCE


def test_missed_deadline_escalates_and_keeps_escalating() -> None:
    deadline = T0 + timedelta(days=3)
    case = make_case(state=CaseState.RECTIFYING, deadline=deadline, state_since=T0)
    assert due_escalation(case, deadline - timedelta(seconds=1), NO_REMINDERS) is None
    assert next_due(case, NO_REMINDERS) == deadline
    late = deadline + minutes(5)  # the worker ticked a little after the deadline
    decision = due_escalation(case, late, NO_REMINDERS)
    assert isinstance(decision, Escalate)
    assert (decision.cause, decision.to_level) == (EscalationCause.DEADLINE_MISSED, Level.CITY)
    case = apply(case, decision, late)
    assert due_escalation(case, late + minutes(59), NO_REMINDERS) is None
    again = due_escalation(case, late + minutes(60), NO_REMINDERS)
    assert isinstance(again, Escalate) and again.to_level is Level.PROVINCE
    top = apply(case, again, late + minutes(60))
    assert due_escalation(top, late + timedelta(days=10), NO_REMINDERS) is None


def test_a_new_deadline_restarts_the_deadline_timer() -> None:
    deadline = T0 + timedelta(days=3)
    escalated = make_case(state=CaseState.RECTIFYING, deadline=deadline, level=Level.CITY,
                          level_since=deadline + minutes(1))
    renewed = replace(escalated, deadline=deadline + timedelta(days=7))
    assert due_escalation(renewed, deadline + timedelta(days=6), NO_REMINDERS) is None


def test_submitted_evidence_stops_deadline_escalation() -> None:
    case = make_case(state=CaseState.RECTIFIED, deadline=T0 + timedelta(days=1))
    assert due_escalation(case, T0 + timedelta(days=5), NO_REMINDERS) is None


def test_ack_reminders_repeat_at_the_interval_never_more_often() -> None:
    policy = EscalationPolicy(ack_reminder_interval=minutes(10), ack_window=timedelta(hours=10))
    case = make_case()
    assert due_escalation(case, T0 + minutes(9), policy) is None
    first = due_escalation(case, T0 + minutes(10), policy)
    assert isinstance(first, Remind) and first.kind is ReminderKind.AWAITING_ACK
    assert first.levels == (Level.MINE, Level.COUNTY)
    # the worker sent it late, at 13 min: the next one is 10 min after that, not at 20
    case = apply(case, first, T0 + minutes(13))
    assert due_escalation(case, T0 + minutes(20), policy) is None
    assert due_escalation(case, T0 + minutes(22), policy) is None
    second = due_escalation(case, T0 + minutes(23), policy)
    assert isinstance(second, Remind) and second.due_at == T0 + minutes(23)


def test_reminders_over_a_day_count_exactly() -> None:
    policy = EscalationPolicy(ack_reminder_interval=minutes(10), ack_window=timedelta(days=2))
    case = make_case()
    sent = []
    for minute in range(0, 24 * 60):
        now = T0 + minutes(minute)
        decision = due_escalation(case, now, policy)
        if decision is not None:
            sent.append(minute)
            case = apply(case, decision, now)
    assert sent == list(range(10, 24 * 60, 10))


def test_no_ack_reminder_after_acknowledgement() -> None:
    case = make_case(state=CaseState.ACKNOWLEDGED, last_reminded_at=T0, state_since=T0)
    decision = due_escalation(case, T0 + timedelta(hours=5), EscalationPolicy())
    assert decision is None  # only the daily plan reminder remains, not yet due


def test_escalation_wins_over_a_reminder_due_at_the_same_time() -> None:
    policy = EscalationPolicy(ack_reminder_interval=minutes(15))
    decision = due_escalation(make_case(severity=Severity.RED), T0 + minutes(15), policy)
    assert isinstance(decision, Escalate)


def test_province_case_keeps_reminding_until_acknowledged() -> None:
    case = make_case(level=Level.PROVINCE)
    decision = due_escalation(case, T0 + timedelta(hours=3), EscalationPolicy())
    assert isinstance(decision, Remind) and decision.kind is ReminderKind.AWAITING_ACK


def test_rectified_case_reminds_the_regulator_to_verify() -> None:
    since = T0 + timedelta(days=2)
    case = make_case(state=CaseState.RECTIFIED, level=Level.MINE, state_since=since,
                     last_reminded_at=T0 + minutes(30))  # an ack reminder from long before
    policy = EscalationPolicy()
    assert due_escalation(case, since + timedelta(hours=23), policy) is None
    decision = due_escalation(case, since + timedelta(hours=24), policy)
    assert isinstance(decision, Remind)
    assert decision.kind is ReminderKind.AWAITING_VERIFICATION
    assert decision.levels == (Level.COUNTY,)  # a mine-level case is supervised by the county


def test_overdue_case_at_the_top_is_reminded_daily() -> None:
    deadline = T0 + timedelta(days=3)
    case = make_case(state=CaseState.RECTIFYING, deadline=deadline, level=Level.PROVINCE,
                     level_since=deadline + minutes(120))
    policy = EscalationPolicy()
    assert due_escalation(case, deadline + timedelta(hours=23), policy) is None
    decision = due_escalation(case, deadline + timedelta(hours=24), policy)
    assert isinstance(decision, Remind) and decision.kind is ReminderKind.OVERDUE


def test_next_due_is_the_earliest_timer() -> None:
    policy = EscalationPolicy(ack_reminder_interval=minutes(10))
    assert next_due(make_case(), policy) == T0 + minutes(10)
    assert next_due(make_case(), NO_REMINDERS) == T0 + minutes(60)
    assert next_due(make_case(state=CaseState.CLOSED), policy) is None


def test_decision_effects_and_stable_occasions() -> None:
    case = make_case(severity=Severity.RED)
    decision = due_escalation(case, T0 + minutes(20), NO_REMINDERS)
    assert isinstance(decision, Escalate)
    assert decision_effects(case, decision) == (
        Notify((Level.CITY, Level.MINE), Reason.ESCALATED),)
    # the same decision taken at a later tick (after a crash) has the same occasion
    assert due_escalation(case, T0 + minutes(25), NO_REMINDERS) == decision
    remind = due_escalation(make_case(), T0 + minutes(10), EscalationPolicy())
    assert isinstance(remind, Remind)
    assert decision_effects(case, remind) == (
        Notify((Level.MINE, Level.COUNTY), Reason.REMINDER),)
    assert remind.occasion != decision.occasion


@pytest.mark.parametrize("field", ["ack_window", "ack_reminder_interval", "ack_window_urgent"])
def test_policy_rejects_non_positive_durations(field: str) -> None:
    with pytest.raises(ValidationError, match="positive"):
        EscalationPolicy.model_validate({field: "PT0S"})


def test_policy_reads_iso_durations() -> None:
    policy = EscalationPolicy.model_validate({"ack_window": "PT30M", "ack_reminder_interval": None})
    assert policy.ack_window == minutes(30) and policy.ack_reminder_interval is None


@pytest.mark.parametrize("severity", list(Severity))
def test_a_late_report_never_escalates_for_ack_and_is_reminded_daily(severity: Severity) -> None:
    late = make_case(severity=severity, late_report=True)
    current = make_case(severity=severity)
    week = [T0 + minutes(m) for m in range(0, 7 * 24 * 60, 5)]
    assert not any(isinstance(due_escalation(late, now, EscalationPolicy()), Escalate) for now in week)
    assert isinstance(due_escalation(current, T0 + minutes(60), EscalationPolicy()), Escalate)
    # No 10-minute nagging over an old finding: the ack reminder comes a day later.
    policy = EscalationPolicy()
    assert due_escalation(late, T0 + timedelta(hours=24) - minutes(1), policy) is None
    reminder = due_escalation(late, T0 + timedelta(hours=24), policy)
    assert isinstance(reminder, Remind) and reminder.kind is ReminderKind.AWAITING_ACK
    assert next_due(late, policy.model_copy(update={"late_ack_reminder_interval": None})) is None


def test_a_late_report_still_escalates_a_missed_deadline() -> None:
    # The mine set its own deadline for an old finding; missing it is a failure of today.
    late = make_case(state=CaseState.RECTIFYING, deadline=T0 + timedelta(days=2), late_report=True)
    decision = due_escalation(late, T0 + timedelta(days=2), NO_REMINDERS)
    assert isinstance(decision, Escalate) and decision.cause is EscalationCause.DEADLINE_MISSED
