"""Who is underground: rules.md §7's presence model, the one the personnel rules judge by.

Per card, its latest read up to now decides: at a station of a non-shaft area (or of no
area) the card is underground, in that area; at a shaft (井口) station it has left the mine
(or never went down). Silence changes nothing: a card not read for hours while underground is
still underground — a lost card is a person to look for, and its `overtime` finding is listed
too. Each listed card's `since` is the first read of its current run in the area, `entered`
its first read after its last shaft read (the stay's entry).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from api.pagination import CursorCodec
from api.personnel.schemas import AreaCount, OvertimeOut, PersonnelOut, PersonOut

_KIND = "personnel"

_LATEST = """
WITH latest AS (
    SELECT c.id AS card_id, c.code, c.role, c.name, r.ts, r.station_id
    FROM cards c
    CROSS JOIN LATERAL (
        SELECT ts, station_id FROM card_reads
        WHERE card_id = c.id AND ts <= $2
        ORDER BY ts DESC LIMIT 1) r
    WHERE c.mine_id = $1
)
SELECT l.card_id, l.station_id, a.id AS area_id, l.code, l.role, l.name, l.ts, s.code AS station, a.code AS area,
       COALESCE(a.shaft, false) AS shaft
FROM latest l
JOIN stations s ON s.id = l.station_id
LEFT JOIN LATERAL (
    SELECT a.id, a.code, a.shaft FROM area_stations ast JOIN areas a ON a.id = ast.area_id
    WHERE ast.station_id = l.station_id ORDER BY a.code LIMIT 1) a ON true
ORDER BY l.code
"""

# For the listed cards: the last read before the latest that was elsewhere (another area;
# another station when the card is in no area), and the last shaft read before it. Each is one
# backward index scan of the card's reads, stopped at the first match.
_SINCE = """
SELECT p.card_id,
       (SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id AND q.ts < p.ts
          AND q.station_id <> p.station_id AND NOT EXISTS (
              SELECT 1 FROM area_stations x WHERE x.station_id = q.station_id AND x.area_id = p.area_id)
        ORDER BY q.ts DESC LIMIT 1) AS moved,
       (SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id AND q.ts < p.ts
          AND q.station_id = ANY($5::int[]) ORDER BY q.ts DESC LIMIT 1) AS exited
FROM unnest($1::int[], $2::timestamptz[], $3::int[], $4::int[]) AS p(card_id, ts, station_id, area_id)
"""
# The first read after each mark (none: the card's first read), up to now.
_FIRST_AFTER = """
SELECT p.card_id, (SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id
                   AND (p.after IS NULL OR q.ts > p.after) AND q.ts <= $3 ORDER BY q.ts LIMIT 1) AS ts
FROM unnest($1::int[], $2::timestamptz[]) AS p(card_id, after)
"""
_OVERTIME = """
SELECT f.id, f.subject, f.start_ts, f.evidence->>'entry' AS entry FROM findings f
WHERE f.mine_id = $1 AND f.rule = 'overtime' AND f.state = 'open' AND f.end_ts IS NULL AND f.start_ts <= $2
ORDER BY f.subject, f.start_ts
"""


async def underground(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, now: datetime,
                      limit: int, cursor: str | None) -> PersonnelOut:
    """The people underground in one (visible) mine now; one page of them, counts over all."""
    after: str | None = None
    if cursor:
        (key,) = codec.decode(cursor, _KIND, ("str",))
        after = str(key)
    async with pool.acquire() as conn:
        rows = await conn.fetch(_LATEST, mine_id, now)
        areas = await conn.fetch(
            "SELECT code, name, approved, restricted, shaft FROM areas WHERE mine_id = $1 ORDER BY code", mine_id)
        approved = await conn.fetchval("SELECT approved_underground FROM mines WHERE id = $1", mine_id)
    inside = [r for r in rows if not r["shaft"]]
    counts = Counter(r["area"] for r in inside)
    area_counts = [AreaCount(area=a["code"], name=a["name"], count=counts.get(a["code"], 0), approved=a["approved"],
                             restricted=a["restricted"], shaft=a["shaft"],
                             over=a["approved"] is not None and counts.get(a["code"], 0) > a["approved"])
                   for a in areas]
    listed = [r for r in inside if after is None or r["code"] > after]
    page = listed[:limit]
    nxt = codec.encode(_KIND, (page[-1]["code"],)) if len(listed) > limit else None
    async with pool.acquire() as conn:
        since, entered = await _since(conn, mine_id, page, now)
        overtime = await conn.fetch(_OVERTIME, mine_id, now)
    leaders = sorted(r["code"] for r in inside if r["role"] == "leader")
    return PersonnelOut(
        mine=mine, as_of=now, underground=len(inside),
        approved=approved, over=approved is not None and len(inside) > approved, areas=area_counts,
        unassigned=counts.get(None, 0), leader_underground=bool(leaders), leaders=leaders,
        overtime=[OvertimeOut(card=r["subject"], entry=datetime.fromisoformat(r["entry"]) if r["entry"] else None,
                              since=r["start_ts"], finding=r["id"]) for r in overtime],
        items=[PersonOut(card=r["code"], role=r["role"], name=r["name"], area=r["area"], station=r["station"],
                         last_seen=r["ts"], since=since[r["card_id"]], entered=entered[r["card_id"]])
               for r in page],
        next_cursor=nxt)


async def _since(conn: asyncpg.Connection | PoolConnectionProxy, mine_id: int, page: list[asyncpg.Record],
                 now: datetime) -> tuple[dict[int, datetime], dict[int, datetime]]:
    """Per listed card: the first read of its current run in its area, and when it went
    underground (its first read after its last shaft read)."""
    if not page:
        return {}, {}
    shaft = [r["id"] for r in await conn.fetch(
        "SELECT ast.station_id AS id FROM area_stations ast JOIN areas a ON a.id = ast.area_id "
        "WHERE a.mine_id = $1 AND a.shaft", mine_id)]
    ids = [r["card_id"] for r in page]
    marks = {r["card_id"]: r for r in await conn.fetch(
        _SINCE, ids, [r["ts"] for r in page], [r["station_id"] for r in page],
        [r["area_id"] if r["area_id"] is not None else -1 for r in page], shaft)}
    runs = {r["card_id"]: r["ts"] for r in await conn.fetch(_FIRST_AFTER, ids, [marks[c]["moved"] for c in ids], now)}
    entries = {r["card_id"]: r["ts"] for r in await conn.fetch(
        _FIRST_AFTER, ids, [marks[c]["exited"] for c in ids], now)}
    since = {c: runs[c] or p["ts"] for c, p in zip(ids, page, strict=True)}
    entered = {c: entries[c] or since[c] for c in ids}
    return since, entered
