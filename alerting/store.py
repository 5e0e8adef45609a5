"""The case tables at the edge: case views and their findings read, cases, links and history written.

Every function takes a connection and runs inside the caller's transaction; none commits.
History rows written here are the system's (actor `minewatch`, role `system`); a row with
effects is left pending (`effects_done_at` NULL) for `alerting.outbox` to carry out, exactly
like the rows the API writes for users' actions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from zoneinfo import ZoneInfoNotFoundError

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from alerting.actions import WITHDRAWN_SQL, case_view, effects_to_json
from alerting.lifecycle import CaseView, Effect
from alerting.pipeline.types import FindingRef
from minewatch import rule_ids
from minewatch.timeutil import DEFAULT_ZONE, local

# A connection, or one borrowed from a pool (which behaves as the connection it wraps).
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

SYSTEM_ACTOR = "minewatch"
SYSTEM_ROLE = "system"

# Rule ids that name a methane exceedance event whatever table backs them; a finding backed
# by an exceedance event of gas `methane` is one too.
METHANE_RULES = frozenset({rule_ids.METHANE_EXCEEDANCE})
METHANE_GAS = "methane"
# The rule engine's flags for root-cause measures (rules.md §5; rules/evaluate.py).
FLAG_RULES = frozenset({rule_ids.HIGH_VALUE_EXCEEDANCE, rule_ids.FREQUENT_EXCEEDANCE})
METHANE_UNIT = "%CH4"
# How a finding on a whole mine (an order, a seal breach) is named in a message: "全矿" reads
# "the whole mine"; the mine's own name already opens the message. An order's subject is its
# count rule's id (e.g. `methane_repeat`), which names no place: it is on the whole mine too.
WHOLE_MINE = "全矿"

# The locations of the points an event finding lists in `evidence.points`, for findings whose
# subject is a face or a mine (the default pack merges by face: subject `F11301`, points
# `…T0003`, `…T0004`), so that a message names where the gas was, not a code.
POINTS_LABEL_SQL = """(SELECT string_agg(pl.location, '、' ORDER BY pl.code) FROM points pl
        WHERE pl.mine_id = f.mine_id AND jsonb_typeof(f.evidence->'points') = 'array'
          AND pl.code IN (SELECT jsonb_array_elements_text(f.evidence->'points')))"""


def label_of(*, point_label: str | None, evidence_label: str | None, points_label: str | None,
             subject: str, mine: str, ref_table: str | None) -> str | None:
    """How a message names a finding's subject: the point's location, the evidence's label, the
    locations of the event's points, the whole mine (a mine-wide finding or an order), else
    None (the caller shows the subject)."""
    label = point_label or evidence_label or points_label
    if label is None and (subject == mine or ref_table == "orders"):
        label = WHOLE_MINE
    return label

# The kind (rule family) of findings an order stands for: inhibition mutes new findings of
# this kind while the mine is stopped for exactly that.
METHANE_KIND = "methane"
ORDER_KIND = "order"

# `state_since` ignores rows that change no state (escalations, reminders, notes), so that a
# reminder does not restart the wait it reminds of.
_CASE_SELECT = """
SELECT c.id, c.rule, c.level, c.severity, c.state, c.title, c.opened_at, c.level_since, c.deadline,
       c.last_reminder_at, c.checklist, c.order_id, c.late_report,
       COALESCE(c.order_min_end, o.min_end_ts) AS order_min_end, o.state AS order_state,
       m.id AS mine_id, m.code AS mine, m.name AS mine_name, m.county, m.city, m.province,
       COALESCE((SELECT max(h.at) FROM case_history h
                 WHERE h.case_id = c.id AND h.to_state = c.state
                   AND h.from_state IS DISTINCT FROM h.to_state), c.opened_at) AS state_since,
       {WITHDRAWN}
FROM cases c
JOIN mines m ON m.id = c.mine_id
LEFT JOIN orders o ON o.id = c.order_id
""".replace("{WITHDRAWN}", WITHDRAWN_SQL)

# Cases in these states have timers (ack window, deadline, reminders); verified and closed do not.
_TIMED_STATES = ("open", "acknowledged", "rectifying", "rectified")


@dataclass(frozen=True, slots=True)
class CaseRow:
    """A case as the lifecycle sees it, plus what the workers need besides."""

    view: CaseView
    mine_id: int
    mine_name: str
    title: str
    order_state: str | None

    @property
    def id(self) -> int:
        """The case id as stored."""
        return int(self.view.id)


def _case_row(r: asyncpg.Record) -> CaseRow:
    return CaseRow(case_view(r), r["mine_id"], r["mine_name"], r["title"], r["order_state"])


async def load_cases(conn: Conn, case_ids: Sequence[int]) -> dict[int, CaseRow]:
    """The cases with these ids, by id (unknown ids are absent)."""
    rows = await conn.fetch(_CASE_SELECT + "WHERE c.id = ANY($1::bigint[])", list(case_ids))
    return {int(r["id"]): _case_row(r) for r in rows}


async def lock_case(conn: Conn, case_id: int, *, skip_locked: bool) -> CaseRow | None:
    """Lock one case row for the rest of the transaction; None when it does not exist or, with
    `skip_locked`, when someone else holds it (they are acting on it; try again next tick)."""
    lock = "FOR UPDATE OF c SKIP LOCKED" if skip_locked else "FOR UPDATE OF c"
    row = await conn.fetchrow(_CASE_SELECT + "WHERE c.id = $1 " + lock, case_id)
    return _case_row(row) if row is not None else None


async def timed_cases(conn: Conn) -> list[CaseRow]:
    """Every case that may have a timer due (not verified, not closed); read without locks."""
    rows = await conn.fetch(_CASE_SELECT + "WHERE c.state = ANY($1::text[]) ORDER BY c.id",
                            list(_TIMED_STATES))
    return [_case_row(r) for r in rows]


def finding_kind(rule: str, ref_table: str | None, gas: str | None) -> str:
    """The rule family of a finding: `methane` for methane exceedance events, `order` for
    shutdown orders, else the rule id itself. The rule engine's flags for root-cause measures
    (high value, frequent) point at methane events too but are cases of their own kind: the
    event's own case carries the four measures, once."""
    if rule in FLAG_RULES:
        return rule
    if rule in METHANE_RULES or (ref_table == "exceedance_events" and gas == METHANE_GAS):
        return METHANE_KIND
    if ref_table == "orders":
        return ORDER_KIND
    return rule


_REFS = """
SELECT cf.case_id, f.id, f.rule, f.subject, m.code AS mine, m.timezone, f.start_ts, f.ref_table, f.evidence,
       e.gas, e.peak AS event_peak, p.location AS point_label, p.unit AS point_unit,
       {POINTS_LABEL} AS points_label
FROM case_findings cf
JOIN findings f ON f.id = cf.finding_id
JOIN mines m ON m.id = f.mine_id
LEFT JOIN exceedance_events e ON f.ref_table = 'exceedance_events' AND e.id = f.ref_id
LEFT JOIN points p ON p.code = f.subject AND p.mine_id = f.mine_id
WHERE cf.case_id = ANY($1::bigint[])
ORDER BY cf.case_id, f.start_ts, f.id
""".replace("{POINTS_LABEL}", POINTS_LABEL_SQL)


async def finding_refs(conn: Conn, case_ids: Sequence[int]) -> dict[int, list[FindingRef]]:
    """The findings of each case as messages name them: the point's location as label, the
    event's peak (or the evidence's `peak` / `value`) with its unit, and the start in the mine's
    own zone (the same instant; `alerting.messages` shows it as the mine's local time)."""
    out: dict[int, list[FindingRef]] = {}
    for r in await conn.fetch(_REFS, list(case_ids)):
        evidence = _json_object(r["evidence"])
        kind = finding_kind(r["rule"], r["ref_table"], r["gas"])
        value = r["event_peak"] if r["event_peak"] is not None else _number(evidence.get("peak", evidence.get("value")))
        unit = r["point_unit"] or _text(evidence.get("unit"))
        if unit is None and kind == METHANE_KIND:
            unit = METHANE_UNIT
        label = label_of(point_label=r["point_label"], evidence_label=_text(evidence.get("label")),
                         points_label=r["points_label"], subject=r["subject"], mine=r["mine"],
                         ref_table=r["ref_table"])
        out.setdefault(int(r["case_id"]), []).append(FindingRef(
            id=str(r["id"]), case_id=str(r["case_id"]), rule=r["rule"], kind=kind, subject=r["subject"],
            started_at=_in_zone(r["start_ts"], r["timezone"]), label=label, value=value, unit=unit if value is not None else None,
            points=tuple(p for p in evidence.get("points", ()) if isinstance(p, str))
            if isinstance(evidence.get("points"), list) else (),
        ))
    return out


async def case_of_finding(conn: Conn, finding_id: int, identity: str) -> int | None:
    """The case a finding belongs to: by its link first (a superseding finding inherits its
    predecessor's case), else by the identity that opened a case."""
    linked: int | None = await conn.fetchval(
        "SELECT case_id FROM case_findings WHERE finding_id = $1 ORDER BY case_id LIMIT 1", finding_id)
    if linked is not None:
        return linked
    by_identity: int | None = await conn.fetchval("SELECT id FROM cases WHERE identity = $1", identity)
    return by_identity


async def insert_case(
    conn: Conn,
    *,
    mine_id: int,
    rule: str,
    level: str,
    severity: str,
    title: str,
    now: datetime,
    order_id: int | None,
    order_min_end: datetime | None,
    checklist: list[dict[str, Any]],
    identity: str,
    late_report: bool = False,
) -> int | None:
    """Open a case in state `open` (a late report when `late_report`); None when a case with
    this identity exists already."""
    case_id: int | None = await conn.fetchval(
        "INSERT INTO cases (mine_id, rule, level, severity, state, title, opened_at, level_since, order_id, "
        "order_min_end, checklist, identity, updated_at, late_report) "
        "VALUES ($1, $2, $3, $4, 'open', $5, $6, $6, $7, $8, $9::jsonb, $10, $6, $11) "
        "ON CONFLICT (identity) DO NOTHING RETURNING id",
        mine_id, rule, level, severity, title, now, order_id, order_min_end, json.dumps(checklist), identity,
        late_report)
    return case_id


async def link_finding(conn: Conn, case_id: int, finding_id: int) -> bool:
    """Attach a finding to a case; False when it was attached already."""
    done = await conn.execute(
        "INSERT INTO case_findings (case_id, finding_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        case_id, finding_id)
    return bool(done.endswith(" 1"))


async def unlink_finding(conn: Conn, case_id: int, finding_id: int) -> None:
    """Detach a finding from a case."""
    await conn.execute("DELETE FROM case_findings WHERE case_id = $1 AND finding_id = $2", case_id, finding_id)


async def add_history(
    conn: Conn,
    *,
    case_id: int,
    at: datetime,
    action: str,
    from_state: str | None,
    to_state: str | None,
    comment: str,
    detail: Mapping[str, Any] | None = None,
    effects: Sequence[Effect] = (),
) -> int:
    """Append a system row to a case's history. A row with effects stays pending until the
    outbox carries them out; a row without is done as written."""
    history_id: int = await conn.fetchval(
        "INSERT INTO case_history (case_id, at, actor, role, action, from_state, to_state, comment, detail, "
        "effects, effects_done_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb, $11) "
        "RETURNING id",
        case_id, at, SYSTEM_ACTOR, SYSTEM_ROLE, action, from_state, to_state, comment,
        json.dumps(dict(detail or {}), default=str), json.dumps(effects_to_json(tuple(effects))),
        None if effects else at)
    return history_id


async def note_on_case(
    conn: Conn, *, case_id: int, at: datetime, action: str, comment: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """A history row that changes no state (an order lifted, a notification that failed),
    written with the case's current state as both from and to."""
    await conn.execute(
        "INSERT INTO case_history (case_id, at, actor, role, action, from_state, to_state, comment, detail, "
        "effects, effects_done_at) SELECT c.id, $2, $3, $4, $5, c.state, c.state, $6, $7::jsonb, '[]'::jsonb, $2 "
        "FROM cases c WHERE c.id = $1",
        case_id, at, SYSTEM_ACTOR, SYSTEM_ROLE, action, comment, json.dumps(dict(detail or {}), default=str))


async def lift_order(conn: Conn, *, order_id: int, now: datetime) -> bool:
    """Lift a shutdown order once its minimum end has passed; idempotent (False when it was
    lifted already or may not lift yet)."""
    lifted = await conn.fetchval(
        "UPDATE orders SET state = 'lifted', lifted_at = $2, updated_at = $2 "
        "WHERE id = $1 AND state <> 'lifted' AND min_end_ts <= $2 RETURNING id", order_id, now)
    return lifted is not None


def _in_zone(when: datetime, name: str | None) -> datetime:
    """`when` in the mine's zone; the default zone when the registry's name is unknown here
    (a message with the default zone's time beats an outbox stuck on one bad row)."""
    try:
        return local(when, name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return local(when, DEFAULT_ZONE)


def _json_object(raw: object) -> dict[str, Any]:
    data = json.loads(raw) if isinstance(raw, str) else raw
    return data if isinstance(data, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
