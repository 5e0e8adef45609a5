"""Exceedance events of a mine, newest first, each with its episodes.

Events and episodes carry their JSON rendering (`doc`, kept current by triggers: migration
0037), so a page is an index range scan on exceedance_events_mine_start_idx and a concatenation."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from fastapi import Response

from api.jsonpage import next_cursor, page_response, page_sql
from api.pagination import CursorCodec
from api.sql import Where

_KIND = "exceedances"


def event_filter(mine_id: int, *, since: datetime | None, until: datetime | None, gas: str | None,
                 level: str | None) -> Where:
    """The WHERE of a mine's exceedance events (alias `e`) that started in [since, until), by gas
    and level: one definition for the API's history and the console's (values are parameters)."""
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
    return w


async def list_exceedances(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int,
                           since: datetime | None, until: datetime | None, gas: str | None,
                           level: str | None, limit: int, cursor: str | None) -> Response:
    """Events of one (visible) mine that started in [since, until), newest first (an ExceedancePage)."""
    w = event_filter(mine_id, since=since, until=until, gas=gas, level=level)
    if cursor:
        at, eid = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(e.start_ts, e.id) < ({w.param(at)}, {w.param(eid)})")
    sql = page_sql(
        f"SELECT e.id, e.start_ts, e.doc FROM exceedance_events e WHERE {w.sql} "  # noqa: S608
        f"ORDER BY e.start_ts DESC, e.id DESC LIMIT {w.param(limit + 1)}",
        item="p.doc", rendered=True, order="start_ts DESC, id DESC", key=("start_ts", "id"), limit=w.param(limit))
    row = await pool.fetchrow(sql, *w.args)
    assert row is not None
    return page_response(row, next_cursor(codec, _KIND, row, 2))

