"""Dead letters in scope: by the mine they claimed; those naming no mine are for admins only."""

from __future__ import annotations

import base64
from datetime import datetime

import asyncpg

from api.auth.principal import Principal
from api.deadletters.schemas import DETAIL_CHARS, PREVIEW_CHARS, DeadLetterDetail, DeadLetterPage
from api.errors import NotFound
from api.pagination import CursorCodec, paginate
from api.sql import Where

_KIND = "dead-letters"

# Columns every view shows. `payload_bytes` is null on rows written before migration 0052; then
# the stored text is what arrived. Sizes are computed in PostgreSQL: octet_length reads the
# TOAST header's size, and the big payload itself never leaves the database for a list.
_COMMON = (f"d.id, d.received_at, d.source, d.topic, d.file, d.line, d.mine_code AS mine, d.reason, "
           f"left(d.detail, {DETAIL_CHARS}) AS detail, d.reprocessed_at, "
           "coalesce(d.payload_bytes, octet_length(d.payload)) AS payload_bytes, "
           # cut at write: more arrived than the store kept (the raw bytes when repaired, else the text)
           "coalesce(d.payload_bytes, 0) > coalesce(octet_length(d.payload_raw), octet_length(d.payload)) AS capped")


def _scope(w: Where, principal: Principal) -> None:
    if not principal.is_admin:
        w.where(f"d.mine_code = ANY({w.param(sorted(principal.mines))}::text[])")


async def list_dead_letters(*, pool: asyncpg.Pool, codec: CursorCodec, principal: Principal,
                            since: datetime | None, mine: str | None, reason: str | None, limit: int,
                            cursor: str | None) -> DeadLetterPage:
    """Dead letters received at or after `since`, newest first, each with a payload preview."""
    w = Where()
    _scope(w, principal)
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
        f"SELECT {_COMMON}, left(d.payload, {PREVIEW_CHARS}) AS payload, "  # noqa: S608
        f"char_length(d.payload) > {PREVIEW_CHARS} AS longer FROM dead_letters d WHERE {w.sql} "
        f"ORDER BY d.received_at DESC, d.id DESC LIMIT {w.param(limit + 1)}", *w.args)
    page, nxt = paginate(codec, _KIND, rows, limit, lambda r: (r["received_at"], r["id"]))
    items = []
    for r in page:
        item = dict(r)
        longer, capped = item.pop("longer"), item.pop("capped")
        item["payload_truncated"] = bool(longer or capped)
        item["href"] = f"/v1/dead-letters/{r['id']}"
        items.append(item)
    return DeadLetterPage.model_validate({"items": items, "next_cursor": nxt})


async def get_dead_letter(*, pool: asyncpg.Pool, principal: Principal, dead_letter_id: int) -> DeadLetterDetail:
    """One dead letter in scope with its whole stored payload; NotFound otherwise."""
    w = Where()
    w.where(f"d.id = {w.param(dead_letter_id)}")
    _scope(w, principal)
    row = await pool.fetchrow(
        f"SELECT {_COMMON}, d.payload, d.payload_raw FROM dead_letters d WHERE {w.sql}", *w.args)  # noqa: S608
    if row is None:
        raise NotFound(f"no dead letter {dead_letter_id}")
    item = dict(row)
    raw = item.pop("payload_raw")
    item["payload_raw"] = None if raw is None else base64.b64encode(raw).decode("ascii")
    item["payload_truncated"] = item.pop("capped")
    return DeadLetterDetail.model_validate(item)
