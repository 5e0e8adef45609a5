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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import asyncpg

from api.pagination import CursorCodec
from api.personnel.schemas import AreaCount, OvertimeOut, PersonnelOut, PersonOut
from rules import presence_store
from rules.load import Conn
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
"""

_OVERTIME = """
SELECT f.id, f.subject, f.start_ts, f.evidence->>'entry' AS entry FROM findings f
WHERE f.mine_id = $1 AND f.rule = 'overtime' AND f.state = 'open' AND f.end_ts IS NULL AND f.start_ts <= $2
ORDER BY f.subject, f.start_ts
"""


# The kept path (rules.presence_store, migration 0093): the rows counted by station, one page of
# them, and what the rows may not count yet: the reads up to now in card-read windows the rules
# worker has not claimed, and rows that count a read after now.
_KEPT_COUNTS = """
SELECT p.station_id, count(*)::int AS n, array_agg(c.code) FILTER (WHERE c.role = 'leader') AS leaders
FROM card_presence p JOIN cards c ON c.id = p.card_id AND c.mine_id = $1
WHERE p.mine_id = $1 AND p.card_id <> ALL($2::int[])
GROUP BY p.station_id
"""
# One page by code point order (COLLATE "C": UTF-8 bytes, as Python compares the cursor).
_KEPT_PAGE = """
SELECT c.id AS card_id, c.code, c.role, p.ts, p.station_id, c.name, p.run, p.stay
FROM card_presence p JOIN cards c ON c.id = p.card_id AND c.mine_id = $1
WHERE p.mine_id = $1 AND p.card_id <> ALL($2::int[]) AND p.station_id <> ALL($3::int[])
  AND ($4::text IS NULL OR c.code COLLATE "C" > $4::text COLLATE "C")
ORDER BY c.code COLLATE "C" LIMIT $5
"""
_AHEAD = """
SELECT p.card_id FROM card_presence p JOIN cards c ON c.id = p.card_id AND c.mine_id = $1
WHERE p.mine_id = $1 AND p.ts > $2
"""
_PENDING = """
SELECT DISTINCT r.card_id, r.ts, r.station_id FROM dirty_windows w
JOIN card_reads r ON r.mine_id = w.mine_id AND r.ts >= w.min_ts AND r.ts <= least(w.max_ts, $2)
JOIN cards c ON c.id = r.card_id AND c.mine_id = $1
WHERE w.mine_id = $1 AND w.kind = 'card_reads' AND w.n_rows > 0
ORDER BY r.card_id, r.ts
"""
# The rows answer only when built under the mine's current layout, and when the windows not
# claimed yet span less than the worker's own rebuild threshold (a backlog of hours: reading
# its reads back on every request would cost more than card_reads alone).
_KEPT_USABLE = (  # module constants only; the mine is $1
    "SELECT (" + presence_store.BUILT_IS_CURRENT + ") AND coalesce((SELECT sum(max_ts - min_ts) "
    "FROM dirty_windows WHERE mine_id = $1 AND kind = 'card_reads' AND n_rows > 0), interval '0') <= $2::interval")
_CARDS = "SELECT id AS card_id, code, role, name FROM cards WHERE id = ANY($1::int[])"


class _Station(NamedTuple):
    code: str
    area_id: int | None
    area: str | None
    shaft: bool


class _Latest(NamedTuple):
    """A card's latest read up to now; name, run and stay when already known."""
    card_id: int
    code: str
    role: str
    ts: datetime
    station_id: int
    name: str | None = None
    run: datetime | None = None
    stay: datetime | None = None


@dataclass
class _View:
    """Who is underground: the total, per area, the leaders, and one page (by code)."""
    underground: int = 0
    counts: Counter[str | None] = field(default_factory=Counter)
    leaders: list[str] = field(default_factory=list)
    page: list[tuple[_Latest, _Station]] = field(default_factory=list)
    more: bool = False

    def add(self, st: _Station, n: int, leaders: list[str]) -> None:
        self.underground += n
        self.counts[st.area] += n
        self.leaders += leaders


async def _named(conn: Conn, stations: dict[int, _Station], ids: set[int]) -> None:
    """Add the stations of another mine a card was read at (it moved between mines)."""
    if foreign := ids - stations.keys():
        stations.update({r["id"]: _Station(r["code"], r["area_id"], r["area"], r["shaft"])
                         for r in await conn.fetch(_STATIONS, -1, sorted(foreign))})


async def _from_card_reads(conn: Conn, mine_id: int, now: datetime, stations: dict[int, _Station],
                           shaft: list[int], after: str | None, limit: int) -> _View:
    """Every card's latest read from card_reads; the page's "since" and "entered" by the walk the
    kept rows are built with (rules.presence_store.COMPUTE, as of now)."""
    shaft_area = [i for i, st in stations.items() if st.shaft]
    latest = [_Latest(*r) for r in await conn.fetch(_LATEST, mine_id, now, now - RECENT, shaft_area)]
    await _named(conn, stations, {r.station_id for r in latest})
    view = _View()
    inside = [(r, st) for r in latest if not (st := stations[r.station_id]).shaft]
    for r, st in inside:
        view.add(st, 1, [r.code] if r.role == "leader" else [])
    listed = sorted((x for x in inside if after is None or x[0].code > after), key=lambda x: x[0].code)
    page, view.more = listed[:limit], len(listed) > limit
    walk = [r.card_id for r, _ in page]
    if walk:
        computed = {p.card_id: p for p in await presence_store.compute(conn, walk, shaft, now)}
        names = {d["card_id"]: d["name"] for d in await conn.fetch(_CARDS, walk)}
        page = [(r._replace(name=names[r.card_id], run=computed[r.card_id].run, stay=computed[r.card_id].stay)
                 if r.card_id in computed else r, st) for r, st in page]
    view.page = page
    return view


async def _from_kept(conn: Conn, mine_id: int, now: datetime, stations: dict[int, _Station], shaft: list[int],
                     after: str | None, limit: int) -> _View:
    """The kept rows, counted and paged in SQL, but for the cards they may not settle alone: those
    read in windows not claimed yet, brought up to those reads (rules.presence_store.advance, the
    worker's own step), and those whose row counts a read after now or that the step cannot
    settle, recomputed from card_reads."""
    pending = await conn.fetch(_PENDING, mine_id, now)
    ahead = {r["card_id"] for r in await conn.fetch(_AHEAD, mine_id, now)}
    behind = sorted({r["card_id"] for r in pending} | ahead)
    fresh: list[_Latest] = []
    if behind:
        rows = {c: p for c, p in (await presence_store.kept_rows(conn, behind)).items() if c not in ahead}
        layout = await presence_store.stations_of(conn, mine_id, [r["station_id"] for r in pending]
                                                  + [p.station_id for p in rows.values()])
        _, again = presence_store.advance(rows, (tuple(r) for r in pending if r["card_id"] not in ahead), layout)
        for card in again:
            rows.pop(card, None)
        if recompute := sorted(again | ahead):
            rows.update((p.card_id, p) for p in await presence_store.compute(conn, recompute, shaft, now))
        cards = {r["card_id"]: r for r in await conn.fetch(_CARDS, behind)}
        fresh = [_Latest(c, cards[c]["code"], cards[c]["role"], p.ts, p.station_id, cards[c]["name"], p.run, p.stay)
                 for c, p in rows.items()]
    by_station = await conn.fetch(_KEPT_COUNTS, mine_id, behind)
    await _named(conn, stations, {r["station_id"] for r in by_station} | {f.station_id for f in fresh})
    view = _View()
    for r in by_station:
        if not (st := stations[r["station_id"]]).shaft:
            view.add(st, r["n"], list(r["leaders"] or ()))
    inside = [(f, st) for f in fresh if not (st := stations[f.station_id]).shaft]
    for f, st in inside:
        view.add(st, 1, [f.code] if f.role == "leader" else [])
    out = [i for i, st in stations.items() if st.shaft]
    kept_page = [(r, stations[r.station_id]) for r in
                 (_Latest(*x) for x in await conn.fetch(_KEPT_PAGE, mine_id, behind, out, after, limit + 1))]
    listed = sorted(kept_page + [x for x in inside if after is None or x[0].code > after], key=lambda x: x[0].code)
    view.page, view.more = listed[:limit], len(listed) > limit
    return view


async def underground(*, pool: asyncpg.Pool, codec: CursorCodec, mine_id: int, mine: str, now: datetime,
                      limit: int, cursor: str | None, rules: PersonnelSettings, kept: bool = True) -> PersonnelOut:
    """The people underground in one (visible) mine now; one page of them, counts over all.
    ``rules``: the rule pack's personnel settings (the national bounds of the mine's limit).
    One snapshot: the presence rows the rules worker keeps and the windows it has not claimed
    yet are read together (REPEATABLE READ), or card_reads alone when the rows are not current
    (or ``kept`` is False: the reference the kept path is tested against). Pages go by card
    code in code point order, as the cursor compares."""
    after: str | None = None
    if cursor:
        (key,) = codec.decode(cursor, _KIND, ("str",))
        after = str(key)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        station_rows = await conn.fetch(_STATIONS, mine_id, [])
        stations = {r["id"]: _Station(r["code"], r["area_id"], r["area"], r["shaft"]) for r in station_rows}
        shaft = [r["id"] for r in station_rows if r["in_shaft"]]  # the mine's shaft-area stations
        if kept and await conn.fetchval(_KEPT_USABLE, mine_id, presence_store.REBUILD_SPAN):
            view = await _from_kept(conn, mine_id, now, stations, shaft, after, limit)
        else:
            view = await _from_card_reads(conn, mine_id, now, stations, shaft, after, limit)
        area_rows = await conn.fetch(_AREAS, mine_id)
        overtime = await conn.fetch(_OVERTIME, mine_id, now)
    approved = area_rows[0]["approved_underground"] if area_rows else None
    mine_cap = mine_limit(approved, bool(area_rows and area_rows[0]["disaster_severe"]), rules)
    counts = view.counts
    area_counts = [AreaCount(area=a["code"], name=a["name"], count=counts.get(a["code"], 0),
                             approved=a["approved"], restricted=a["restricted"], shaft=a["shaft"],
                             over=a["approved"] is not None and counts.get(a["code"], 0) > a["approved"])
                   for a in area_rows if a["id"] is not None]
    nxt = codec.encode(_KIND, (view.page[-1][0].code,)) if view.more else None
    leaders = sorted(view.leaders)
    items = []
    for r, st in view.page:
        since = r.run or r.ts
        items.append(PersonOut(card=r.code, role=r.role, name=r.name, area=st.area, station=st.code,
                               last_seen=r.ts, since=since, entered=r.stay or since))
    return PersonnelOut(
        mine=mine, as_of=now, underground=view.underground,
        approved=approved, limit=mine_cap, over=view.underground > mine_cap, areas=area_counts,
        unassigned=counts.get(None, 0), leader_underground=bool(leaders), leaders=leaders,
        overtime=[OvertimeOut(card=r["subject"], entry=datetime.fromisoformat(r["entry"]) if r["entry"] else None,
                              since=r["start_ts"], finding=r["id"]) for r in overtime],
        items=items, next_cursor=nxt)
