"""Cases from findings, and the timers that move them: opening, escalation, reminders, order lifting.

Three steps of the alerting worker, each its own transaction(s):
- `sync_findings` claims findings changed since their case last saw them (FOR UPDATE SKIP
  LOCKED on the `case_synced_at` watermark) and opens or updates their cases;
- `settle_orders` lifts shutdown orders whose minimum end has passed and whose case is
  verified, and marks the others as awaiting verification;
- `run_timers` asks `alerting.escalation.due_escalation` of every waiting case and applies
  the escalation or reminder that is due.
Every change is a case_history row; notifications follow from the rows' effects
(`alerting.outbox`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg

from alerting import store
from alerting.actions import checklist_to_json
from alerting.checklist import Checklist
from alerting.escalation import (
    Decision,
    Escalate,
    EscalationPolicy,
    decision_effects,
    due_escalation,
)
from alerting.lifecycle import (
    CaseKind,
    CaseState,
    CaseView,
    Level,
    Notify,
    OrderRef,
    Reason,
    Regions,
    Severity,
    open_effects,
)
from alerting.messages import Templates
from alerting.metrics import AlertingMetrics
from alerting.routing import Routing
from alerting.store import Conn
from minewatch.rule_ids import IMMEDIATE

# Finding levels that make a case urgent (15-min ack window): a power-off-level exceedance,
# a red warning (tailings / slope), a shutdown order. `major` is a major accident hazard.
URGENT_LEVELS = frozenset({"power_off", "red", "order"})
MAJOR_LEVELS = frozenset({"major"})
_LEVEL_NAMES = frozenset(level.value for level in Level)

_CLAIM = """
SELECT f.id, f.rule, f.mine_id, m.code AS mine, m.county, m.city, m.province, f.subject, f.start_ts,
       f.level, f.tier, f.state, f.superseded_by, f.ref_table, f.ref_id, f.updated_at,
       e.tier AS event_tier, e.gas AS event_gas, o.min_end_ts AS order_min_end,
       p.location AS point_label, f.evidence->>'label' AS evidence_label, {POINTS_LABEL} AS points_label
FROM findings f
JOIN mines m ON m.id = f.mine_id
LEFT JOIN exceedance_events e ON f.ref_table = 'exceedance_events' AND e.id = f.ref_id
LEFT JOIN orders o ON f.ref_table = 'orders' AND o.id = f.ref_id
LEFT JOIN points p ON p.code = f.subject AND p.mine_id = f.mine_id
WHERE f.case_synced_at IS NULL OR f.case_synced_at < f.updated_at
ORDER BY f.updated_at, f.id
LIMIT $1
FOR UPDATE OF f SKIP LOCKED
""".replace("{POINTS_LABEL}", store.POINTS_LABEL_SQL)


@dataclass(frozen=True, slots=True)
class FindingRow:
    """A claimed finding with what deciding its case needs."""

    id: int
    rule: str
    mine_id: int
    mine: str
    regions: Regions
    subject: str
    start_ts: datetime
    level: str
    tier: str | None
    state: str
    superseded_by: int | None
    ref_table: str | None
    ref_id: int | None
    event_tier: str | None
    event_gas: str | None
    order_min_end: datetime | None
    label: str | None  # how messages name the subject (`alerting.store.label_of`)

    @classmethod
    def of(cls, r: asyncpg.Record) -> FindingRow:
        """From a row of the claim query."""
        return cls(
            id=r["id"], rule=r["rule"], mine_id=r["mine_id"], mine=r["mine"],
            regions=Regions(county=r["county"], city=r["city"], province=r["province"]),
            subject=r["subject"], start_ts=r["start_ts"], level=r["level"], tier=r["tier"], state=r["state"],
            superseded_by=r["superseded_by"], ref_table=r["ref_table"], ref_id=r["ref_id"],
            event_tier=r["event_tier"], event_gas=r["event_gas"], order_min_end=r["order_min_end"],
            label=store.label_of(point_label=r["point_label"], evidence_label=r["evidence_label"],
                                 points_label=r["points_label"], subject=r["subject"], mine=r["mine"],
                                 ref_table=r["ref_table"]),
        )

    @property
    def identity(self) -> str:
        """The stable identity (rule, mine, subject, start) as text: one case per identity."""
        start = self.start_ts.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return f"{self.rule}/{self.mine}/{self.subject}/{start}"

    @property
    def kind(self) -> str:
        """The rule family (see `alerting.store.finding_kind`)."""
        return store.finding_kind(self.rule, self.ref_table, self.event_gas)

    @property
    def is_methane(self) -> bool:
        """A methane exceedance event: its case carries the four measures."""
        return self.kind == store.METHANE_KIND

    @property
    def order_id(self) -> int | None:
        """The shutdown order behind the finding, if it is one."""
        return self.ref_id if self.ref_table == "orders" else None

    def methane_tier(self) -> Level | None:
        """The supervising level of a methane event by its peak (rules.md §5), if known."""
        if not self.is_methane:
            return None
        for tier in (self.tier, self.event_tier):
            if tier in _LEVEL_NAMES:
                return Level(tier)
        return None

    def severity(self) -> Severity:
        """Major for major hazards; red for urgent levels, methane at the province tier and the
        findings rules.md raises immediately (`IMMEDIATE`: a restricted-area entry is a
        `warning`, yet must not wait out a group window)."""
        if self.level in MAJOR_LEVELS:
            return Severity.MAJOR
        if (self.level in URGENT_LEVELS or self.order_id is not None or self.methane_tier() is Level.PROVINCE
                or self.rule in IMMEDIATE):
            return Severity.RED
        return Severity.NORMAL


# The policy's default; the worker passes its settings' `escalation.late_report_after`.
LATE_REPORT_AFTER = EscalationPolicy().late_report_after


def is_late_report(started_at: datetime, found_at: datetime, late_after: timedelta) -> bool:
    """A finding first found more than `late_after` after it started is a late report (a back-fill
    of old data, a late upload): its case is recorded and routed but not escalated on the ack
    window, since its time has passed. Exactly `late_after` old is still current."""
    return found_at - started_at > late_after


def start_level(finding: FindingRow, routing: Routing) -> Level:
    """Where a new case is raised: a methane event at its tier, anything else per routing."""
    return routing.start_level(finding.rule, methane_tier=finding.methane_tier(), finding_level=finding.level)


async def sync_findings(
    conn: Conn, *, now: datetime, routing: Routing, templates: Templates, batch: int,
    metrics: AlertingMetrics | None = None, late_after: timedelta = LATE_REPORT_AFTER,
) -> int:
    """Claim up to `batch` findings whose case is behind and bring their cases up to date, in
    one transaction; returns how many findings were claimed. Superseded findings are handled
    first so that their successors find the case already linked. A new case whose finding
    started more than `late_after` before `now` opens as a late report (`is_late_report`)."""
    async with conn.transaction():
        rows = [FindingRow.of(r) for r in await conn.fetch(_CLAIM, batch)]
        rows.sort(key=lambda f: f.state != "superseded")
        for finding in rows:
            await _sync_one(conn, finding, now=now, routing=routing, templates=templates, metrics=metrics,
                            late_after=late_after)
        if rows:
            # The watermark is the version seen, not our clock: the rules worker stamps
            # updated_at with the database's clock, which ours need not agree with.
            await conn.execute("UPDATE findings SET case_synced_at = updated_at WHERE id = ANY($1::bigint[])",
                               [f.id for f in rows])
    return len(rows)


async def _sync_one(
    conn: Conn, f: FindingRow, *, now: datetime, routing: Routing, templates: Templates,
    metrics: AlertingMetrics | None, late_after: timedelta,
) -> None:
    case_id = await store.case_of_finding(conn, f.id, f.identity)
    if f.state == "superseded":
        if case_id is not None and f.superseded_by is not None:
            await _move_link(conn, case_id, f, now=now)
        elif case_id is not None:
            await _withdraw(conn, case_id, f, now=now)
        return
    if case_id is None:
        await _open_case(conn, f, now=now, routing=routing, templates=templates, metrics=metrics,
                         late=is_late_report(f.start_ts, now, late_after))
        return
    await store.link_finding(conn, case_id, f.id)
    if await _last_withdrawal_note(conn, case_id, f.id) == "finding_withdrawn":
        await store.note_on_case(conn, case_id=case_id, at=now, action="finding_restored",
                                 comment=f"finding {f.id} holds again after re-evaluation",
                                 detail={"finding_id": f.id})
    await _update_case(conn, case_id, f, now=now, metrics=metrics)


async def _last_withdrawal_note(conn: Conn, case_id: int, finding_id: int) -> str | None:
    action: str | None = await conn.fetchval(
        "SELECT action FROM case_history WHERE case_id = $1 AND action IN ('finding_withdrawn', 'finding_restored') "
        "AND (detail->>'finding_id')::bigint = $2 ORDER BY id DESC LIMIT 1", case_id, finding_id)
    return action


async def _withdraw(conn: Conn, case_id: int, f: FindingRow, *, now: datetime) -> None:
    """A finding superseded with no successor: re-evaluation (late data, a threshold
    correction, readings re-flagged as calibration) shows it no longer holds. The case is
    neither deleted nor closed by the machine — people were told, may have acted, and a
    vanished alarm is itself something a regulator looks at (§6: falsified data). It records
    the withdrawal; once every finding of the case is withdrawn its timers stop and the
    supervising regulator may close it from any state with a reason (`alerting.lifecycle`)."""
    if await _last_withdrawal_note(conn, case_id, f.id) == "finding_withdrawn":
        return
    await store.note_on_case(
        conn, case_id=case_id, at=now, action="finding_withdrawn",
        comment=f"finding {f.id} withdrawn: re-evaluation of the data no longer shows it "
                f"(late data or corrected thresholds); escalation stops once no finding of the case holds, "
                f"and the supervising regulator may close the case with a reason",
        detail={"finding_id": f.id, "withdrawn": True})


async def _open_case(
    conn: Conn, f: FindingRow, *, now: datetime, routing: Routing, templates: Templates,
    metrics: AlertingMetrics | None, late: bool,
) -> None:
    level = start_level(f, routing)
    severity = f.severity()
    checklist = Checklist.new() if f.is_methane else None
    title = f"{f.label or f.subject}{templates.rule_name(f.rule)}"
    case_id = await store.insert_case(
        conn, mine_id=f.mine_id, rule=f.rule, level=level.value, severity=severity.value, title=title, now=now,
        order_id=f.order_id, order_min_end=f.order_min_end,
        checklist=checklist_to_json(checklist) if checklist else [], identity=f.identity, late_report=late,
    )
    if case_id is None:  # opened concurrently under the same identity: treat as an update
        existing = await store.case_of_finding(conn, f.id, f.identity)
        if existing is not None:
            await store.link_finding(conn, existing, f.id)
        return
    await store.link_finding(conn, case_id, f.id)
    view = CaseView(
        id=str(case_id), mine=f.mine, regions=f.regions, rule=f.rule,
        kind=CaseKind.METHANE if checklist else CaseKind.ORDER if f.order_id is not None else CaseKind.OTHER,
        severity=severity, state=CaseState.OPEN, level=level, opened_at=now, level_since=now, state_since=now,
        checklist=checklist,
        order=OrderRef(str(f.order_id), f.order_min_end) if f.order_id and f.order_min_end else None,
        late_report=late,
    )
    detail: dict[str, object] = {"finding_id": f.id, "level": level.value, "severity": severity.value,
                                 "occasion": "raised"}
    if late:
        detail |= {"late_report": True, "started_at": f.start_ts.isoformat(),
                   "found_after_s": int((now - f.start_ts).total_seconds())}
    await store.add_history(
        conn, case_id=case_id, at=now, action="open", from_state=None, to_state=CaseState.OPEN.value,
        comment=title, detail=detail, effects=open_effects(view),
    )
    if metrics is not None:
        metrics.cases_opened.labels(level=level.value, severity=severity.value).inc()


async def _update_case(
    conn: Conn, case_id: int, f: FindingRow, *, now: datetime, metrics: AlertingMetrics | None,
) -> None:
    """A finding of an existing case changed (re-evaluation, a later peak, a new minimum end):
    carry over what the case follows from it. A closed case is history and stays as it is."""
    row = await store.lock_case(conn, case_id, skip_locked=False)
    if row is None or row.view.state is CaseState.CLOSED:
        return
    case = row.view
    if f.order_min_end is not None and f.order_id is not None and (
            case.order is None or case.order.min_end != f.order_min_end):
        await conn.execute("UPDATE cases SET order_id = $2, order_min_end = $3, updated_at = $4 WHERE id = $1",
                           case_id, f.order_id, f.order_min_end, now)
    severity = f.severity()
    if severity.rank > case.severity.rank:
        await conn.execute("UPDATE cases SET severity = $2, updated_at = $3 WHERE id = $1",
                           case_id, severity.value, now)
    tier = f.methane_tier()
    if tier is not None and tier.rank > case.level.rank:
        # The peak grew into a higher tier (rules.md §5): the case goes where it now belongs.
        await conn.execute("UPDATE cases SET level = $2, level_since = $3, updated_at = $3 WHERE id = $1",
                           case_id, tier.value, now)
        occasion = f"tier:{case.level.value}>{tier.value}@{now.isoformat()}"
        await store.add_history(
            conn, case_id=case_id, at=now, action="escalate", from_state=case.state.value,
            to_state=case.state.value, comment=f"peak reached the {tier.value} tier (finding {f.id})",
            detail={"cause": "tier_raised", "from_level": case.level.value, "to_level": tier.value,
                    "level": tier.value, "occasion": occasion},
            effects=(Notify((tier, Level.MINE), Reason.ESCALATED),),
        )
        if metrics is not None:
            metrics.escalations.labels(cause="tier_raised").inc()


async def _move_link(conn: Conn, case_id: int, f: FindingRow, *, now: datetime) -> None:
    """A superseded finding's case continues with its successor (an event merged into a larger
    one, a start corrected): the link moves, no second case opens."""
    assert f.superseded_by is not None
    successor_case: int | None = await conn.fetchval(
        "SELECT case_id FROM case_findings WHERE finding_id = $1 ORDER BY case_id LIMIT 1", f.superseded_by)
    if successor_case is None:
        await store.unlink_finding(conn, case_id, f.id)
        await store.link_finding(conn, case_id, f.superseded_by)
        comment = f"finding {f.id} superseded by finding {f.superseded_by}"
    elif successor_case != case_id:
        # The successor was seen first and has a case of its own; this one stays as it is,
        # pointing there, rather than merging two cases people may already act on.
        comment = f"finding {f.id} superseded by finding {f.superseded_by}, followed in case {successor_case}"
    else:
        await store.unlink_finding(conn, case_id, f.id)
        return
    await store.note_on_case(conn, case_id=case_id, at=now, action="finding_superseded", comment=comment,
                             detail={"finding_id": f.id, "superseded_by": f.superseded_by})


async def settle_orders(conn: Conn, *, now: datetime) -> int:
    """Shutdown orders past their minimum end: lifted when their case is verified (or closed),
    otherwise marked `awaiting_verification` (rules.md §3); returns how many changed."""
    changed = 0
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT c.id AS case_id, c.state, o.id AS order_id, o.state AS order_state FROM orders o "
            "JOIN cases c ON c.order_id = o.id WHERE o.state <> 'lifted' AND o.min_end_ts <= $1 "
            "ORDER BY o.id FOR UPDATE OF o SKIP LOCKED", now)
        for r in rows:
            if r["state"] in (CaseState.VERIFIED.value, CaseState.CLOSED.value):
                if await store.lift_order(conn, order_id=r["order_id"], now=now):
                    await store.note_on_case(conn, case_id=r["case_id"], at=now, action="order_lifted",
                                             comment=f"order {r['order_id']} lifted: minimum end passed and "
                                                     f"rectification verified",
                                             detail={"order_id": r["order_id"]})
                    changed += 1
            elif r["order_state"] == "active":
                await conn.execute("UPDATE orders SET state = 'awaiting_verification', updated_at = $2 "
                                   "WHERE id = $1", r["order_id"], now)
                await store.note_on_case(conn, case_id=r["case_id"], at=now, action="order_awaiting_verification",
                                         comment=f"order {r['order_id']}: minimum end passed; it lifts once the "
                                                 f"rectification is verified",
                                         detail={"order_id": r["order_id"]})
                changed += 1
    return changed


async def run_timers(
    conn: Conn, *, now: datetime, policy: EscalationPolicy, metrics: AlertingMetrics | None = None,
) -> int:
    """Apply every escalation or reminder due at `now`; returns how many were applied. Each
    case is decided again under its lock, so a user's action that got there first wins."""
    applied = 0
    for candidate in await store.timed_cases(conn):
        if due_escalation(candidate.view, now, policy) is None:
            continue
        async with conn.transaction():
            row = await store.lock_case(conn, candidate.id, skip_locked=True)
            decision = due_escalation(row.view, now, policy) if row is not None else None
            if row is None or decision is None:
                continue
            await _apply(conn, row, decision, now=now)
        applied += 1
        if metrics is not None:
            if isinstance(decision, Escalate):
                metrics.escalations.labels(cause=decision.cause.value).inc()
            else:
                metrics.reminders.labels(kind=decision.kind.value).inc()
    return applied


async def _apply(conn: Conn, row: store.CaseRow, decision: Decision, *, now: datetime) -> None:
    case = row.view
    if isinstance(decision, Escalate):
        await conn.execute("UPDATE cases SET level = $2, level_since = $3, updated_at = $3 WHERE id = $1",
                           row.id, decision.to_level.value, now)
        after = replace(case, level=decision.to_level, level_since=now)
        await store.add_history(
            conn, case_id=row.id, at=now, action="escalate", from_state=case.state.value,
            to_state=case.state.value, comment=decision.detail,
            detail={"cause": decision.cause.value, "from_level": decision.from_level.value,
                    "to_level": decision.to_level.value, "level": decision.to_level.value,
                    "occasion": decision.occasion},
            effects=decision_effects(after, decision),
        )
        return
    await conn.execute("UPDATE cases SET last_reminder_at = $2 WHERE id = $1", row.id, now)
    await store.add_history(
        conn, case_id=row.id, at=now, action="remind", from_state=case.state.value, to_state=case.state.value,
        comment=decision.detail,
        detail={"kind": decision.kind.value, "level": case.level.value, "occasion": decision.occasion},
        effects=decision_effects(case, decision),
    )
