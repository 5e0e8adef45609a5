"""The notification a pipeline stage takes and returns, the stage signature and its context."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from alerting.lifecycle import CaseState, Level, Reason, Severity
from minewatch import rule_ids


class ChannelKind(StrEnum):
    """How a notification travels."""

    SMS = "sms"
    WEBHOOK = "webhook"


@dataclass(frozen=True, slots=True)
class FindingRef:
    """What a notification is about: one finding of one case, as people need to read it."""

    id: str
    case_id: str
    rule: str  # the rule id, e.g. "methane_exceedance", "seal_breach"
    kind: str  # the rule family, e.g. "methane"; inhibition compares kinds
    subject: str  # the point / area / station code the finding is on (silences match it)
    started_at: datetime
    label: str | None = None  # a short human name for `subject`, shown in messages
    value: float | None = None  # the peak, when the finding has one
    unit: str | None = None
    # The points behind the finding when its subject is a face or mine (an exceedance event's
    # `evidence.points`): a silence on points covers it only when it covers all of them.
    points: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one receiver over one channel address, for one reason.

    `occasion` tells apart repeated events with the same reason (the escalation's levels and
    due time, the reminder's due time, the transition's time); it must be the same when the
    same event is processed twice, so that `dedup_key` is too. `members` are the ids of the
    notifications this one stands for after grouping (itself when not grouped), and `keys`
    their dedup keys: the worker marks all members done and records all keys as sent.
    Stages that narrow a notification use `narrowed` (built on `dataclasses.replace`), which
    keeps id, members and keys; build a new notification through the constructor to get a
    fresh key.
    """

    id: str
    case_ids: tuple[str, ...]
    mine: str
    mine_name: str
    level: Level  # the level the case is raised at (what the message says)
    severity: Severity
    receiver_id: str
    lang: str
    channel: ChannelKind
    address: str  # the phone number or the webhook URL
    reason: Reason
    occasion: str
    findings: tuple[FindingRef, ...]
    created_at: datetime
    case_state: CaseState | None = None  # for state_changed messages
    ack_by_reply: bool = False  # the receiver may acknowledge by replying `1 <case id>`
    members: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.findings:
            raise ValueError("a notification carries at least one finding of its case(s)")
        if not self.members:
            object.__setattr__(self, "members", (self.id,))
        if not self.keys:
            object.__setattr__(self, "keys", (self._own_key(),))

    @property
    def rule(self) -> str:
        """The rule of the first finding, which names the notification in messages."""
        return self.findings[0].rule

    @property
    def dedup_key(self) -> str:
        """By case(s), reason, occasion, receiver and channel address; a grouped notification's
        key is a digest of its members' keys."""
        if len(self.keys) == 1:
            return self.keys[0]
        return "group:" + digest(self.keys)

    def narrowed(self, findings: tuple[FindingRef, ...]) -> Notification:
        """The same notification about fewer of its findings (what inhibit and silence leave):
        the cases none of whose findings are left are dropped from `case_ids` too, so the
        message neither names nor asks to acknowledge a case it no longer speaks of."""
        left = {f.case_id for f in findings}
        case_ids = tuple(c for c in self.case_ids if c in left) or self.case_ids
        return replace(self, findings=findings, case_ids=case_ids)

    def _own_key(self) -> str:
        return notification_key(
            self.case_ids, self.reason, self.occasion, self.receiver_id, self.channel,
            self.address,
        )


@dataclass(frozen=True, slots=True)
class ActiveOrder:
    """A shutdown order in force on a mine, as the inhibit stage needs it."""

    mine: str
    order_id: str
    kind: str  # the kind of finding that triggered it, e.g. "methane"
    severity: Severity = Severity.RED


@dataclass(frozen=True, slots=True)
class Silence:
    """A maintenance silence: suppresses notifications (never cases) of a mine, narrowed to a
    point and/or a rule when those are given, for [starts_at, ends_at)."""

    id: str
    mine: str
    starts_at: datetime
    ends_at: datetime
    point: str | None = None
    rule: str | None = None
    created_by: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if self.ends_at <= self.starts_at:
            raise ValueError(f"silence {self.id} ends before it starts")

    def matches(self, mine: str, finding: FindingRef, now: datetime) -> bool:
        """True when this silence covers `finding` of `mine` at `now`."""
        return (
            self.starts_at <= now < self.ends_at
            and self.mine == mine
            and (self.point is None or self.point == finding.subject)
            and (self.rule is None or self.rule == finding.rule)
        )


# Rules whose notifications an order never inhibits: a breach of the seal and a failed power
# cut are exactly what must get through while a mine is meant to be stopped (rules.md §4, §7),
# and so are people where they must not be: in a restricted area, at a face after a power-off
# reading, or more of them than approved.
NEVER_INHIBITED: frozenset[str] = frozenset({
    rule_ids.SEAL_BREACH, rule_ids.POWER_OFF_FAILURE, rule_ids.RESTRICTED_AREA, rule_ids.WORK_CONTINUED,
    rule_ids.OVER_CAPACITY,
})

# Grouping window: points of one mine exceeding within a minute are one incident to a person
# reading SMS; a minute is also short enough that grouping does not delay the first alarm much.
DEFAULT_GROUP_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class StageContext:
    """Everything a stage may consult besides the notifications; `now` is injected."""

    now: datetime
    group_window: timedelta = DEFAULT_GROUP_WINDOW
    active_orders: Mapping[str, ActiveOrder] = field(default_factory=dict)  # by mine code
    silences: Sequence[Silence] = ()
    sent_keys: AbstractSet[str] = frozenset()  # dedup keys already delivered or enqueued
    never_inhibited: frozenset[str] = NEVER_INHIBITED


Stage: TypeAlias = Callable[[Sequence[Notification], StageContext], Sequence[Notification]]


def notification_key(
    case_ids: Sequence[str],
    reason: Reason,
    occasion: str,
    receiver_id: str,
    channel: ChannelKind,
    address: str,
) -> str:
    """The dedup key of one (ungrouped) notification."""
    cases = "+".join(case_ids)
    return f"{cases}|{reason.value}|{occasion}|{receiver_id}|{channel.value}:{address}"


def digest(parts: Sequence[str]) -> str:
    """A short stable digest of strings (order-insensitive): ids and keys of groups."""
    text = "\n".join(sorted(parts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
