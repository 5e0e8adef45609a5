"""Each card's presence, kept in `card_presence` (migration 0093) for the personnel page.

rules.md §7's presence model as the page states it (api/personnel/service.py): a card's latest
read decides where it is; `since` is the first read of its current run in the area (after its
last read *elsewhere*: at another station, outside the area of the latest read's station) and
`entered` the first read of its stay (after its last read at a shaft station of the mine).
Recomputing that for every card of a mine on every request costs a probe per card and two
backward walks per listed card; the rules worker keeps it instead, in the transaction that
claims the card-read windows, so the page reads one small table.

Kept incrementally and exactly. A row holds the latest read and, for `since` and `entered`, the
first read of the run (stay) and the *mark* before it: the last read elsewhere (at a shaft).
- A read after the latest moves the run and the stay by the previous latest read alone (`_advance`),
  except when that read is in the new station's area without sharing its first area (a station
  in two areas): then the card is recomputed from card_reads.
- A read before the latest (late, or already counted: a claim cannot tell) can move only a mark
  or a first read: it does so exactly when it falls after the mark and before the first read, or
  after the mark and is itself elsewhere (at a shaft) — no counted read can (`_moves`). Those cards
  are recomputed from card_reads.
- A mine is built whole (every card from card_reads) when its layout (cards, stations' areas,
  shaft areas; `LAYOUT`) differs from the one its rows were built under, and when a claim's
  card-read windows cover more than `REBUILD_SPAN` (a bulk upload: one walk per card is then
  cheaper than reading every read back).

The table is an index of card_reads, never the record: the API answers from it only for a mine
whose `presence_built.layout` is current, and takes from card_reads every card with reads in a
window not yet claimed or read after its "now".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from minewatch.timeutil import from_ns
from rules.evaluate import plan_spans
from rules.load import Conn

# A claim whose card-read windows span more than this rebuilds the mine (module doc).
REBUILD_SPAN = timedelta(hours=1)
_REBUILD_NS = REBUILD_SPAN // timedelta(microseconds=1) * 1_000

# The hash of what a mine's presence rows depend on besides its reads: its cards, and per area of
# the mine its code (the first area by code is a station's area), whether it is a shaft, and its
# stations. The API compares it with presence_built.layout in the same snapshot.
LAYOUT = """
SELECT md5(coalesce((SELECT string_agg(c.id::text, ',' ORDER BY c.id) FROM cards c WHERE c.mine_id = $1), '')
    || '|' || coalesce((SELECT string_agg(a.id || ':' || a.code || ':' || a.shaft || ':' || coalesce(
        (SELECT string_agg(x.station_id::text, ',' ORDER BY x.station_id) FROM area_stations x WHERE x.area_id = a.id),
        ''), ';' ORDER BY a.id) FROM areas a WHERE a.mine_id = $1), ''))
"""
# (Module constants only; the mine is $1.)
BUILT_IS_CURRENT = "SELECT EXISTS (SELECT 1 FROM presence_built WHERE mine_id = $1 AND layout = (" + LAYOUT + "))"  # noqa: S608

# The stations of the mine and any other of $2 (a card read at another mine's station): each
# one's first area by code and all its areas, and whether it is a shaft station of the mine
# (in a shaft area of the mine: another mine's shaft does not end a stay here, as on the page).
STATIONS = """
SELECT s.id, (SELECT a.id FROM area_stations x JOIN areas a ON a.id = x.area_id WHERE x.station_id = s.id
              ORDER BY a.code LIMIT 1) AS area_id,
       ARRAY(SELECT x.area_id FROM area_stations x WHERE x.station_id = s.id) AS areas,
       s.mine_id = $1 AND EXISTS (SELECT 1 FROM area_stations x JOIN areas a ON a.id = x.area_id AND a.shaft
                                  WHERE x.station_id = s.id) AS shaft
FROM stations s WHERE s.mine_id = $1 OR s.id = ANY($2::int[])
"""

# Cards $1 from card_reads, as of $3 (reads up to it), with $2 the mine's shaft stations: the
# latest read; walking back from it, the last read elsewhere or at a shaft, whichever comes first
# (one backward scan, stopped at the first match; when it is both, the common entry through the
# shaft, it is both marks, otherwise the missing one is looked for further back); then the first
# read after each mark (no mark: the card's first read). A card never read has no row.
COMPUTE = """
SELECT c.card_id, l.ts, l.station_id, f.run, k.moved AS run_mark, f.stay, k.exited AS stay_mark
FROM unnest($1::int[]) AS c(card_id)
CROSS JOIN LATERAL (
    SELECT q.ts, q.station_id FROM card_reads q WHERE q.card_id = c.card_id AND q.ts <= coalesce($3::timestamptz, 'infinity')
    ORDER BY q.ts DESC LIMIT 1) l
CROSS JOIN LATERAL (
    SELECT coalesce((SELECT a.id FROM area_stations x JOIN areas a ON a.id = x.area_id
                     WHERE x.station_id = l.station_id ORDER BY a.code LIMIT 1), -1) AS area_id) p
LEFT JOIN LATERAL (
    SELECT q.ts, q.station_id = ANY($2::int[]) AS at_shaft,
           (q.station_id <> l.station_id AND NOT EXISTS (SELECT 1 FROM area_stations x
               WHERE x.station_id = q.station_id AND x.area_id = p.area_id)) AS elsewhere
    FROM card_reads q
    WHERE q.card_id = c.card_id AND q.ts < l.ts
      AND (q.station_id = ANY($2::int[]) OR (q.station_id <> l.station_id AND NOT EXISTS (
           SELECT 1 FROM area_stations x WHERE x.station_id = q.station_id AND x.area_id = p.area_id)))
    ORDER BY q.ts DESC LIMIT 1) m ON true
CROSS JOIN LATERAL (
    SELECT CASE WHEN m.elsewhere THEN m.ts WHEN m.ts IS NOT NULL THEN (
               SELECT q.ts FROM card_reads q WHERE q.card_id = c.card_id AND q.ts < m.ts
                 AND q.station_id <> l.station_id AND NOT EXISTS (
                     SELECT 1 FROM area_stations x WHERE x.station_id = q.station_id AND x.area_id = p.area_id)
               ORDER BY q.ts DESC LIMIT 1) END AS moved,
           CASE WHEN m.at_shaft THEN m.ts WHEN m.ts IS NOT NULL THEN (
               SELECT q.ts FROM card_reads q WHERE q.card_id = c.card_id AND q.ts < m.ts
                 AND q.station_id = ANY($2::int[]) ORDER BY q.ts DESC LIMIT 1) END AS exited) k
CROSS JOIN LATERAL (
    SELECT (SELECT q.ts FROM card_reads q WHERE q.card_id = c.card_id AND q.ts > COALESCE(k.moved, '-infinity')
              AND q.ts <= l.ts ORDER BY q.ts LIMIT 1) AS run,
           (SELECT q.ts FROM card_reads q WHERE q.card_id = c.card_id AND q.ts > COALESCE(k.exited, '-infinity')
              AND q.ts <= l.ts ORDER BY q.ts LIMIT 1) AS stay) f
"""

_UPSERT = """
INSERT INTO card_presence (card_id, mine_id, ts, station_id, run, run_mark, stay, stay_mark)
SELECT * FROM unnest($1::int[], $2::int[], $3::timestamptz[], $4::int[], $5::timestamptz[], $6::timestamptz[],
                     $7::timestamptz[], $8::timestamptz[])
ON CONFLICT (card_id) DO UPDATE SET mine_id = EXCLUDED.mine_id, ts = EXCLUDED.ts, station_id = EXCLUDED.station_id,
    run = EXCLUDED.run, run_mark = EXCLUDED.run_mark, stay = EXCLUDED.stay, stay_mark = EXCLUDED.stay_mark
"""


@dataclass(slots=True)
class Presence:
    """One card's row (times are aware datetimes; a mark None: no such read before), its fields
    in the order COMPUTE and `kept_rows` select them."""

    card_id: int
    ts: datetime
    station_id: int
    run: datetime
    run_mark: datetime | None
    stay: datetime
    stay_mark: datetime | None


@dataclass(frozen=True, slots=True)
class StationLayout:
    area_id: int | None  # the first area by code
    areas: frozenset[int]
    shaft: bool  # a shaft station of the mine


def _elsewhere(station: int, of: int, stations: dict[int, StationLayout]) -> bool:
    """Whether a read at `station` is elsewhere for a card whose latest read is at `of`."""
    area = stations[of].area_id
    return station != of and not (area is not None and area in stations[station].areas)


def _advance(p: Presence, ts: datetime, station: int, stations: dict[int, StationLayout]) -> bool:
    """Move `p` to a read after its latest; False when only card_reads can tell (module doc)."""
    prev, prev_ts = p.station_id, p.ts
    same_area = station == prev or (stations[station].area_id is not None
                                    and stations[station].area_id == stations[prev].area_id)
    if not same_area:
        if not _elsewhere(prev, station, stations):
            return False
        p.run_mark, p.run = prev_ts, ts
    if stations[prev].shaft:
        p.stay_mark, p.stay = prev_ts, ts
    p.ts, p.station_id = ts, station
    return True


def _moves(p: Presence, ts: datetime, station: int, stations: dict[int, StationLayout]) -> bool:
    """Whether a read before `p`'s latest (not counted in it, or counted: either) changes it."""
    run = (p.run_mark is None or ts > p.run_mark) and (ts < p.run or _elsewhere(station, p.station_id, stations))
    stay = (p.stay_mark is None or ts > p.stay_mark) and (ts < p.stay or stations[station].shaft)
    return run or stay


async def stations_of(conn: Conn, mine_id: int, others: Iterable[int] = ()) -> dict[int, StationLayout]:
    """The mine's stations and `others` as `advance` needs them."""
    return {r["id"]: StationLayout(r["area_id"], frozenset(r["areas"]), r["shaft"])
            for r in await conn.fetch(STATIONS, mine_id, sorted(set(others)))}


def advance(rows: dict[int, Presence], reads: Iterable[tuple[int, datetime, int]],
            stations: dict[int, StationLayout]) -> tuple[dict[int, Presence], set[int]]:
    """Bring `rows` (card -> row, updated in place; a card without one is new) up to `reads`
    (card, ts, station; by card, then time), reads they may or may not count already. Returns
    the rows changed and the cards only card_reads can settle (`_advance`, `_moves`)."""
    changed: dict[int, Presence] = {}
    again: set[int] = set()
    for card, ts, station in reads:
        if card in again:
            continue
        p = rows.get(card)
        if p is None:
            rows[card] = changed[card] = Presence(card, ts, station, ts, None, ts, None)
        elif ts > p.ts:
            if _advance(p, ts, station, stations):
                changed[card] = p
            else:
                again.add(card)
        elif ts < p.ts and _moves(p, ts, station, stations):
            again.add(card)
    for card in again:
        changed.pop(card, None)
    return changed, again


async def compute(conn: Conn, card_ids: Sequence[int], shaft: Sequence[int], until: datetime | None = None
                  ) -> list[Presence]:
    """Cards' presence from card_reads as of `until` (None: every read), with `shaft` the mine's
    shaft stations; cards never read are left out."""
    return [Presence(*r) for r in await conn.fetch(COMPUTE, list(card_ids), list(shaft), until)]


async def _store(conn: Conn, mine_id: int, rows: Sequence[Presence]) -> None:
    if rows:
        await conn.execute(_UPSERT, [p.card_id for p in rows], [mine_id] * len(rows), [p.ts for p in rows],
                           [p.station_id for p in rows], [p.run for p in rows], [p.run_mark for p in rows],
                           [p.stay for p in rows], [p.stay_mark for p in rows])


async def rebuild(conn: Conn, mine_id: int) -> int:
    """Every card of the mine from card_reads, in the caller's transaction; returns the rows."""
    cards = [r["id"] for r in await conn.fetch("SELECT id FROM cards WHERE mine_id = $1 ORDER BY id", mine_id)]
    stations = await stations_of(conn, mine_id)
    rows = await compute(conn, cards, [s for s, st in stations.items() if st.shaft])
    await conn.execute("DELETE FROM card_presence WHERE mine_id = $1 OR card_id = ANY($2::int[])", mine_id, cards)
    await _store(conn, mine_id, rows)
    await conn.execute(
        "INSERT INTO presence_built (mine_id, layout, built_at) SELECT $1, (" + LAYOUT + "), now() "
        "ON CONFLICT (mine_id) DO UPDATE SET layout = EXCLUDED.layout, built_at = EXCLUDED.built_at", mine_id)
    return len(rows)


async def update(conn: Conn, mine_id: int, spans: Sequence[tuple[int, int]]) -> int:
    """Bring the mine's presence rows up to the card reads in `spans` ([lo, hi] ns: its claimed
    card-read windows), in the caller's transaction, which holds the mine's evaluation lock.
    Returns the rows written."""
    merged = [(from_ns(lo), from_ns(hi)) for lo, hi in plan_spans(spans, slack_ns=0, piece_ns=_REBUILD_NS)]
    if not merged:
        return 0
    if not await conn.fetchval(BUILT_IS_CURRENT, mine_id) \
            or sum((hi - lo for lo, hi in merged), timedelta()) > REBUILD_SPAN:
        return await rebuild(conn, mine_id)
    reads = await conn.fetch(
        "SELECT r.card_id, r.ts, r.station_id FROM unnest($2::timestamptz[], $3::timestamptz[]) AS s(lo, hi) "
        "JOIN card_reads r ON r.mine_id = $1 AND r.ts >= s.lo AND r.ts <= s.hi "
        "JOIN cards c ON c.id = r.card_id AND c.mine_id = $1 ORDER BY r.card_id, r.ts",
        mine_id, [lo for lo, _ in merged], [hi for _, hi in merged])
    if not reads:
        return 0
    touched = sorted({r["card_id"] for r in reads})
    rows = await kept_rows(conn, touched)
    stations = await stations_of(conn, mine_id, [r["station_id"] for r in reads]
                                 + [p.station_id for p in rows.values()])
    changed, again = advance(rows, (tuple(r) for r in reads), stations)
    if again:
        shaft = [s for s, st in stations.items() if st.shaft]
        for p in await compute(conn, sorted(again), shaft):
            changed[p.card_id] = p
    await _store(conn, mine_id, list(changed.values()))
    return len(changed)


async def kept_rows(conn: Conn, cards: Sequence[int]) -> dict[int, Presence]:
    """The stored rows of `cards`, by card."""
    return {r["card_id"]: Presence(*r) for r in await conn.fetch("SELECT card_id, ts, station_id, run, run_mark, stay, stay_mark "
                                      "FROM card_presence WHERE card_id = ANY($1::int[])", list(cards))}


__all__ = ["BUILT_IS_CURRENT", "COMPUTE", "LAYOUT", "REBUILD_SPAN", "Presence", "StationLayout", "advance", "compute",
           "kept_rows", "rebuild", "stations_of", "update"]
