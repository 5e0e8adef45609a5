"""The durable outbox: pending case-history effects become outbox rows, in one transaction.

`flush_effects` claims case_history rows whose effects are not done (FOR UPDATE SKIP
LOCKED), fans their `Notify` effects out to receivers, runs the pipeline (group → inhibit →
silence → dedup), renders each message and inserts one `notifications` row per receiver
channel address, then marks the effects done, all in the same transaction: a crash before
the commit leaves the effects pending, a crash after leaves the rows to deliver, and
`dedup_key` (unique, per member in `notification_members`) means nothing is enqueued twice.

A mine's normal-severity notifications wait until the oldest one's group window has closed
(`alerting.pipeline.group.ready`), so a storm of findings becomes one message per receiver;
red and major ones go at once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from alerting import store
from alerting.actions import effects_from_json
from alerting.backoff import BackoffPolicy, expires_at
from alerting.lifecycle import CaseState, Level, LiftOrder, Notify
from alerting.messages import DEFAULT_LANG, Templates, render_sms, render_text, webhook_payload
from alerting.metrics import AlertingMetrics
from alerting.pipeline.builder import ENQUEUE
from alerting.pipeline.fanout import fan_out
from alerting.pipeline.group import ready
from alerting.pipeline.types import (
    ActiveOrder,
    ChannelKind,
    FindingRef,
    Notification,
    Silence,
    StageContext,
)
from alerting.routing import Receiver, Routing
from alerting.store import Conn

# The channel a delivery worker LISTENs on; sent in the enqueueing transaction.
OUTBOX_CHANNEL = "minewatch_outbox"

# What the enqueue stages (alerting.pipeline.builder.ENQUEUE, in its order) drop and is kept
# as a suppressed row. Grouped members are not lost (they travel in the group), duplicates
# are already in the outbox: neither gets a row.
_RECORDED_SUPPRESSIONS = frozenset({"inhibited", "silenced"})

_PENDING = """
SELECT h.id, h.case_id, h.at, h.action, h.to_state, h.detail, h.effects
FROM case_history h
WHERE h.effects_done_at IS NULL
ORDER BY h.id
LIMIT $1
FOR UPDATE SKIP LOCKED
"""


@dataclass(slots=True)
class _Pending:
    """One pending history row and what its effects expand to."""

    history_id: int
    mine: str
    notes: list[Notification] = field(default_factory=list)
    lifts: list[int] = field(default_factory=list)
    case_id: int = 0
    unrouted: list[str] = field(default_factory=list)  # levels a Notify found nobody at


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one flush did: history rows done, outbox rows written, notifications suppressed."""

    effects_done: int
    enqueued: int
    suppressed: int
    held: int  # history rows whose mine's group window is still open


def notification_uuid(pipeline_id: str) -> uuid.UUID:
    """The outbox id of a pipeline notification: its 128-bit digest as a UUID, so the same
    notification produced twice gets the same id (and Idempotency-Key)."""
    return uuid.UUID(hex=pipeline_id.rsplit("-", 1)[-1])


async def flush_effects(
    conn: Conn,
    *,
    now: datetime,
    routing: Routing,
    templates: Mapping[str, Templates],
    backoff: BackoffPolicy,
    group_window: timedelta,
    batch: int,
    metrics: AlertingMetrics | None = None,
) -> FlushResult:
    """Carry out the pending effects that are ready, in one transaction."""
    async with conn.transaction():
        rows = await conn.fetch(_PENDING, batch)
        if not rows:
            return FlushResult(0, 0, 0, 0)
        case_ids = sorted({int(r["case_id"]) for r in rows})
        cases = await store.load_cases(conn, case_ids)
        refs = await store.finding_refs(conn, case_ids)
        receivers: dict[str, Receiver] = {}
        pendings = [_expand(r, cases, refs, routing, receivers) for r in rows]
        flushable = _ready_rows(pendings, now=now, window=group_window)
        if not flushable:
            return FlushResult(0, 0, 0, len(pendings))
        notes = [n for p in flushable for n in p.notes]
        mine_ids = {row.view.mine: row.mine_id for row in cases.values()}
        enqueued, suppressed = await _enqueue(conn, notes, now=now, receivers=receivers, templates=templates,
                                              backoff=backoff, window=group_window, mine_ids=mine_ids,
                                              metrics=metrics)
        for p in flushable:
            for order_id in p.lifts:
                await _lift(conn, order_id, p, now=now)
            if p.unrouted:
                # Nobody configured to tell: the case must show it rather than look notified.
                await store.note_on_case(
                    conn, case_id=p.case_id, at=now, action="notification_unrouted",
                    comment=f"no receiver is configured for mine {p.mine} at level(s) {', '.join(p.unrouted)}",
                    detail={"history_id": p.history_id, "levels": p.unrouted})
        await conn.execute("UPDATE case_history SET effects_done_at = $2 WHERE id = ANY($1::bigint[])",
                           [p.history_id for p in flushable], now)
        if enqueued:
            await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)
    return FlushResult(len(flushable), enqueued, suppressed, len(pendings) - len(flushable))


def _expand(
    r: asyncpg.Record, cases: Mapping[int, store.CaseRow], refs: Mapping[int, list[FindingRef]],
    routing: Routing, receivers: dict[str, Receiver],
) -> _Pending:
    """The notifications and order lifts of one history row. The message describes the case as
    it was when the row was written (its level then, its state after the row), not as it is
    now, so a late flush does not misreport an escalation."""
    case_id = int(r["case_id"])
    row = cases[case_id]
    detail = json.loads(r["detail"]) if isinstance(r["detail"], str) else dict(r["detail"] or {})
    level = Level(detail["level"]) if detail.get("level") in {lv.value for lv in Level} else row.view.level
    state = CaseState(r["to_state"]) if r["to_state"] else row.view.state
    view = replace(row.view, level=level, state=state)
    occasion = str(detail.get("occasion") or f"{r['action']}@{r['at'].isoformat()}")
    findings = refs.get(case_id) or [FindingRef(
        id=f"case-{case_id}", case_id=str(case_id), rule=view.rule, kind=view.rule, subject=row.title or view.rule,
        started_at=view.opened_at)]
    pending = _Pending(int(r["id"]), view.mine, case_id=case_id)
    for effect in effects_from_json(r["effects"]):
        if isinstance(effect, Notify):
            for lv in effect.levels:
                found = routing.receivers_for(view.mine, view.regions, lv)
                receivers.update((x.id, x) for x in found)
                if not found:
                    pending.unrouted.append(lv.value)
            receivers.update((x.id, x) for x in routing.workforce_for(view.mine))
            pending.notes += fan_out(effect, case=view, routing=routing, mine_name=row.mine_name,
                                     findings=findings, occasion=occasion, now=r["at"])
        elif isinstance(effect, LiftOrder):
            pending.lifts.append(int(effect.order_id))
        # StopEscalation needs nothing here: the timers follow the case's state.
    return pending


def _ready_rows(pendings: Sequence[_Pending], *, now: datetime, window: timedelta) -> list[_Pending]:
    """The rows to carry out now: per mine, all of them once `ready` says the mine's batch
    may go; rows without notifications always."""
    by_mine: dict[str, list[_Pending]] = {}
    for p in pendings:
        by_mine.setdefault(p.mine, []).append(p)
    out: list[_Pending] = []
    for group_rows in by_mine.values():
        notes = [n for p in group_rows for n in p.notes]
        if not notes or ready(notes, now=now, window=window):
            out += group_rows
        else:
            out += [p for p in group_rows if not p.notes]
    return out


async def _enqueue(
    conn: Conn,
    notes: Sequence[Notification],
    *,
    now: datetime,
    receivers: Mapping[str, Receiver],
    templates: Mapping[str, Templates],
    backoff: BackoffPolicy,
    window: timedelta,
    mine_ids: Mapping[str, int],
    metrics: AlertingMetrics | None,
) -> tuple[int, int]:
    """Run the pipeline over `notes` and write the outbox rows; returns (enqueued, suppressed)."""
    if not notes:
        return 0, 0
    keys = [n.keys[0] for n in notes]
    sent = {r["dedup_key"] for r in await conn.fetch(
        "SELECT dedup_key FROM notification_members WHERE dedup_key = ANY($1::text[])", keys)}
    mines = sorted({n.mine for n in notes})
    ctx = StageContext(now=now, group_window=window, active_orders=await _active_orders(conn, mines, now),
                       silences=await _silences(conn, mines, now), sent_keys=frozenset(sent))
    current: Sequence[Notification] = notes
    # Every input is a member, of one case; a member is dropped by a stage when no output
    # carries it any more, or the output it is in no longer names its case (narrowed).
    case_of = {n.id: int(n.case_ids[0]) for n in notes}
    key_of = {n.id: n.keys[0] for n in notes}
    why: dict[str, str] = {}
    merged = 0
    for stage in ENQUEUE:
        out = stage(current, ctx)
        if stage.drops == "grouped":
            merged = len(current) - len(out)
        carried = {m for n in out for m in n.members if str(case_of.get(m)) in n.case_ids}
        for n in current:
            why.update((m, stage.drops) for m in n.members if m not in carried and m not in why)
        current = out
    rows: list[tuple[Any, ...]] = []
    members: list[tuple[str, uuid.UUID, int]] = []
    for n in current:
        nid = notification_uuid(n.id)
        rows.append(_row(n, nid, _body(n, nid, receivers, templates), "pending", now, expires_at(now, backoff),
                         mine_ids, last_error=None))
        members += [(key_of[m], nid, case_of[m]) for m in n.members if m in key_of and m not in why]
    suppressed = 0
    for n in notes:
        reason = why.get(n.id)
        if reason is None or reason not in _RECORDED_SUPPRESSIONS or n.keys[0] in sent:
            continue
        # Kept as a row so the case shows what was not sent and why; never delivered.
        nid = notification_uuid(n.id)
        rows.append(_row(n, nid, {"case_ids": list(n.case_ids), "suppressed": reason}, "suppressed", now, now,
                         mine_ids, last_error=reason))
        members.append((n.keys[0], nid, case_of[n.id]))
        suppressed += 1
    await conn.executemany(
        "INSERT INTO notifications (id, case_id, mine_id, reason, level, receiver, channel, target, dedup_key, "
        "body, state, attempts, next_attempt_at, expires_at, created_at, last_error) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, 0, $12, $13, $12, $14) "
        "ON CONFLICT DO NOTHING", rows)
    await conn.executemany(
        "INSERT INTO notification_members (dedup_key, notification_id, case_id) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING", members)
    if metrics is not None:
        for n in current:
            metrics.enqueued.labels(channel=n.channel.value, reason=n.reason.value).inc()
        if merged:
            metrics.suppressed.labels(why="grouped").inc(merged)
        for reason in why.values():
            metrics.suppressed.labels(why=reason).inc()
    return len(current), suppressed


def _row(
    n: Notification, nid: uuid.UUID, body: Mapping[str, Any], state: str, now: datetime, expires: datetime,
    mine_ids: Mapping[str, int], *, last_error: str | None,
) -> tuple[Any, ...]:
    return (nid, int(n.case_ids[0]), mine_ids.get(n.mine), n.reason.value, n.level.value, n.receiver_id,
            n.channel.value, n.address, n.dedup_key, json.dumps(body, ensure_ascii=False), state, now, expires,
            last_error)


def _body(
    n: Notification, nid: uuid.UUID, receivers: Mapping[str, Receiver], templates: Mapping[str, Templates],
) -> dict[str, Any]:
    """What is sent, rendered once at enqueue: every retry sends the same bytes under the same
    key. The webhook secret is named, never stored: the deliverer resolves it."""
    t = templates.get(n.lang) or templates[DEFAULT_LANG]
    body: dict[str, Any] = {"case_ids": list(n.case_ids), "lang": t.lang, "text": render_text(n, t)}
    if n.channel is ChannelKind.SMS:
        body["segments"] = list(render_sms(n, t))
        return body
    payload = webhook_payload(n, t)
    payload["id"] = str(nid)  # the contract: the body's id is the Idempotency-Key
    hook = receivers[n.receiver_id].webhook
    body["payload"] = payload
    body["secret_env"] = hook.secret_env if hook is not None else ""
    return body


async def _active_orders(conn: Conn, mines: Sequence[str], now: datetime) -> dict[str, ActiveOrder]:
    """Orders in force (not lifted) per mine; the kind they mute is methane when they were
    triggered by methane events (or are a methane rule), else their rule id."""
    rows = await conn.fetch(
        "SELECT o.id, m.code AS mine, o.rule, "
        "EXISTS (SELECT 1 FROM order_events oe JOIN exceedance_events e ON e.id = oe.event_id "
        "        WHERE oe.order_id = o.id AND e.gas = $3) OR o.rule LIKE '%methane%' AS methane "
        "FROM orders o JOIN mines m ON m.id = o.mine_id "
        "WHERE o.state <> 'lifted' AND o.start_ts <= $2 AND m.code = ANY($1::text[]) ORDER BY o.start_ts",
        list(mines), now, store.METHANE_GAS)
    return {r["mine"]: ActiveOrder(r["mine"], str(r["id"]), store.METHANE_KIND if r["methane"] else r["rule"])
            for r in rows}


async def _silences(conn: Conn, mines: Sequence[str], now: datetime) -> list[Silence]:
    """Silences active at `now` for these mines; a silence on no mine (nor point) covers all."""
    rows = await conn.fetch(
        "SELECT s.id, COALESCE(m.code, pm.code) AS mine, p.code AS point, s.rule, s.starts_at, s.ends_at, "
        "s.created_by, s.comment FROM silences s "
        "LEFT JOIN mines m ON m.id = s.mine_id LEFT JOIN points p ON p.id = s.point_id "
        "LEFT JOIN mines pm ON pm.id = p.mine_id "
        "WHERE s.starts_at <= $1 AND s.ends_at > $1", now)
    out: list[Silence] = []
    for r in rows:
        for mine in ([r["mine"]] if r["mine"] is not None else mines):
            if mine in mines:
                out.append(Silence(str(r["id"]), mine, r["starts_at"], r["ends_at"], point=r["point"],
                                   rule=r["rule"], created_by=r["created_by"], comment=r["comment"]))
    return out


async def _lift(conn: Conn, order_id: int, p: _Pending, *, now: datetime) -> None:
    if await store.lift_order(conn, order_id=order_id, now=now):
        await store.note_on_case(conn, case_id=p.case_id, at=now, action="order_lifted",
                                 comment=f"order {order_id} lifted: minimum end passed and rectification verified",
                                 detail={"order_id": order_id})
