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
from datetime import datetime, timedelta
from typing import NamedTuple

import asyncpg

from api.pagination import CursorCodec
from api.personnel.schemas import AreaCount, OvertimeOut, PersonnelOut, PersonOut
from rules.packs import PersonnelSettings
from rules.personnel_worker import mine_limit

_KIND = "personnel"
# Reads newer than this come from one scan of the mine's reads by time (see _LATEST): everyone in
# the workings is read every minute or so.
RECENT = timedelta(minutes=3)

# The mine's stations (and any other a latest read names): code, area (the first by code, as
# everywhere in this view) and whether a shaft area holds it (for the page's entry marks).
_STATIONS = """
SELECT s.id, s.code, a.id AS area_id, a.code AS area, COALESCE(a.shaft, false) AS shaft,
       EXISTS (SELECT 1 FROM area_stations x JOIN areas xa ON xa.id = x.area_id AND xa.shaft
               WHERE x.station_id = s.id) AS in_shaft
FROM stations s
LEFT JOIN LATERAL (
    SELECT a.id, a.code, a.shaft FROM area_stations ast JOIN areas a ON a.id = ast.area_id
    WHERE ast.station_id = s.id ORDER BY a.code LIMIT 1) a ON true
WHERE s.mine_id = $1 OR s.id = ANY($2::int[])
"""
_AREAS = """
SELECT a.id, a.code, a.name, a.approved, a.restricted, a.shaft, m.approved_underground, m.disaster_severe
FROM mines m LEFT JOIN areas a ON a.mine_id = m.id WHERE m.id = $1 ORDER BY a.code
"""

# Each card's latest read up to now, sent back only when it is not at one of $4, the mine's
# stations whose area is a shaft (those cards are above ground). The cards read in the last
# RECENT (everyone in the workings) come from one range scan of the mine's reads by time (the
# (mine_id, ts) index: a few thousand rows on neighbouring pages); only the others (above
# ground, or silent) cost a probe of their own reads (the (card_id, ts) key, backwards, newest
# partition first). A probe for every card costs a btree descent each: with 1 500 people below
# that was most of the statement.
# (A read is stored under its card's mine, so the mine's recent reads are its cards' latest.)
_LATEST = """
WITH recent AS MATERIALIZED (
    SELECT DISTINCT ON (card_id) card_id, ts, station_id FROM card_reads
    WHERE mine_id = $1 AND ts > $3 AND ts <= $2
    ORDER BY card_id, ts DESC
)
SELECT c.id AS card_id, c.code, c.role, rc.ts, rc.station_id
FROM recent rc JOIN cards c ON c.id = rc.card_id
WHERE c.mine_id = $1 AND rc.station_id <> ALL($4::int[])
UNION ALL
SELECT c.id, c.code, c.role, r.ts, r.station_id
FROM cards c
CROSS JOIN LATERAL (
    SELECT q.ts, q.station_id FROM card_reads q
    WHERE q.card_id = c.id AND q.ts <= $2
    ORDER BY q.ts DESC LIMIT 1) r
WHERE c.mine_id = $1 AND r.station_id <> ALL($4::int[]) AND NOT EXISTS (SELECT 1 FROM recent x WHERE x.card_id = c.id)
ORDER BY 2
"""

# For the listed cards, in one statement: walking back from the latest read, the last read
# elsewhere (at another station, outside the card's area) or at a shaft station, whichever comes
# first (one backward scan of the card's reads, stopped at the first match). When that read is
# both (an entry without a detour since, the common case) it is both marks; otherwise the
# missing mark is looked for further back from there. Then the first read after each mark (no
# mark: the card's first read), up to now: the start of the run in the area and of the stay.
# `Elsewhere` is the test _SINCE always made: another station, and not one of the card's area.
_SINCE = """
SELECT p.card_id, c.name, f.run, f.stay
FROM unnest($1::int[], $2::timestamptz[], $3::int[], $4::int[]) AS p(card_id, ts, station_id, area_id)
JOIN cards c ON c.id = p.card_id
LEFT JOIN LATERAL (
    SELECT q.ts, q.station_id = ANY($5::int[]) AS at_shaft,
           (q.station_id <> p.station_id AND NOT EXISTS (SELECT 1 FROM area_stations x
               WHERE x.station_id = q.station_id AND x.area_id = p.area_id)) AS elsewhere
    FROM card_reads q
    WHERE q.card_id = p.card_id AND q.ts < p.ts
      AND (q.station_id = ANY($5::int[]) OR (q.station_id <> p.station_id AND NOT EXISTS (
           SELECT 1 FROM area_stations x WHERE x.station_id = q.station_id AND x.area_id = p.area_id)))
    ORDER BY q.ts DESC LIMIT 1) m ON true
CROSS JOIN LATERAL (
    SELECT CASE WHEN m.elsewhere THEN m.ts WHEN m.ts IS NOT NULL THEN (
               SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id AND q.ts < m.ts
                 AND q.station_id <> p.station_id AND NOT EXISTS (
                     SELECT 1 FROM area_stations x WHERE x.station_id = q.station_id AND x.area_id = p.area_id)
               ORDER BY q.ts DESC LIMIT 1) END AS moved,
           CASE WHEN m.at_shaft THEN m.ts WHEN m.ts IS NOT NULL THEN (
               SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id AND q.ts < m.ts
                 AND q.station_id = ANY($5::int[]) ORDER BY q.ts DESC LIMIT 1) END AS exited) k
CROSS JOIN LATERAL (
    SELECT (SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id AND q.ts > COALESCE(k.moved, '-infinity')
              AND q.ts <= $6 ORDER BY q.ts LIMIT 1) AS run,
           (SELECT q.ts FROM card_reads q WHERE q.card_id = p.card_id AND q.ts > COALESCE(k.exited, '-infinity')
              AND q.ts <= $6 ORDER BY q.ts LIMIT 1) AS stay) f
"""
_OVERTIME = """
SELECT f.id, f.subject, f.start_ts, f.evidence->>'entry' AS entry FROM findings f
WHERE f.mine_id = $1 AND f.rule = 'overtime' AND f.state = 'open' AND f.end_ts IS NULL AND f.start_ts <= $2
ORDER BY f.subject, f.start_ts
"""


class _Station(NamedTuple):
    code: str
    area_id: int | None
    area: str | None
    shaft: bool


async def underground(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, now: datetime,
                      limit: int, cursor: str | None, rules: PersonnelSettings) -> PersonnelOut:
    """The people underground in one (visible) mine now; one page of them, counts over all.
    ``rules``: the rule pack's personnel settings (the national bounds of the mine's limit)."""
    after: str | None = None
    if cursor:
        (key,) = codec.decode(cursor, _KIND, ("str",))
        after = str(key)
    async with pool.acquire() as conn:
        station_rows = await conn.fetch(_STATIONS, mine_id, [])
        stations = {r["id"]: _Station(r["code"], r["area_id"], r["area"], r["shaft"]) for r in station_rows}
        latest = await conn.fetch(_LATEST, mine_id, now, now - RECENT, [i for i, st in stations.items() if st.shaft])
        area_rows = await conn.fetch(_AREAS, mine_id)
        foreign = {r["station_id"] for r in latest} - stations.keys()
        if foreign:  # read at a station of another mine (the card moved between mines): name it
            stations.update({r["id"]: _Station(r["code"], r["area_id"], r["area"], r["shaft"])
                             for r in await conn.fetch(_STATIONS, -1, sorted(foreign))})
    shaft = [r["id"] for r in station_rows if r["in_shaft"]]  # the mine's shaft-area stations
    approved = area_rows[0]["approved_underground"] if area_rows else None
    mine_cap = mine_limit(approved, bool(area_rows and area_rows[0]["disaster_severe"]), rules)
    areas = [a for a in area_rows if a["id"] is not None]
    inside = [(r, st) for r in latest if not (st := stations[r["station_id"]]).shaft]
    counts = Counter(st.area for _, st in inside)
    area_counts = [AreaCount(area=a["code"], name=a["name"], count=counts.get(a["code"], 0), approved=a["approved"],
                             restricted=a["restricted"], shaft=a["shaft"],
                             over=a["approved"] is not None and counts.get(a["code"], 0) > a["approved"])
                   for a in areas]
    listed = inside if after is None else [x for x in inside if x[0]["code"] > after]
    page = listed[:limit]
    nxt = codec.encode(_KIND, (page[-1][0]["code"],)) if len(listed) > limit else None
    async with pool.acquire() as conn:
        marks = {r["card_id"]: r for r in await conn.fetch(
            _SINCE, [r["card_id"] for r, _ in page], [r["ts"] for r, _ in page], [r["station_id"] for r, _ in page],
            [st.area_id if st.area_id is not None else -1 for _, st in page], shaft, now)} if page else {}
        overtime = await conn.fetch(_OVERTIME, mine_id, now)
    leaders = sorted(r["code"] for r, _ in inside if r["role"] == "leader")
    items = []
    for r, st in page:
        m = marks[r["card_id"]]
        since = m["run"] or r["ts"]
        items.append(PersonOut(card=r["code"], role=r["role"], name=m["name"], area=st.area, station=st.code,
                               last_seen=r["ts"], since=since, entered=m["stay"] or since))
    return PersonnelOut(
        mine=mine, as_of=now, underground=len(inside),
        approved=approved, limit=mine_cap, over=len(inside) > mine_cap, areas=area_counts,
        unassigned=counts.get(None, 0), leader_underground=bool(leaders), leaders=leaders,
        overtime=[OvertimeOut(card=r["subject"], entry=datetime.fromisoformat(r["entry"]) if r["entry"] else None,
                              since=r["start_ts"], finding=r["id"]) for r in overtime],
        items=items, next_cursor=nxt)
