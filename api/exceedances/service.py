"""Exceedance events of a mine, newest first, each with its episodes (two indexed queries per page)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from api.exceedances.schemas import ExceedancePage
from api.pagination import CursorCodec, paginate
from api.schemas import jsonable
from api.sql import Where

_KIND = "exceedances"


async def list_exceedances(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str,
                           since: datetime | None, until: datetime | None, gas: str | None,
                           level: str | None, limit: int, cursor: str | None) -> ExceedancePage:
    """Events of one (visible) mine that started in [since, until), newest first."""
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
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e.id, e.gas, e.scope, e.scope_key, e.start_ts, e.end_ts, e.peak, e.peak_ts, e.level, "  # noqa: S608
            f"e.tier, e.order_id FROM exceedance_events e WHERE {w.sql} "
            f"ORDER BY e.start_ts DESC, e.id DESC LIMIT {w.param(limit + 1)}", *w.args)
        page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["start_ts"], r["id"]))
        # Plain dicts validated once at the end: pydantic-core checks the whole page in one
        # call, several times faster than building hundreds of models one by one in Python.
        episodes: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in page}
        if page:
            for ep in await conn.fetch(
                    "SELECT ep.id, ep.event_id, p.code, p.location, ep.start_ts, ep.end_ts, ep.end_reason, "
                    "ep.peak, ep.peak_ts, ep.level, ep.thresholds, ep.threshold_from "
                    "FROM episodes ep JOIN points p ON p.id = ep.point_id "
                    # p.mine_id keeps the point lookup on the mine's few points (points_mine_idx)
                    # instead of hashing the whole registry's points.
                    "WHERE ep.event_id = ANY($1::bigint[]) AND p.mine_id = $2 ORDER BY ep.start_ts, ep.id",
                    list(episodes), mine_id):
                episodes[ep["event_id"]].append({
                    "id": ep["id"], "point": ep["code"], "location": ep["location"], "start": ep["start_ts"],
                    "end": ep["end_ts"], "end_reason": ep["end_reason"], "peak": ep["peak"], "peak_at": ep["peak_ts"],
                    "level": ep["level"], "thresholds": _thresholds(ep["thresholds"]),
                    "thresholds_from": ep["threshold_from"]})
    items = [{"id": r["id"], "mine": mine, "gas": r["gas"], "scope": r["scope"], "scope_key": r["scope_key"],
              "start": r["start_ts"], "end": r["end_ts"], "peak": r["peak"], "peak_at": r["peak_ts"],
              "level": r["level"], "tier": r["tier"], "order_id": r["order_id"], "episodes": episodes[r["id"]]}
             for r in page]
    return ExceedancePage.model_validate({"items": items, "next_cursor": nxt})


def _thresholds(raw: Any) -> dict[str, Any]:
    value = jsonable(raw)
    return value if isinstance(value, dict) else {"value": value}
