"""A mine's findings of every rule family, newest first, filtered by rule, time and openness."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from api.findings.schemas import FindingPage, MineFindingOut
from api.pagination import CursorCodec
from api.schemas import jsonable
from api.sql import Where

_KIND = "findings"


async def list_findings(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, rule: str | None,
                        since: datetime | None, until: datetime | None, open_only: bool | None, limit: int,
                        cursor: str | None) -> FindingPage:
    """Findings of one (visible) mine that started in [since, until), newest first; `open_only`
    True: those without an end, False: those with one. A page walks findings_mine_idx."""
    w = Where()
    w.where(f"f.mine_id = {w.param(mine_id)}")
    if rule is not None:
        w.where(f"f.rule = {w.param(rule)}")
    if since is not None:
        w.where(f"f.start_ts >= {w.param(since)}")
    if until is not None:
        w.where(f"f.start_ts < {w.param(until)}")
    if open_only is True:
        w.where("f.end_ts IS NULL")
    elif open_only is False:
        w.where("f.end_ts IS NOT NULL")
    if cursor:
        at, fid = codec.decode(cursor, _KIND, ("time", "int"))
        w.where(f"(f.start_ts, f.id) < ({w.param(at)}, {w.param(fid)})")
    rows = await pool.fetch(
        "SELECT f.id, f.rule, f.subject, f.start_ts, f.end_ts, f.level, f.tier, f.state, f.evidence, "  # noqa: S608
        "f.state = 'superseded' AND f.superseded_by IS NULL AS withdrawn "
        f"FROM findings f WHERE {w.sql} ORDER BY f.start_ts DESC, f.id DESC LIMIT {w.param(limit + 1)}", *w.args)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [MineFindingOut(id=r["id"], rule=r["rule"], mine=mine, subject=r["subject"], start=r["start_ts"],
                            end=r["end_ts"], level=r["level"], tier=r["tier"], state=r["state"],
                            withdrawn=r["withdrawn"], evidence=jsonable(r["evidence"])) for r in rows]
    last = rows[-1] if rows else None
    return FindingPage(items=items, next_cursor=codec.encode(_KIND, (last["start_ts"], last["id"]))
                       if more and last is not None else None)
