"""Recording and listing accidents of a mine; only regulators and admins record them."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from api.accidents.schemas import AccidentIn, AccidentOut, AccidentPage
from api.auth.principal import Principal
from api.errors import Forbidden, Invalid
from api.pagination import CursorCodec, paginate
from api.sql import Where

_KIND = "accidents"
# Same tolerance as ingest's future-time rule: clocks disagree a little, not by more.
FUTURE_TOLERANCE = timedelta(minutes=5)
_COLUMNS = "id, occurred_at, severity, description, created_by, created_at"


def _out(mine: str, r: asyncpg.Record) -> AccidentOut:
    return AccidentOut(id=r["id"], mine=mine, occurred_at=r["occurred_at"], severity=r["severity"],
                       description=r["description"], created_by=r["created_by"], created_at=r["created_at"])


async def record_accident(*, pool: asyncpg.Pool, principal: Principal, mine_id: int, mine: str,
                          body: AccidentIn, now: datetime) -> AccidentOut:
    """Store an accident of a visible mine; 403 for the mine role, 422 for a future time."""
    if not (principal.is_admin or principal.is_regulator):
        raise Forbidden("accidents are recorded by the regulator or an admin, not by the mine")
    if body.occurred_at > now + FUTURE_TOLERANCE:
        raise Invalid("occurred_at is in the future")
    r = await pool.fetchrow(
        f"INSERT INTO accidents(mine_id, occurred_at, severity, description, created_by, created_at) "  # noqa: S608
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        mine_id, body.occurred_at, body.severity, body.description, principal.name, now)
    assert r is not None
    return _out(mine, r)


async def list_accidents(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, limit: int,
                         cursor: str | None) -> AccidentPage:
    """Accidents of a visible mine, most recent first."""
    w = Where()
    w.where(f"mine_id = {w.param(mine_id)}")
    if cursor:
        at, aid = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(occurred_at, id) < ({w.param(at)}, {w.param(aid)})")
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM accidents WHERE {w.sql} "  # noqa: S608
        f"ORDER BY occurred_at DESC, id DESC LIMIT {w.param(limit + 1)}", *w.args)
    page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["occurred_at"], r["id"]))
    return AccidentPage(items=[_out(mine, r) for r in page], next_cursor=nxt)
