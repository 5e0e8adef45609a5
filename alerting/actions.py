"""Applying a user's case action: lock the case, decide with the pure lifecycle, record it, in one transaction.

The effects of an allowed transition (notify, lift an order, stop timers) are not
carried out here: they are stored as JSON in `case_history.effects` for the
alerting worker, which sets `effects_done_at` once it has done them. The JSON
shapes are defined by `effects_to_json` / `effects_from_json` below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from alerting.checklist import Checklist, ChecklistItem, CheckStatus, DataCheck, DataCheckName, Measure
from alerting.errors import AlertingError
from alerting.lifecycle import (
    Action,
    Actor,
    Allowed,
    CaseKind,
    CaseState,
    CaseView,
    Effect,
    Level,
    LiftOrder,
    Notify,
    OrderRef,
    Reason,
    Refused,
    Regions,
    Role,
    Severity,
    StopEscalation,
    transition,
)


class CaseNotFound(AlertingError):
    """No case has this id."""


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What came of an action: the lifecycle's decision and, when allowed, the history row written."""

    case_id: int
    result: Allowed | Refused
    history_id: int | None

    @property
    def applied(self) -> bool:
        return isinstance(self.result, Allowed)


# A case is withdrawn when it has findings and every one of them was superseded with no
# successor (rules marks a finding so when re-evaluation shows it no longer holds). A scalar
# subquery, evaluated per case through case_findings_pkey: as EXISTS / NOT EXISTS, a page of
# cases (api/cases) was planned as hash semi-joins over all of case_findings and findings.
WITHDRAWN_SQL = """(SELECT count(*) > 0 AND bool_and(w.state = 'superseded' AND w.superseded_by IS NULL)
        FROM case_findings wf JOIN findings w ON w.id = wf.finding_id WHERE wf.case_id = c.id) AS withdrawn"""

_LOCK = """
SELECT c.id, c.rule, c.level, c.severity, c.state, c.opened_at, c.level_since, c.deadline,
       c.last_reminder_at, c.checklist, c.order_id, COALESCE(c.order_min_end, o.min_end_ts) AS order_min_end,
       m.code AS mine, m.county, m.city, m.province,
       COALESCE((SELECT max(h.at) FROM case_history h WHERE h.case_id = c.id AND h.to_state = c.state),
                c.opened_at) AS state_since,
       {WITHDRAWN}
FROM cases c
JOIN mines m ON m.id = c.mine_id
LEFT JOIN orders o ON o.id = c.order_id
WHERE c.id = $1
FOR UPDATE OF c
""".replace("{WITHDRAWN}", WITHDRAWN_SQL)


async def apply_action(
    conn: asyncpg.Connection | PoolConnectionProxy,
    *,
    case_id: int,
    action: Action | str,
    actor: str,
    role: Role | str,
    scope: frozenset[str] = frozenset(),
    comment: str | None,
    deadline: datetime | None,
    now: datetime,
) -> ActionOutcome:
    """Take `action` on case `case_id` as `actor` (with `role` and its `scope`: mine codes for the
    mine role, the region code for regulators).

    Locks the case row, asks `alerting.lifecycle.transition`, and when allowed updates `cases` and
    appends a `case_history` row carrying the transition and its effects, all in one transaction.
    A refused action writes nothing. Raises CaseNotFound when no case has this id.
    """
    act = Action(action)
    who = Actor(who=actor, role=Role(role), scope=scope)
    async with conn.transaction():
        row = await conn.fetchrow(_LOCK, case_id)
        if row is None:
            raise CaseNotFound(f"no case {case_id}")
        view = case_view(row)
        result = transition(view, act, who, now=now, comment=comment, deadline=deadline)
        if isinstance(result, Refused):
            return ActionOutcome(case_id, result, None)
        rec = result.record
        await conn.execute(
            "UPDATE cases SET state = $2, deadline = COALESCE($3, deadline), "
            "acknowledged_at = CASE WHEN $4 THEN $5 ELSE acknowledged_at END, "
            "closed_at = CASE WHEN $6 THEN $5 ELSE closed_at END, updated_at = $5 WHERE id = $1",
            case_id, result.new_state.value, rec.deadline, act is Action.ACKNOWLEDGE, now,
            result.new_state is CaseState.CLOSED)
        effects = effects_to_json(result.effects)
        history_id: int = await conn.fetchval(
            "INSERT INTO case_history(case_id, at, actor, role, action, from_state, to_state, comment, "
            "detail, effects, effects_done_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10::jsonb,$11) "
            "RETURNING id",
            case_id, rec.at, rec.who, rec.role.value, rec.action.value, rec.from_state.value,
            rec.to_state.value, rec.comment or "",
            json.dumps({"deadline": rec.deadline.isoformat() if rec.deadline else None}),
            json.dumps(effects), None if effects else now)
        # Wake the alerting worker; it also polls, so a lost notification only delays the effects.
        await conn.execute("SELECT pg_notify('minewatch_case_actions', $1)", str(history_id))
    return ActionOutcome(case_id, result, history_id)


def case_view(row: asyncpg.Record | dict[str, Any]) -> CaseView:
    """The lifecycle's view of a `cases` row joined with its mine (columns as in `_LOCK`)."""
    checklist = checklist_from_json(row["checklist"])
    if row["order_id"] is not None:
        kind = CaseKind.ORDER
    elif checklist is not None:
        kind = CaseKind.METHANE
    else:
        kind = CaseKind.OTHER
    order = (OrderRef(str(row["order_id"]), row["order_min_end"])
             if row["order_id"] is not None and row["order_min_end"] is not None else None)
    return CaseView(
        id=str(row["id"]), mine=row["mine"],
        regions=Regions(county=row["county"], city=row["city"], province=row["province"]),
        rule=row["rule"], kind=kind, severity=Severity(row["severity"]), state=CaseState(row["state"]),
        level=Level(row["level"]), opened_at=row["opened_at"], level_since=row["level_since"],
        state_since=row["state_since"], deadline=row["deadline"], last_reminded_at=row["last_reminder_at"],
        checklist=checklist, order=order, withdrawn=bool(row.get("withdrawn", False)),
        late_report=bool(row.get("late_report", False)),
    )


def checklist_to_json(checklist: Checklist) -> list[dict[str, Any]]:
    """The `cases.checklist` JSON of a methane case: one object per measure, in regulation order."""
    return [{"measure": i.measure.value, "recorded": i.recorded, "by": i.by,
             "at": i.at.isoformat() if i.at else None, "note": i.note, "by_data": i.by_data,
             "done_at": i.done_at.isoformat() if i.done_at else None,
             "data": [{"name": c.name.value, "status": c.status.value,
                       "checked_at": c.checked_at.isoformat() if c.checked_at else None,
                       "finding_id": c.finding_id, "detail": c.detail} for c in i.data]}
            for i in checklist.items]


def checklist_from_json(raw: str | list[Any] | None) -> Checklist | None:
    """Parse `cases.checklist`; None for a case without one (an empty array)."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not data:
        return None
    by_measure = {str(d.get("measure")): d for d in data if isinstance(d, dict)}
    items = []
    for m in Measure:
        d = by_measure.get(m.value, {})
        at, done_at = d.get("at"), d.get("done_at")
        checks = {str(c.get("name")): c for c in d.get("data") or () if isinstance(c, dict)}
        # Rows written before the data checks existed have none: they read as not checked.
        data = tuple(_data_check(name, checks.get(name.value, {})) for name in DataCheckName) \
            if m is Measure.POWER_OFF_EVACUATE else ()
        items.append(ChecklistItem(m, recorded=bool(d.get("recorded", False)), by=d.get("by"),
                                   at=datetime.fromisoformat(at) if at else None, note=d.get("note"),
                                   by_data=bool(d.get("by_data", False)),
                                   done_at=datetime.fromisoformat(done_at) if done_at else None, data=data))
    return Checklist(tuple(items))


def _data_check(name: DataCheckName, d: dict[str, Any]) -> DataCheck:
    checked_at, finding_id = d.get("checked_at"), d.get("finding_id")
    return DataCheck(name, status=CheckStatus(d.get("status", CheckStatus.NOT_CHECKED.value)),
                     checked_at=datetime.fromisoformat(checked_at) if checked_at else None,
                     finding_id=int(finding_id) if finding_id is not None else None, detail=d.get("detail"))


def effects_to_json(effects: tuple[Effect, ...]) -> list[dict[str, Any]]:
    """Effects as stored in `case_history.effects`."""
    out: list[dict[str, Any]] = []
    for e in effects:
        if isinstance(e, Notify):
            out.append({"type": "notify", "levels": [lv.value for lv in e.levels], "reason": e.reason.value})
        elif isinstance(e, LiftOrder):
            out.append({"type": "lift_order", "order_id": e.order_id})
        else:
            out.append({"type": "stop_escalation", "timer": e.timer})
    return out


def effects_from_json(raw: str | list[Any]) -> tuple[Effect, ...]:
    """The inverse of `effects_to_json`, for the worker that carries the effects out."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    out: list[Effect] = []
    for d in data:
        kind = d.get("type")
        if kind == "notify":
            out.append(Notify(tuple(Level(v) for v in d["levels"]), Reason(d["reason"])))
        elif kind == "lift_order":
            out.append(LiftOrder(str(d["order_id"])))
        elif kind == "stop_escalation":
            out.append(StopEscalation(d["timer"]))
        else:
            raise AlertingError(f"unknown effect type {kind!r} in case_history.effects")
    return tuple(out)
