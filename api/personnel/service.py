"""Who is underground: each card's latest read, judged by where it was taken.

A card counts as underground when its latest read within the last
`WINDOW` (12 h) was taken
  * at a station of a non-shaft area (or of no area): it is in that area; or
  * at a shaft station as an entry: the card had no read at a non-shaft station in the
    `EXIT_LOOKBACK` (15 min) before that latest read, i.e. it came from the surface.
A latest read at the shaft that follows, within 15 min, a read in the workings is an
exit: the card is on its way out and is not counted. A card not read for 12 h is not
counted (a card underground is read every minute or so; 12 h is a shift of 8 h plus
the 2 h overtime grace of rules.md §7, plus margin).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import asyncpg

from api.pagination import CursorCodec
from api.personnel.schemas import AreaCount, PersonnelOut, PersonOut

WINDOW = timedelta(hours=12)
EXIT_LOOKBACK = timedelta(minutes=15)
_KIND = "personnel"

_LATEST = """
WITH latest AS (
    SELECT c.id AS card_id, c.code, c.role, c.name, r.ts, r.station_id
    FROM cards c
    CROSS JOIN LATERAL (
        SELECT ts, station_id FROM card_reads
        WHERE card_id = c.id AND ts > $2 AND ts <= $3
        ORDER BY ts DESC LIMIT 1) r
    WHERE c.mine_id = $1
)
SELECT l.code, l.role, l.name, l.ts, s.code AS station, a.code AS area, COALESCE(a.shaft, false) AS shaft,
       COALESCE(a.shaft, false) AND EXISTS (
           SELECT 1 FROM card_reads p
           JOIN area_stations pas ON pas.station_id = p.station_id
           JOIN areas pa ON pa.id = pas.area_id AND NOT pa.shaft
           WHERE p.card_id = l.card_id AND p.ts >= l.ts - $4::interval AND p.ts < l.ts) AS leaving
FROM latest l
JOIN stations s ON s.id = l.station_id
LEFT JOIN LATERAL (
    SELECT a.code, a.shaft FROM area_stations ast JOIN areas a ON a.id = ast.area_id
    WHERE ast.station_id = l.station_id ORDER BY a.code LIMIT 1) a ON true
ORDER BY l.code
"""


async def underground(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, now: datetime,
                      limit: int, cursor: str | None) -> PersonnelOut:
    """The people underground in one (visible) mine now; one page of them, counts over all."""
    after: str | None = None
    if cursor:
        (key,) = codec.decode(cursor, _KIND, ("str",))
        after = str(key)
    async with pool.acquire() as conn:
        rows = await conn.fetch(_LATEST, mine_id, now - WINDOW, now, EXIT_LOOKBACK)
        areas = await conn.fetch(
            "SELECT code, name, approved, restricted, shaft FROM areas WHERE mine_id = $1 ORDER BY code", mine_id)
        approved = await conn.fetchval("SELECT approved_underground FROM mines WHERE id = $1", mine_id)
    inside = [r for r in rows if not r["leaving"]]
    counts = Counter(r["area"] for r in inside)
    area_counts = [AreaCount(area=a["code"], name=a["name"], count=counts.get(a["code"], 0), approved=a["approved"],
                             restricted=a["restricted"], shaft=a["shaft"],
                             over=a["approved"] is not None and counts.get(a["code"], 0) > a["approved"])
                   for a in areas]
    listed = [r for r in inside if after is None or r["code"] > after]
    page = listed[:limit]
    nxt = codec.encode(_KIND, (page[-1]["code"],)) if len(listed) > limit else None
    return PersonnelOut(
        mine=mine, as_of=now, window_hours=int(WINDOW.total_seconds() // 3600), underground=len(inside),
        approved=approved, over=approved is not None and len(inside) > approved, areas=area_counts,
        unassigned=counts.get(None, 0),
        items=[PersonOut(card=r["code"], role=r["role"], name=r["name"], area=r["area"], station=r["station"],
                         last_seen=r["ts"]) for r in page],
        next_cursor=nxt)
