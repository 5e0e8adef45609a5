"""The console's own reads: what its pages show at a glance, within the caller's scope.

Single resources (a case, an order, personnel) come from the API's services, so the console
and the API cannot disagree; these are the overviews the API has no route for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from api.auth.principal import Principal
from api.exceedances.service import event_filter
from api.sql import Where

# Cases the regulator is waiting on the mine for: a deadline set and passed.
_OVERDUE = "(c.deadline IS NOT NULL AND c.deadline < {now} AND c.state IN ('open', 'acknowledged', 'rectifying'))"
GAS_ORDER = ("methane", "co", "o2", "co2", "h2s", "pipe_methane")
LIVE_SPAN = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class MineRow:
    code: str
    name: str
    kind: str
    county: str
    longitude: float | None
    latitude: float | None
    status: str
    open_cases: int


def _status(r: asyncpg.Record) -> str:
    # The same order as the API's mine status (api/mines), with offline between warning and normal.
    if r["under_order"]:
        return "under_order"
    if r["open_event"] or r["open_cases"]:
        return "warning"
    if r["offline"]:
        return "offline"
    return "normal"


async def mines_in_scope(pool: asyncpg.Pool, principal: Principal) -> list[MineRow]:
    """Every mine in scope with its state; each flag is an index probe (0031, 0062). Offline is an
    open `offline` finding (rules.md §6: silence is a finding), not a guess from reading times."""
    w = Where()
    w.scope("m.id", principal)
    rows = await pool.fetch(
        "SELECT m.code, m.name, m.kind, m.county, m.longitude, m.latitude, "  # noqa: S608 (values are parameters)
        "EXISTS (SELECT 1 FROM orders o WHERE o.mine_id = m.id AND o.state <> 'lifted') AS under_order, "
        "EXISTS (SELECT 1 FROM exceedance_events e WHERE e.mine_id = m.id AND e.end_ts IS NULL) AS open_event, "
        "EXISTS (SELECT 1 FROM findings f WHERE f.mine_id = m.id AND f.rule = 'offline' AND f.end_ts IS NULL "
        "AND f.state = 'open') AS offline, "
        "(SELECT count(*) FROM cases c WHERE c.mine_id = m.id AND c.state <> 'closed') AS open_cases "
        f"FROM mines m WHERE {w.sql} ORDER BY m.code", *w.args)
    return [MineRow(r["code"], r["name"], r["kind"], r["county"], r["longitude"], r["latitude"], _status(r),
                    r["open_cases"]) for r in rows]


async def open_cases_by_level(pool: asyncpg.Pool, principal: Principal, now: datetime) -> list[dict[str, Any]]:
    """Per supervising level: open cases and how many of them are overdue."""
    w = Where()
    w.scope("c.mine_id", principal)
    overdue = _OVERDUE.format(now=w.param(now))
    rows = await pool.fetch(
        f"SELECT c.level, count(*) AS n, count(*) FILTER (WHERE {overdue}) AS overdue "  # noqa: S608
        f"FROM cases c WHERE c.state <> 'closed' AND {w.sql} GROUP BY c.level", *w.args)
    found = {r["level"]: r for r in rows}
    return [{"level": lv, "n": found[lv]["n"] if lv in found else 0,
             "overdue": found[lv]["overdue"] if lv in found else 0} for lv in ("mine", "county", "city", "province")]


async def case_board(pool: asyncpg.Pool, principal: Principal, now: datetime, *, state: str | None = None,
                     level: str | None = None, mine: str | None = None, limit: int = 200,
                     offset: int = 0) -> list[asyncpg.Record]:
    """Cases in scope, overdue first, then newest; without `state`, those not closed."""
    w = Where()
    w.scope("c.mine_id", principal)
    overdue = _OVERDUE.format(now=w.param(now))
    if state is None:
        w.where("c.state <> 'closed'")
    else:
        w.where(f"c.state = {w.param(state)}")
    if level is not None:
        w.where(f"c.level = {w.param(level)}")
    if mine is not None:
        w.where(f"m.code = {w.param(mine)}")
    return await pool.fetch(
        f"SELECT c.id, m.code AS mine, m.name AS mine_name, c.rule, c.level, c.severity, c.state, c.title, "  # noqa: S608
        f"c.opened_at, c.deadline, {overdue} AS overdue FROM cases c JOIN mines m ON m.id = c.mine_id "
        f"WHERE {w.sql} ORDER BY overdue DESC, c.opened_at DESC, c.id DESC LIMIT {w.param(limit)} "
        f"OFFSET {w.param(offset)}", *w.args)


async def mine_head(pool: asyncpg.Pool, mine_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT id, code, name, kind, county, gas_class, approved_underground, longitude, latitude "
        "FROM mines WHERE id = $1", mine_id)


# A chart's series as compact JSON text, built by PostgreSQL: `[[ms,value],...]` (to_json keeps a NaN valid JSON).
_SERIES = ("'[' || string_agg('[' || (extract(epoch FROM r.ts) * 1000)::bigint || ',' || to_json(r.value)::text || ']', "
           "',' ORDER BY r.ts) || ']'")


async def live_points(pool: asyncpg.Pool, mine_id: int, now: datetime) -> list[dict[str, Any]]:
    """The analog points of a mine with their last half hour of readings and the threshold
    version in force now (point_thresholds: a version applies from its effective time on).

    The series comes as PostgreSQL's JSON text (`[[ms, value], ...]`, the chart's own format) with its
    last value: one row per point instead of one per reading, and no decoding and re-encoding of 2 400
    readings in Python (the mine page's largest cost under load)."""
    rows = await pool.fetch(
        "SELECT p.code, p.gas, p.unit, p.location, t.alarm_hi, t.poweroff_hi, t.alarm_lo, t.poweroff_lo, "  # noqa: S608 (a constant)
        "t.effective_from, s.series, s.last, s.last_at FROM points p LEFT JOIN LATERAL ("
        "  SELECT alarm_hi, poweroff_hi, alarm_lo, poweroff_lo, effective_from FROM point_thresholds pt "
        "  WHERE pt.point_id = p.id AND pt.effective_from <= $2 ORDER BY pt.effective_from DESC LIMIT 1) t ON true "
        "LEFT JOIN LATERAL ("
        f"  SELECT {_SERIES} AS series, (array_agg(r.value ORDER BY r.ts DESC))[1] AS last, "
        "  (extract(epoch FROM max(r.ts)) * 1000)::bigint AS last_at "
        "  FROM readings r WHERE r.point_id = p.id AND r.ts > $3 AND r.ts <= $2) s ON true "
        "WHERE p.mine_id = $1 AND p.value_type = 'MN' AND p.active ORDER BY p.code", mine_id, now, now - LIVE_SPAN)
    out = []
    for p in rows:
        last = p["last"]
        level = None
        if last is not None:
            if (p["poweroff_hi"] is not None and last >= p["poweroff_hi"]) or (
                    p["poweroff_lo"] is not None and last <= p["poweroff_lo"]):
                level = "power_off"
            elif (p["alarm_hi"] is not None and last >= p["alarm_hi"]) or (
                    p["alarm_lo"] is not None and last <= p["alarm_lo"]):
                level = "alarm"
        out.append({**dict(p), "level": level})
    rank = {g: i for i, g in enumerate(GAS_ORDER)}
    out.sort(key=lambda p: (rank.get(p["gas"], len(rank)), p["code"]))
    return out


async def exceedances(pool: asyncpg.Pool, mine_id: int, *, since: datetime | None, until: datetime | None,
                      gas: str | None, level: str | None, limit: int = 500) -> list[dict[str, Any]]:
    """Exceedance events of one mine, newest first, each with its episodes (point, location, peak)."""
    w = event_filter(mine_id, since=since, until=until, gas=gas, level=level)
    async with pool.acquire() as conn:
        events = await conn.fetch(
            "SELECT e.id, e.gas, e.scope, e.scope_key, e.start_ts, e.end_ts, e.peak, e.level FROM exceedance_events e "  # noqa: S608
            f"WHERE {w.sql} ORDER BY e.start_ts DESC, e.id DESC LIMIT {w.param(limit)}", *w.args)
        eps = await conn.fetch(
            "SELECT ep.event_id, p.code, p.location, ep.start_ts, ep.end_ts, ep.peak, ep.level FROM episodes ep "
            "JOIN points p ON p.id = ep.point_id WHERE ep.event_id = ANY($1::bigint[]) ORDER BY ep.start_ts, ep.id",
            [e["id"] for e in events])
    by_event: dict[int, list[dict[str, Any]]] = {e["id"]: [] for e in events}
    for ep in eps:
        by_event[ep["event_id"]].append(dict(ep))
    return [{**dict(e), "episodes": by_event[e["id"]]} for e in events]


async def evidence_series(pool: asyncpg.Pool, finding_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """For findings about an exceedance event: per finding, each episode's point with its readings from
    30 min before to 30 min after the event (at most 6 h) and the thresholds the episode was judged by.
    One round trip: each episode's series is PostgreSQL's JSON text from a lateral subquery (the
    readings' partitions outside an episode's window are pruned at run time)."""
    if not finding_ids:
        return {}
    rows = await pool.fetch(
        "SELECT f.id AS finding_id, p.code, p.unit, p.location, ep.thresholds, s.series "  # noqa: S608 (a constant)
        "FROM findings f JOIN exceedance_events e ON f.ref_table = 'exceedance_events' AND e.id = f.ref_id "
        "JOIN episodes ep ON ep.event_id = e.id JOIN points p ON p.id = ep.point_id "
        f"CROSS JOIN LATERAL (SELECT {_SERIES} AS series FROM readings r WHERE r.point_id = ep.point_id "
        "  AND r.ts >= e.start_ts - interval '30 minutes' "
        "  AND r.ts <= LEAST(COALESCE(e.end_ts, now()) + interval '30 minutes', e.start_ts + interval '6 hours')) s "
        "WHERE f.id = ANY($1::bigint[]) ORDER BY f.id, p.code", finding_ids)
    out: dict[int, list[dict[str, Any]]] = {}
    for ep in rows:
        thresholds = ep["thresholds"]
        if isinstance(thresholds, str):
            thresholds = json.loads(thresholds)
        out.setdefault(ep["finding_id"], []).append({
            "code": ep["code"], "unit": ep["unit"], "location": ep["location"], "thresholds": thresholds or {},
            "series": ep["series"]})
    return out
