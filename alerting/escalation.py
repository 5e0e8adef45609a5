"""When a waiting case is escalated up the ladder or its people reminded: pure timer decisions.

The worker asks `due_escalation(case, now, policy)` on each tick (and may sleep until
`next_due(case, policy)`). It applies a decision as follows:
- `Escalate`: set the case's level to `to_level` and `level_since` to now, then carry out
  `decision_effects` (notify the new level and the mine). The next window counts from the
  moment the new level was told, so a level always gets a full window to answer.
- `Remind`: set `last_reminded_at` to now and carry out `decision_effects`.
`occasion` is stable for one decision (it depends on the case, not on `now`), so re-running
a tick after a crash produces the same dedup keys and sends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from pydantic import BaseModel, ConfigDict, field_validator

from alerting.lifecycle import (
    CaseState,
    CaseView,
    Effect,
    Level,
    Notify,
    Reason,
    Severity,
    supervising_level,
)
from alerting.routing import next_level


class EscalationPolicy(BaseModel):
    """Timer settings (rules.md §9); configurable per deployment, validated at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 15 min for red and major hazards, 60 min otherwise: the defaults of rules.md §9.
    ack_window_urgent: timedelta = timedelta(minutes=15)
    ack_window: timedelta = timedelta(minutes=60)
    # An open case nags every 10 min: often enough that a missed SMS is noticed well within
    # the 15-minute urgent window, rarely enough not to train people to ignore it.
    ack_reminder_interval: timedelta | None = timedelta(minutes=10)
    # An acknowledged case nobody plans would otherwise wait silently; nag the mine daily.
    plan_reminder_interval: timedelta | None = timedelta(hours=24)
    # Regulators verify during office hours; one reminder a day is enough.
    verification_reminder_interval: timedelta | None = timedelta(hours=24)
    # After a missed deadline (and once the ladder's top is reached) the mine is nagged daily.
    overdue_reminder_interval: timedelta | None = timedelta(hours=24)
    # A finding older than this when first found (a back-fill of old data, a late upload) opens
    # its case as a late report: no ack-window escalation, since nothing is happening now that a
    # faster answer would change. A day: link outages and late daily uploads are found within it.
    late_report_after: timedelta = timedelta(hours=24)
    # A late report still waits for acknowledgement; it is reminded of daily, not every 10 min.
    late_ack_reminder_interval: timedelta | None = timedelta(hours=24)

    @field_validator("*")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    def window(self, severity: Severity) -> timedelta:
        """The ack (and repeat-escalation) window for a case of this severity."""
        urgent = severity in (Severity.RED, Severity.MAJOR)
        return self.ack_window_urgent if urgent else self.ack_window


class EscalationCause(StrEnum):
    """Why a case is escalated."""

    ACK_TIMEOUT = "ack_timeout"  # nobody acknowledged within the window at the current level
    DEADLINE_MISSED = "deadline_missed"  # the rectification deadline passed without evidence


class ReminderKind(StrEnum):
    """What a case is waiting for when a reminder goes out."""

    AWAITING_ACK = "awaiting_ack"
    AWAITING_PLAN = "awaiting_plan"
    AWAITING_VERIFICATION = "awaiting_verification"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class Escalate:
    """Raise the case one level, for `cause`; `detail` is the human-readable reason."""

    to_level: Level
    from_level: Level
    cause: EscalationCause
    due_at: datetime
    detail: str

    @property
    def occasion(self) -> str:
        """Stable discriminator of this escalation for notification dedup keys."""
        return f"{self.from_level.value}>{self.to_level.value}@{self.due_at.isoformat()}"


@dataclass(frozen=True, slots=True)
class Remind:
    """Remind `levels` that the case waits for `kind`; `detail` is the reason."""

    kind: ReminderKind
    levels: tuple[Level, ...]
    due_at: datetime
    detail: str

    @property
    def occasion(self) -> str:
        """Stable discriminator of this reminder for notification dedup keys."""
        return f"{self.kind.value}@{self.due_at.isoformat()}"


Decision: TypeAlias = Escalate | Remind


def due_escalation(case: CaseView, now: datetime, policy: EscalationPolicy) -> Decision | None:
    """What is due for `case` at `now`: an escalation (which wins over a reminder due at the
    same time, since it notifies anyway), a reminder, or None when nothing is due."""
    due = [d for d in _timers(case, policy) if d.due_at <= now]
    escalations = [d for d in due if isinstance(d, Escalate)]
    if escalations:
        return min(escalations, key=lambda d: d.due_at)
    return min(due, key=lambda d: d.due_at) if due else None


def next_due(case: CaseView, policy: EscalationPolicy) -> datetime | None:
    """The earliest time a decision becomes due for `case` as it stands, or None if never
    (acknowledged and not rectifying, or closed): lets a scheduler sleep until then."""
    times = [d.due_at for d in _timers(case, policy)]
    return min(times) if times else None


def decision_effects(case: CaseView, decision: Decision) -> tuple[Effect, ...]:
    """The notifications a decision causes: an escalation tells the new level and the mine
    (so it knows its case went up); a reminder tells the levels named in it."""
    if isinstance(decision, Escalate):
        return (Notify((decision.to_level, Level.MINE), Reason.ESCALATED),)
    return (Notify(decision.levels, Reason.REMINDER),)


def _timers(case: CaseView, policy: EscalationPolicy) -> list[Decision]:
    """Every decision the case's current state can lead to, each with the time it falls due
    (none for a withdrawn case: there is nothing left to escalate or remind of)."""
    if case.withdrawn:
        return []
    timers = (_escalation(case, policy), _reminder(case, policy))
    return [t for t in timers if t is not None]


def _escalation(case: CaseView, policy: EscalationPolicy) -> Escalate | None:
    up = next_level(case.level)
    if up is None:
        return None
    window = policy.window(case.severity)
    if case.state is CaseState.OPEN:
        if case.late_report:
            return None  # an old finding is not an emergency: no ack-window escalation
        return Escalate(
            up, case.level, EscalationCause.ACK_TIMEOUT, case.level_since + window,
            f"not acknowledged within {_minutes(window)} at {case.level.value} level",
        )
    if case.state is CaseState.RECTIFYING and case.deadline is not None:
        # First escalation at the deadline; then one level per window, counted from the last
        # escalation, until the province (a new deadline from `reject` restarts it).
        escalated_since = case.level_since >= case.deadline
        return Escalate(
            up, case.level, EscalationCause.DEADLINE_MISSED,
            case.level_since + window if escalated_since else case.deadline,
            f"rectification deadline {case.deadline.isoformat()} passed without evidence",
        )
    return None


def _reminder(case: CaseView, policy: EscalationPolicy) -> Remind | None:
    mine_and_level = tuple(dict.fromkeys((Level.MINE, case.level)))
    # state -> (what it waits for, interval, since when, whom to remind, why)
    waits: dict[CaseState, tuple[ReminderKind, timedelta | None, datetime | None,
                                 tuple[Level, ...], str]] = {
        CaseState.OPEN: (ReminderKind.AWAITING_ACK,
                         policy.late_ack_reminder_interval if case.late_report else policy.ack_reminder_interval,
                         case.level_since, mine_and_level, "still not acknowledged since {}"),
        CaseState.ACKNOWLEDGED: (ReminderKind.AWAITING_PLAN, policy.plan_reminder_interval,
                                 case.state_since, (Level.MINE,),
                                 "acknowledged {} but no rectification plan yet"),
        CaseState.RECTIFYING: (ReminderKind.OVERDUE, policy.overdue_reminder_interval,
                               case.deadline, mine_and_level, "rectification overdue since {}"),
        CaseState.RECTIFIED: (ReminderKind.AWAITING_VERIFICATION,
                              policy.verification_reminder_interval, case.state_since,
                              (supervising_level(case.level),),
                              "evidence submitted {} awaits verification"),
    }
    if case.state not in waits:
        return None
    kind, interval, since, levels, why = waits[case.state]
    if interval is None or since is None:
        return None
    return Remind(kind, levels, _after(since, case.last_reminded_at, interval),
                  why.format(since.isoformat()))


def _after(since: datetime, last_reminded: datetime | None, interval: timedelta) -> datetime:
    """Next reminder time: one interval after the later of the wait's start and the last
    reminder, so reminders never come more often than the interval."""
    base = since if last_reminded is None else max(since, last_reminded)
    return base + interval


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"
