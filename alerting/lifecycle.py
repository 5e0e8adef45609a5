"""The supervised-rectification (挂牌督办) case lifecycle as one pure transition function.

`transition(case, action, actor, now=..., comment=..., deadline=...)` decides; it never
writes. The caller (the API's case service, through `alerting.store`) applies an
`Allowed` outcome: it sets the state to `new_state`, stores `record` in the history,
sets the deadline to `record.deadline` when that is not None, and carries out `effects`
(notifications through routing and the outbox, lifting an order). A `Refused` outcome
maps to an HTTP status through `Refused.http_status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, TypeAlias

from alerting.checklist import Checklist, Measure
from alerting.errors import AlertingError


class CaseState(StrEnum):
    """Where a case stands: open → acknowledged → rectifying → rectified → verified → closed."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # 叫应: the responsible person confirmed receipt
    RECTIFYING = "rectifying"  # a plan and a deadline
    RECTIFIED = "rectified"  # evidence submitted
    VERIFIED = "verified"  # the supervising regulator accepted
    CLOSED = "closed"  # 销号


class Action(StrEnum):
    """What a user can do to a case (the contract's `POST /v1/cases/{id}/actions`)."""

    ACKNOWLEDGE = "acknowledge"
    PLAN = "plan"
    SUBMIT = "submit"
    VERIFY = "verify"
    REJECT = "reject"
    CLOSE = "close"


class Role(StrEnum):
    """The role of whoever acts; the first five are the API token roles, `system` is the service."""

    MINE = "mine"
    COUNTY = "county"
    CITY = "city"
    PROVINCE = "province"
    ADMIN = "admin"
    SYSTEM = "system"


class Level(StrEnum):
    """A rung of the supervision ladder a case is raised at, lowest first."""

    MINE = "mine"
    COUNTY = "county"
    CITY = "city"
    PROVINCE = "province"

    @property
    def rank(self) -> int:
        """Position on the ladder: mine 0, county 1, city 2, province 3."""
        return LADDER.index(self)


# The escalation ladder mine → county → city → province.
LADDER: tuple[Level, ...] = tuple(Level)


class Reason(StrEnum):
    """Why a notification is sent (the contract's webhook `reason`)."""

    RAISED = "raised"
    ESCALATED = "escalated"
    REMINDER = "reminder"
    STATE_CHANGED = "state_changed"
    RESOLVED = "resolved"


class Severity(StrEnum):
    """How urgent a case is: red and major hazards get the short ack window and 双报告 (major)."""

    NORMAL = "normal"
    RED = "red"
    MAJOR = "major"  # 重大事故隐患

    @property
    def rank(self) -> int:
        """Order of severity, normal lowest."""
        return tuple(Severity).index(self)


class CaseKind(StrEnum):
    """What opened the case, as far as the lifecycle cares."""

    METHANE = "methane"  # a methane exceedance event: closing needs the four measures
    ORDER = "order"  # a shutdown order (停产整顿): verification may lift the order
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Regions:
    """The administrative region codes a mine lies in, one per regulator level."""

    county: str
    city: str
    province: str

    def code(self, level: Level) -> str | None:
        """The region code of a regulator level; None for the mine level."""
        return None if level is Level.MINE else str(getattr(self, level.value))


@dataclass(frozen=True, slots=True)
class OrderRef:
    """The shutdown order a case tracks: it lifts once verified and `min_end` has passed."""

    id: str
    min_end: datetime


@dataclass(frozen=True, slots=True)
class CaseView:
    """What the pure decisions need to know about a case (the store builds it from its rows)."""

    id: str
    mine: str
    regions: Regions
    rule: str
    kind: CaseKind
    severity: Severity
    state: CaseState
    level: Level  # the level the case is currently raised at
    opened_at: datetime
    level_since: datetime  # when it was raised (or escalated) to `level`
    state_since: datetime  # when it entered `state`
    deadline: datetime | None = None  # rectification deadline, set by plan (or reject)
    last_reminded_at: datetime | None = None
    checklist: Checklist | None = None  # methane cases only
    order: OrderRef | None = None  # shutdown-order cases only
    # Every finding of the case was withdrawn by re-evaluation (late data or a threshold
    # correction shows no exceedance / no count any more): nothing is left to rectify, so its
    # timers stop and the supervising regulator may close it from any state, with a reason.
    withdrawn: bool = False
    # Opened from a finding that was already old when first found (a back-fill, a late upload):
    # recorded, routed and visible like any case, but not urgent, so no ack-window escalation
    # (`alerting.escalation`; the age is `EscalationPolicy.late_report_after`).
    late_report: bool = False


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts. `scope` holds mine codes for the mine role, region codes for regulators."""

    who: str
    role: Role
    scope: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Notify:
    """Effect: notify the receivers of these levels of the case's mine, for this reason."""

    levels: tuple[Level, ...]
    reason: Reason


@dataclass(frozen=True, slots=True)
class LiftOrder:
    """Effect: lift the shutdown order (idempotent: it may be emitted on verify and on close)."""

    order_id: str


@dataclass(frozen=True, slots=True)
class StopEscalation:
    """Effect: cancel pending timers. `ack` after acknowledgement, `deadline` once evidence is
    in, `all` on close. The decisions in `escalation` already follow the state; this tells a
    scheduler that keeps its own timers what to drop."""

    timer: Literal["ack", "deadline", "all"]


Effect: TypeAlias = Notify | LiftOrder | StopEscalation


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One line of a case's history: who did what, when, from which state to which."""

    who: str
    role: Role
    at: datetime
    from_state: CaseState
    to_state: CaseState
    action: Action
    comment: str | None
    deadline: datetime | None = None  # the deadline set by this action, if any


@dataclass(frozen=True, slots=True)
class Allowed:
    """The action is allowed: the case moves to `new_state` and `effects` follow."""

    new_state: CaseState
    effects: tuple[Effect, ...]
    record: TransitionRecord


RefusalReason: TypeAlias = Literal["forbidden", "conflict", "invalid"]

_HTTP_STATUS: dict[str, int] = {"forbidden": 403, "conflict": 409, "invalid": 422}


@dataclass(frozen=True, slots=True)
class Refused:
    """The action is refused: `forbidden` (the role may never), `conflict` (not in this state),
    `invalid` (the request itself is wrong, e.g. a plan without a deadline)."""

    reason: RefusalReason
    detail: str

    @property
    def http_status(self) -> int:
        """403, 409 or 422."""
        return _HTTP_STATUS[self.reason]


Outcome: TypeAlias = Allowed | Refused

# action -> (states it may be taken in, state it leads to)
_EDGES: dict[Action, tuple[frozenset[CaseState], CaseState]] = {
    Action.ACKNOWLEDGE: (frozenset({CaseState.OPEN}), CaseState.ACKNOWLEDGED),
    Action.PLAN: (frozenset({CaseState.ACKNOWLEDGED}), CaseState.RECTIFYING),
    Action.SUBMIT: (frozenset({CaseState.RECTIFYING}), CaseState.RECTIFIED),
    Action.VERIFY: (frozenset({CaseState.RECTIFIED}), CaseState.VERIFIED),
    # a refusal of the evidence (from rectified) or of the verification (from verified)
    Action.REJECT: (frozenset({CaseState.RECTIFIED, CaseState.VERIFIED}), CaseState.RECTIFYING),
    Action.CLOSE: (frozenset({CaseState.VERIFIED}), CaseState.CLOSED),
}

# The mine's actions; the other three (verify, reject, close) are the regulator's.
MINE_ACTIONS = frozenset({Action.ACKNOWLEDGE, Action.PLAN, Action.SUBMIT})
# Text the mine must give: the evidence, and the regulator's reason for refusing it.
_NEEDS_COMMENT = frozenset({Action.SUBMIT, Action.REJECT})

# Timers an action makes moot: the ack window, the rectification deadline, or all of them.
_STOPS: dict[Action, Literal["ack", "deadline", "all"]] = {
    Action.ACKNOWLEDGE: "ack", Action.SUBMIT: "deadline", Action.CLOSE: "all",
}

_REGULATOR_LEVEL: dict[Role, Level] = {
    Role.COUNTY: Level.COUNTY, Role.CITY: Level.CITY, Role.PROVINCE: Level.PROVINCE,
}


def supervising_level(level: Level) -> Level:
    """The regulator level that supervises a case raised at `level`: a case raised only at the
    mine level is still supervised by the county (a mine never verifies its own work)."""
    return Level.COUNTY if level is Level.MINE else level


def transition(
    case: CaseView,
    action: Action,
    actor: Actor,
    *,
    now: datetime,
    comment: str | None,
    deadline: datetime | None,
) -> Outcome:
    """Decide whether `actor` may take `action` on `case` at `now`, and what follows. Checks
    run in this order: the role (403), the state (409), then the request (422), so a plan
    without a deadline on an open case is a conflict."""
    _require_aware(now)
    denied = _forbidden(case, action, actor)
    if denied is not None:
        return Refused("forbidden", denied)
    sources, target = _EDGES[action]
    if action is Action.CLOSE and case.withdrawn:
        sources = frozenset(CaseState) - {CaseState.CLOSED}
    if case.state not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        detail = f"cannot {action.value} a case that is {case.state.value} (only {allowed})"
        return Refused("conflict", detail)
    problem = _invalid(action, now=now, comment=comment, deadline=deadline)
    if problem is None and action is Action.CLOSE and case.withdrawn and not (comment and comment.strip()):
        problem = "closing a case whose findings were withdrawn needs a comment with the reason"
    if problem is not None:
        return Refused("invalid", problem)
    if action in (Action.VERIFY, Action.CLOSE) and case.kind is CaseKind.METHANE and not case.withdrawn:
        # rules.md §4: the regulator refuses a verification that lacks a measure, and closing
        # requires all four; verifying without them would only leave a case that cannot close.
        missing = missing_measures(case)
        if missing:
            names = ", ".join(m.value for m in missing)
            return Refused("conflict", f"cannot {action.value} a methane case before its four measures "
                                       f"are recorded; missing: {names}")
    record = TransitionRecord(
        who=actor.who, role=actor.role, at=now, from_state=case.state, to_state=target,
        action=action, comment=comment, deadline=deadline,
    )
    return Allowed(target, _effects(case, action, now), record)


def open_effects(case: CaseView) -> tuple[Effect, ...]:
    """The effects of opening a case (not a transition: the store creates it in `open`):
    tell the mine and the level the case is raised at."""
    levels = (Level.MINE,) if case.level is Level.MINE else (Level.MINE, case.level)
    return (Notify(levels, Reason.RAISED),)


def order_may_lift(case: CaseView, order_min_end: datetime, now: datetime) -> bool:
    """A shutdown order lifts only when its rectification is verified AND its minimum end has
    passed (rules.md §3): the worker asks this at `min_end` for cases verified early."""
    return case.state in (CaseState.VERIFIED, CaseState.CLOSED) and now >= order_min_end


def missing_measures(case: CaseView) -> tuple[Measure, ...]:
    """The four measures a methane case still lacks (all four when it has no checklist)."""
    return case.checklist.missing() if case.checklist else tuple(Measure)


def record_measure(
    case: CaseView, measure: Measure, actor: Actor, *, now: datetime, note: str | None,
    done_at: datetime | None = None,
) -> Checklist | Refused:
    """Record one of the four measures on a methane case, done at `done_at` (default `now`);
    only the mine's own users may, and not after the case is closed. Checks run as in
    `transition`: the role and scope (403), the case (409), then the request (422: a naive or
    future `done_at`). Returns the new checklist for the store to save."""
    _require_aware(now)
    if actor.role is not Role.MINE:
        return Refused("forbidden", "only the mine's own users record the four measures")
    if not _in_scope(case, actor):
        return Refused("forbidden", f"{actor.who} does not act for mine {case.mine}")
    if case.kind is not CaseKind.METHANE or case.checklist is None:
        return Refused("conflict", "only methane cases carry the four-measure checklist")
    if case.state is CaseState.CLOSED:
        return Refused("conflict", "the case is closed")
    if done_at is not None:
        if done_at.tzinfo is None:
            return Refused("invalid", "done_at must carry a UTC offset")
        if done_at > now:
            return Refused("invalid", f"done_at {done_at.isoformat()} is in the future "
                                      f"(now is {now.isoformat()})")
    return case.checklist.record(measure, by=actor.who, now=now, note=note, done_at=done_at)


def _forbidden(case: CaseView, action: Action, actor: Actor) -> str | None:
    """Why the role may never take this action on this case, or None."""
    if actor.role is Role.MINE:
        if action not in MINE_ACTIONS:
            return f"the mine cannot {action.value} its own case; the supervising regulator does"
        if not _in_scope(case, actor):
            return f"{actor.who} does not act for mine {case.mine}"
        return None
    if action in MINE_ACTIONS:
        return f"only the mine's own users {action.value} a case"
    if actor.role is Role.ADMIN:
        return None
    if actor.role is Role.SYSTEM:
        # The service escalates and reminds through `escalation`, never through user actions.
        return f"the system does not {action.value} cases"
    level = _REGULATOR_LEVEL[actor.role]
    supervising = supervising_level(case.level)
    if level.rank < supervising.rank:
        return (f"the case is supervised at {supervising.value} level; a {level.value} "
                f"regulator cannot {action.value} it")
    if not _in_scope(case, actor):
        return f"{actor.who} does not supervise the region of mine {case.mine}"
    return None


def _in_scope(case: CaseView, actor: Actor) -> bool:
    if actor.role in (Role.ADMIN, Role.SYSTEM):
        return True
    if actor.role is Role.MINE:
        return case.mine in actor.scope
    return case.regions.code(_REGULATOR_LEVEL[actor.role]) in actor.scope


def _invalid(
    action: Action, *, now: datetime, comment: str | None, deadline: datetime | None
) -> str | None:
    """What is wrong with the request itself, or None."""
    if action in _NEEDS_COMMENT and not (comment and comment.strip()):
        what = "evidence" if action is Action.SUBMIT else "the reason for refusing"
        return f"{action.value} needs a comment with {what}"
    if action is Action.PLAN and deadline is None:
        return "plan needs a deadline"
    if deadline is not None:
        if action not in (Action.PLAN, Action.REJECT):
            return f"{action.value} takes no deadline (only plan and reject do)"
        if deadline.tzinfo is None:
            return "deadline must carry a UTC offset"
        if deadline <= now:
            return "deadline must be in the future"
    return None


def _effects(case: CaseView, action: Action, now: datetime) -> tuple[Effect, ...]:
    supervising = supervising_level(case.level)
    effects: list[Effect] = []
    if action in MINE_ACTIONS:
        # The regulator watching the case learns what the mine did.
        effects.append(Notify((supervising,), Reason.STATE_CHANGED))
    elif action is Action.CLOSE:
        effects.append(Notify((Level.MINE, supervising), Reason.RESOLVED))
    else:
        # verify / reject: the mine learns the regulator's decision.
        effects.append(Notify((Level.MINE,), Reason.STATE_CHANGED))
    if action in _STOPS:
        effects.append(StopEscalation(_STOPS[action]))
    if (action in (Action.VERIFY, Action.CLOSE) and case.order is not None
            and now >= case.order.min_end):
        effects.append(LiftOrder(case.order.id))
    return tuple(effects)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise AlertingError("now must be an aware datetime")
