"""Reading cases and recording actions and the four measures on them, within the caller's scope.

`record_measure` is the one implementation of recording a measure: the API's
`POST /v1/cases/{id}/measures` and the console's form both call it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import cast

import asyncpg

from alerting import store
from alerting.actions import WITHDRAWN_SQL, CaseNotFound, apply_action, checklist_from_json, checklist_to_json
from alerting.checklist import ChecklistItem, DataCheck, DataCheckName, Measure
from alerting.lifecycle import Refused
from alerting.lifecycle import record_measure as decide_measure
from api.auth.principal import Principal
from api.cases.schemas import (
    CaseActionIn,
    CaseDetail,
    CasePage,
    CaseSummary,
    ChecklistItemOut,
    DataCheckOut,
    DataVerdictOut,
    FindingOut,
    HistoryOut,
    MeasureIn,
    NotificationOut,
)
from api.errors import Conflict, Forbidden, Invalid, NotFound
from api.pagination import CursorCodec, paginate
from api.schemas import jsonable
from api.sql import Where

_KIND = "cases"
# WITHDRAWN_SQL: the lifecycle's own definition (every finding withdrawn), two probes of case_findings_pkey.
_COLUMNS = ("c.id, m.code AS mine, c.rule, c.level, c.severity, c.state, c.title, c.opened_at, c.deadline, "
            "c.acknowledged_at, c.closed_at, c.order_id, c.late_report, " + WITHDRAWN_SQL)


def _summary(r: asyncpg.Record) -> CaseSummary:
    return CaseSummary(id=r["id"], mine=r["mine"], rule=r["rule"], level=r["level"], severity=r["severity"],
                       state=r["state"], title=r["title"], opened_at=r["opened_at"], deadline=r["deadline"],
                       acknowledged_at=r["acknowledged_at"], closed_at=r["closed_at"], order_id=r["order_id"],
                       late_report=r["late_report"], withdrawn=r["withdrawn"])


async def list_cases(*, pool: asyncpg.Pool, codec: CursorCodec, principal: Principal, limit: int,
                     cursor: str | None, mine: str | None = None, state: str | None = None,
                     rule: str | None = None, level: str | None = None) -> CasePage:
    """Cases in scope, newest first, filtered by mine code, state, rule and level."""
    w = Where()
    w.scope("c.mine_id", principal)
    if mine is not None:
        w.where(f"m.code = {w.param(mine)}")
    if state is not None:
        w.where(f"c.state = {w.param(state)}")
    if rule is not None:
        w.where(f"c.rule = {w.param(rule)}")
    if level is not None:
        w.where(f"c.level = {w.param(level)}")
    if cursor:
        at, cid = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(c.opened_at, c.id) < ({w.param(at)}, {w.param(cid)})")
    sql = (f"SELECT {_COLUMNS} FROM cases c JOIN mines m ON m.id = c.mine_id WHERE {w.sql} "  # noqa: S608
           f"ORDER BY c.opened_at DESC, c.id DESC LIMIT {w.param(limit + 1)}")
    rows = await pool.fetch(sql, *w.args)
    page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["opened_at"], r["id"]))
    return CasePage(items=[_summary(r) for r in page], next_cursor=nxt)


async def open_cases_of(*, pool: asyncpg.Pool, mine_id: int) -> list[CaseSummary]:
    """The cases of one mine that are not closed, newest first (the mine page shows them)."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM cases c JOIN mines m ON m.id = c.mine_id "  # noqa: S608
        "WHERE c.mine_id = $1 AND c.state <> 'closed' ORDER BY c.opened_at DESC, c.id DESC LIMIT 1000",
        mine_id)
    return [_summary(r) for r in rows]


async def get_case(*, pool: asyncpg.Pool, principal: Principal, case_id: int) -> CaseDetail:
    """One case with findings, checklist, notifications and full history; 404 when not visible."""
    async with pool.acquire() as conn:
        r = await conn.fetchrow(
            f"SELECT {_COLUMNS}, c.mine_id, c.level_since, c.order_min_end, c.checklist "  # noqa: S608
            "FROM cases c JOIN mines m ON m.id = c.mine_id WHERE c.id = $1", case_id)
        if r is None or not principal.sees(r["mine_id"]):
            raise NotFound(f"no case {case_id}")
        findings = await conn.fetch(
            "SELECT f.id, f.rule, f.subject, f.start_ts, f.end_ts, f.level, f.tier, f.state, f.evidence, "
            "f.state = 'superseded' AND f.superseded_by IS NULL AS withdrawn "
            "FROM case_findings cf JOIN findings f ON f.id = cf.finding_id WHERE cf.case_id = $1 "
            "ORDER BY f.start_ts, f.id", case_id)
        notes = await conn.fetch(
            "SELECT id, reason, level, receiver, channel, state, attempts, created_at, delivered_at, last_error "
            "FROM notifications WHERE case_id = $1 ORDER BY created_at, id", case_id)
        history = await conn.fetch(
            "SELECT id, at, actor, role, action, from_state, to_state, comment, detail "
            "FROM case_history WHERE case_id = $1 ORDER BY at, id", case_id)
    checklist = checklist_from_json(r["checklist"])
    return CaseDetail(
        **_summary(r).model_dump(), level_since=r["level_since"], order_min_end=r["order_min_end"],
        findings=[FindingOut(id=f["id"], rule=f["rule"], subject=f["subject"], start=f["start_ts"],
                             end=f["end_ts"], level=f["level"], tier=f["tier"], state=f["state"],
                             withdrawn=f["withdrawn"], evidence=jsonable(f["evidence"])) for f in findings],
        checklist=[_item(i) for i in (checklist.items if checklist else ())],
        notifications=[NotificationOut(id=str(n["id"]), reason=n["reason"], level=n["level"],
                                       receiver=n["receiver"], channel=n["channel"], state=n["state"],
                                       attempts=n["attempts"], created_at=n["created_at"],
                                       delivered_at=n["delivered_at"], last_error=n["last_error"])
                       for n in notes],
        history=[HistoryOut(id=h["id"], at=h["at"], actor=h["actor"], role=h["role"], action=h["action"],
                            from_state=h["from_state"], to_state=h["to_state"], comment=h["comment"],
                            detail=jsonable(h["detail"])) for h in history],
    )


async def act(*, pool: asyncpg.Pool, principal: Principal, case_id: int, body: CaseActionIn,
              now: datetime) -> CaseDetail:
    """Record an action on a visible case; 403 / 409 / 422 when the lifecycle refuses it."""
    mine_id = await pool.fetchval("SELECT mine_id FROM cases WHERE id = $1", case_id)
    if mine_id is None or not principal.sees(cast(int, mine_id)):
        raise NotFound(f"no case {case_id}")
    actor = principal.actor()
    async with pool.acquire() as conn:
        try:
            outcome = await apply_action(conn, case_id=case_id, action=body.action, actor=actor.who,
                                         role=actor.role, scope=actor.scope, comment=body.comment,
                                         deadline=body.deadline, now=now)
        except CaseNotFound as exc:  # deleted between the two statements
            raise NotFound(f"no case {case_id}") from exc
    if isinstance(outcome.result, Refused):
        raise _REFUSALS[outcome.result.reason](outcome.result.detail)
    return await get_case(pool=pool, principal=principal, case_id=case_id)


def _item(i: ChecklistItem) -> ChecklistItemOut:
    checks: Mapping[DataCheckName, DataCheck] = {c.name: c for c in i.data}
    verdict = DataVerdictOut(power_off=_check(checks[DataCheckName.POWER_OFF]),
                             evacuation=_check(checks[DataCheckName.EVACUATION])) if checks else None
    return ChecklistItemOut(measure=i.measure.value, recorded=i.recorded, by=i.by, at=i.at, done_at=i.done_at,
                            note=i.note, by_data=i.by_data, data_verdict=verdict)


def _check(c: DataCheck) -> DataCheckOut:
    return DataCheckOut(status=c.status.value, rule=c.rule, checked_at=c.checked_at, finding_id=c.finding_id,
                        detail=c.detail)


async def record_measure(*, pool: asyncpg.Pool, principal: Principal, case_id: int, body: MeasureIn,
                         now: datetime) -> None:
    """Record one of the four measures on a visible methane case (rules.md §4), in one transaction:
    the case row locked, `alerting.lifecycle.record_measure` deciding, the checklist saved and a
    history line written with who, when, the comment, the measure and when it was done.
    NotFound outside the caller's scope; Forbidden / Conflict / Invalid when the lifecycle refuses."""
    measure = Measure(body.measure)
    note = body.comment.strip() if body.comment and body.comment.strip() else None
    async with pool.acquire() as conn, conn.transaction():
        row = await store.lock_case(conn, case_id, skip_locked=False)
        if row is None or not principal.sees(row.mine_id):
            raise NotFound(f"no case {case_id}")
        view = row.view
        result = decide_measure(view, measure, principal.actor(), now=now, note=note, done_at=body.done_at)
        if isinstance(result, Refused):
            raise _REFUSALS[result.reason](result.detail)
        item = result.item(measure)
        previous = view.checklist.item(measure) if view.checklist else None
        await conn.execute("UPDATE cases SET checklist = $2::jsonb, updated_at = $3 WHERE id = $1",
                           case_id, json.dumps(checklist_to_json(result)), now)
        # A history line without effects: nothing for the alerting worker to carry out.
        await conn.execute(
            "INSERT INTO case_history(case_id, at, actor, role, action, from_state, to_state, comment, detail, "
            "effects, effects_done_at) VALUES ($1,$2,$3,$4,'measure',$5,$5,$6,$7::jsonb,'[]'::jsonb,$2)",
            case_id, now, principal.name, principal.role, view.state.value, note or "",
            json.dumps({"measure": measure.value, "done_at": item.done_at.isoformat() if item.done_at else None,
                        "replaces": bool(previous and previous.recorded)}))


_REFUSALS: dict[str, type[Forbidden] | type[Conflict] | type[Invalid]] = {
    "forbidden": Forbidden, "conflict": Conflict, "invalid": Invalid}
