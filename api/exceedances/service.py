"""Exceedance events of a mine, newest first, each with its episodes: one statement renders the page as JSON."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from fastapi import Response

from api.jsonpage import next_cursor, page_response, page_sql
from api.pagination import CursorCodec
from api.sql import Where

_KIND = "exceedances"


async def list_exceedances(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str,
                           since: datetime | None, until: datetime | None, gas: str | None,
                           level: str | None, limit: int, cursor: str | None) -> Response:
    """Events of one (visible) mine that started in [since, until), newest first (an ExceedancePage)."""
    w = Where()
    w.where(f"e.mine_id = {w.param(mine_id)}")
    if since is not None:
        w.where(f"e.start_ts >= {w.param(since)}")
    if until is not None:
        w.where(f"e.start_ts < {w.param(until)}")
    if gas is not None:
        w.where(f"e.gas = {w.param(gas)}")
    if level is not None:
        w.where(f"e.level = {w.param(level)}")
    if cursor:
        at, eid = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(e.start_ts, e.id) < ({w.param(at)}, {w.param(eid)})")
    sql = page_sql(
        "SELECT e.id, e.gas, e.scope, e.scope_key, e.start_ts, e.end_ts, e.peak, e.peak_ts, "  # noqa: S608
        f"e.level, e.tier, e.order_id FROM exceedance_events e WHERE {w.sql} "
        f"ORDER BY e.start_ts DESC, e.id DESC LIMIT {w.param(limit + 1)}",
        with_=_EPISODES.replace("$mine_id", w.param(mine_id)), join="LEFT JOIN eps ON eps.event_id = p.id",
        item=_ITEM.replace("$mine", w.param(mine)), order="start_ts DESC, id DESC", key=("start_ts", "id"),
        limit=w.param(limit))
    row = await pool.fetchrow(sql, *w.args)
    assert row is not None
    return page_response(row, next_cursor(codec, _KIND, row, 2))


# The page's episodes, grouped by event, each in EpisodeOut's field order: episodes_event_idx for
# the page's events; pt.mine_id keeps the point lookup on the mine's few points (points_mine_idx)
# instead of hashing the whole registry's points. A threshold set that is not a JSON object is
# wrapped as {"value": ...} (EpisodeOut.thresholds is an object). MATERIALIZED: computed once
# even when a generic plan (asyncpg prepares statements) guesses the page has one row and would
# otherwise rebuild the aggregate for every event in a nested loop (175 ms instead of 2 ms).
_EPISODES = """, eps AS MATERIALIZED (
  SELECT x.event_id, json_agg(x.o ORDER BY x.start_ts, x.id) AS list FROM (
    SELECT ep.event_id, ep.start_ts, ep.id, (SELECT o FROM (SELECT ep.id, pt.code AS point, pt.location,
        api_time(ep.start_ts) AS start, api_time(ep.end_ts) AS "end", ep.end_reason, ep.peak,
        api_time(ep.peak_ts) AS peak_at, ep.level,
        CASE WHEN jsonb_typeof(ep.thresholds) = 'object' THEN ep.thresholds
             ELSE jsonb_build_object('value', ep.thresholds) END AS thresholds,
        api_time(ep.threshold_from) AS thresholds_from) o) AS o
    FROM episodes ep JOIN points pt ON pt.id = ep.point_id
    WHERE ep.event_id IN (SELECT p.id FROM p) AND pt.mine_id = $mine_id) x
  GROUP BY x.event_id)"""

# One event, in ExceedanceOut's field order, with its episodes.
_ITEM = """(SELECT o FROM (SELECT p.id, $mine::text AS mine, p.gas, p.scope, p.scope_key, api_time(p.start_ts) AS start,
  api_time(p.end_ts) AS "end", p.peak, api_time(p.peak_ts) AS peak_at, p.level, p.tier, p.order_id,
  coalesce(eps.list, '[]'::json) AS episodes) o)"""
