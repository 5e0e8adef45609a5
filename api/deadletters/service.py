"""Dead letters in scope: by the mine they claimed; those naming no mine are for admins only."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from api.auth.principal import Principal
from api.deadletters.schemas import DeadLetterPage
from api.pagination import CursorCodec, paginate
from api.sql import Where

_KIND = "dead-letters"


async def list_dead_letters(*, pool: asyncpg.Pool, codec: CursorCodec, principal: Principal,
                            since: datetime | None, mine: str | None, reason: str | None, limit: int,
                            cursor: str | None) -> DeadLetterPage:
    """Dead letters received at or after `since`, newest first."""
    w = Where()
    if not principal.is_admin:
        w.where(f"d.mine_code = ANY({w.param(sorted(principal.mines))}::text[])")
    if mine is not None:
        w.where(f"d.mine_code = {w.param(mine)}")
    if reason is not None:
        w.where(f"d.reason = {w.param(reason)}")
    if since is not None:
        w.where(f"d.received_at >= {w.param(since)}")
    if cursor:
        at, did = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(d.received_at, d.id) < ({w.param(at)}, {w.param(did)})")
    rows = await pool.fetch(
        "SELECT d.id, d.received_at, d.source, d.topic, d.file, d.line, d.mine_code, d.reason, d.detail, "  # noqa: S608
        f"d.payload, d.reprocessed_at FROM dead_letters d WHERE {w.sql} "
        f"ORDER BY d.received_at DESC, d.id DESC LIMIT {w.param(limit + 1)}", *w.args)
    page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["received_at"], r["id"]))
    items = [{**dict(r), "mine": r["mine_code"]} for r in page]
    for item in items:
        del item["mine_code"]
    return DeadLetterPage.model_validate({"items": items, "next_cursor": nxt})
