"""Shutdown orders of a mine, newest first, each with its events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from api.orders.schemas import OrderOut, OrderPage
from api.pagination import CursorCodec, paginate
from api.sql import Where

_KIND = "orders"
_COLUMNS = "o.id, o.rule, o.pack, o.start_ts, o.min_end_ts, o.state, o.ladder_step, o.lifted_at"


async def _with_events(pool: asyncpg.Pool, mine: str, rows: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in rows]
    events: dict[int, list[int]] = {i: [] for i in ids}
    triggers: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for e in await pool.fetch(
                "SELECT order_id, event_id, role FROM order_events WHERE order_id = ANY($1::bigint[]) "
                "ORDER BY order_id, event_id", ids):
            events[e["order_id"]].append(e["event_id"])
            if e["role"] == "trigger":
                triggers[e["order_id"]].append(e["event_id"])
    # Dicts, validated by the caller as a whole page in one pydantic-core call.
    return [{"id": r["id"], "mine": mine, "rule": r["rule"], "pack": r["pack"], "start": r["start_ts"],
             "min_end": r["min_end_ts"], "state": r["state"], "ladder_step": r["ladder_step"],
             "lifted_at": r["lifted_at"], "events": events[r["id"]], "trigger_events": triggers[r["id"]]}
            for r in rows]


async def list_orders(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, limit: int,
                      cursor: str | None) -> OrderPage:
    """The orders of one (visible) mine, newest first."""
    w = Where()
    w.where(f"o.mine_id = {w.param(mine_id)}")
    if cursor:
        at, oid = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(o.start_ts, o.id) < ({w.param(at)}, {w.param(oid)})")
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM orders o WHERE {w.sql} "  # noqa: S608
        f"ORDER BY o.start_ts DESC, o.id DESC LIMIT {w.param(limit + 1)}", *w.args)
    page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["start_ts"], r["id"]))
    return OrderPage.model_validate({"items": await _with_events(pool, mine, page), "next_cursor": nxt})


async def active_order_of(*, pool: asyncpg.Pool, mine_id: int, mine: str) -> OrderOut | None:
    """The order in force on a mine (active or awaiting verification), the latest if several."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM orders o WHERE o.mine_id = $1 AND o.state <> 'lifted' "  # noqa: S608
        "ORDER BY o.start_ts DESC, o.id DESC LIMIT 1", mine_id)
    found = await _with_events(pool, mine, rows)
    return OrderOut.model_validate(found[0]) if found else None
