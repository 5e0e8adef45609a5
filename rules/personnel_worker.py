"""The personnel rules (rules.md §7 and the §4 evacuation check) against PostgreSQL: load, judge, write findings.

The kernels live in `rules.personnel`; `rules.personnel_rows` turns their output into
`findings` rows. This module reads a mine's registry (areas, stations, cards, faces, limits),
its card reads, power-off triggers and shutdown orders, and writes the rows by
`rules.store.upsert_finding` inside the caller's transaction (which holds the mine's lock).

One code path serves the streaming worker, the back-fill and the clock:
`reevaluate_personnel(conn, mine, spans, now_ns=...)` re-judges the span [lo, hi] that the
dirty windows cover.

- **What a late read can change.** A read at t decides a card's presence from t to the
  card's next read, and the entry time of its stay. So the range judged is widened to
  ``hi2`` = each touched card's next read after ``hi`` (and, for power-off triggers of a
  readings window, + the evacuation delay); for the card rules (`overtime`, `restricted_area`,
  `seal_breach`) a touched card's range is widened to the stays that now cross [lo, hi2], so
  a finding whose start moved (a late underground read moved the entry back) supersedes the
  one it replaces.
- **Reads loaded.** Each card's reads from its last shaft read before ``A`` (so every stay
  crossing ``A`` is whole, with its entry), up to ``B``. Head counts are exact from ``A``; a
  count-rule finding (`over_capacity`, `no_leader`, `work_continued`) touching the range
  that starts at or before ``A`` (or a stored one) moves ``A`` back, and one still open at
  ``B`` while later data may exist moves ``B`` on, until every finding touching the range
  is computed whole.
- **Diff.** The findings touching the range are compared by identity (rule, subject, start)
  with the stored live ones: a finding that changed is updated, one no longer found is
  superseded by the one now covering its time (withdrawn when none). Re-judging the same
  data at the same clock writes nothing.

The present (``now_ns``) is injected; `clock_pass` re-judges each mine's last minutes at the
clock, so `overtime` of a silent card and `work_continued` at t + 30 min fire with no data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from minewatch.timeutil import from_ns, to_ns
from rules import store
from rules.evaluate import FindingRow, plan_spans
from rules.load import Conn, binary_rows, copy_binary, pg_ts_ns, readings_of
from rules.packs import PersonnelSettings, RulePack
from rules.personnel import PersonnelParams
from rules.personnel.leader import WORKER
from rules.personnel_rows import (
    CARD_RULES,
    COUNT_RULES,
    FOREVER,
    PERSONNEL_RULES,
    ROLE_CODES,
    WORK_CONTINUED,
    Judged,
    Orders,
    PersonnelLayout,
    Signals,
    Triggers,
    evaluate,
    params_of,
    production_spans,
    span_of,
    touches,
)

if TYPE_CHECKING:
    from rules.backfill import Tally

COUNTER_TYPE = "3001"  # a coal-output counter; the other production signal is on-off (1004)
MIN = 60 * 1_000_000_000
HOUR = 60 * MIN
SIGNAL_LOOKBACK_NS = 64 * 24 * HOUR
# The clock pass re-judges each mine's last minutes (a finding that became due while the
# worker was down is open, so it touches them too).
CLOCK_TAIL_NS = 10 * MIN
_EPOCH = 0


async def load_layout(conn: Conn, mine_id: int, settings: PersonnelSettings | None = None) -> PersonnelLayout:
    """A mine's areas (with their stations, limits, flags and faces), cards and roles; the mine's
    limit is its approved count capped by the pack's national bound (the bound when none)."""
    mine = await conn.fetchrow("SELECT code, timezone, approved_underground, shift_hours, disaster_severe FROM mines "
                               "WHERE id = $1", mine_id)
    if mine is None:
        raise KeyError(mine_id)
    areas = await conn.fetch(
        "SELECT a.id, a.code, a.approved, a.restricted, a.shaft, f.code AS face FROM areas a "
        "LEFT JOIN faces f ON f.id = a.face_id WHERE a.mine_id = $1 ORDER BY a.code", mine_id)
    links = await conn.fetch(
        "SELECT s.station_id, a.code FROM area_stations s JOIN areas a ON a.id = s.area_id WHERE a.mine_id = $1 "
        "ORDER BY s.station_id, a.code", mine_id)
    stations = await conn.fetch("SELECT id FROM stations WHERE mine_id = $1", mine_id)
    cards = await conn.fetch("SELECT id, code, role FROM cards WHERE mine_id = $1 ORDER BY id", mine_id)
    signals = await conn.fetch("SELECT id, code, sensor_type FROM points WHERE mine_id = $1 AND production_signal "
                               "ORDER BY id", mine_id)
    codes = tuple(a["code"] for a in areas)
    unassigned = len(codes)  # stations of no area: underground, no limit, no flags
    station_area = {int(s["id"]): unassigned for s in stations}
    for r in reversed(links):  # a station in two areas: the first by code
        station_area[int(r["station_id"])] = codes.index(r["code"])
    faces = tuple(sorted({a["face"] for a in areas if a["face"] is not None}))
    return PersonnelLayout(
        mine_id=mine_id,
        mine_code=mine["code"],
        timezone=mine["timezone"],
        shift_ns=round(float(mine["shift_hours"]) * HOUR),
        mine_limit=mine_limit(mine["approved_underground"], bool(mine["disaster_severe"]), settings or PersonnelSettings()),
        area_codes=(*codes, ""),
        area_limit=np.array([-1 if a["approved"] is None else a["approved"] for a in areas] + [-1], np.int64),
        area_restricted=np.array([a["restricted"] for a in areas] + [False], np.bool_),
        area_shaft=np.array([a["shaft"] for a in areas] + [False], np.bool_),
        area_face=np.array([-1 if a["face"] is None else faces.index(a["face"]) for a in areas] + [-1], np.int64),
        face_codes=faces,
        station_area=station_area,
        card_ids=np.array([c["id"] for c in cards], np.int64),
        card_codes=tuple(c["code"] for c in cards),
        card_role=np.array([ROLE_CODES.get(c["role"], WORKER) for c in cards], np.int64),
        signal_ids=np.array([p["id"] for p in signals], np.int64),
        signal_codes=tuple(p["code"] for p in signals),
        signal_counter=np.array([p["sensor_type"] == COUNTER_TYPE for p in signals], np.bool_),
    )


def mine_limit(approved: int | None, severe: bool, settings: PersonnelSettings) -> int:
    """The mine's underground limit (rules.md §7): the approved head count, capped by the
    national upper bound for its kind (850 disaster-severe, 450 otherwise, from the pack)."""
    bound = settings.national_limit_severe if severe else settings.national_limit
    return bound if approved is None else min(int(approved), bound)


async def load_reads(conn: Conn, layout: PersonnelLayout, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(card index, ts, area index) sorted by (card, ts): each card's reads up to ``b``, from its
    last shaft read before ``a`` when it was underground at ``a`` (from ``a`` otherwise), less
    the reads that repeat the card's previous station."""
    ids = layout.card_ids.tolist()
    if not ids:
        z = np.zeros(0, np.int64)
        return z, z, z
    shaft = layout.shaft_station_ids
    rows = await conn.fetch(
        "SELECT c AS card, CASE WHEN l.station_id IS NULL OR l.station_id = ANY($3::int[]) THEN $2 "
        "ELSE coalesce((SELECT r.ts FROM card_reads r WHERE r.card_id = c AND r.ts < $2 "
        "AND r.station_id = ANY($3::int[]) ORDER BY r.ts DESC LIMIT 1), $4) END AS since "
        "FROM unnest($1::int[]) AS c LEFT JOIN LATERAL (SELECT station_id FROM card_reads r WHERE r.card_id = c "
        "AND r.ts < $2 ORDER BY r.ts DESC LIMIT 1) l ON true",
        ids, from_ns(a), shaft, from_ns(_EPOCH))
    # A read at the station of the card's previous read changes nothing (presence model: a read
    # in the same area changes nothing; (card, ts) is the key, so there are no same-time
    # reads): only each card's first read and the reads where its station changes are sent.
    raw = await copy_binary(
        conn, "SELECT card_id, ts, station_id FROM (SELECT r.card_id, r.ts, r.station_id, "
        "lag(r.station_id) OVER (PARTITION BY r.card_id ORDER BY r.ts) AS prev "
        "FROM unnest($1::int[], $2::timestamptz[]) AS f(card, since) "
        "JOIN card_reads r ON r.card_id = f.card AND r.ts >= f.since AND r.ts <= $3) x "
        "WHERE prev IS DISTINCT FROM station_id ORDER BY card_id, ts",
        [r["card"] for r in rows], [r["since"] for r in rows], from_ns(b))
    card_id, ts, station_id = _parse_card_reads(raw)
    unassigned = len(layout.area_codes) - 1
    st_ids = np.array(sorted(layout.station_area), np.int64)
    st_area = np.array([layout.station_area[int(x)] for x in st_ids], np.int64)
    j = np.searchsorted(st_ids, station_id)
    jj = np.minimum(j, max(len(st_ids) - 1, 0))
    known = (j < len(st_ids)) & (st_ids[jj] == station_id) if len(st_ids) else np.zeros(len(ts), np.bool_)
    area = np.where(known, st_area[jj] if len(st_ids) else 0, unassigned).astype(np.int64)
    return layout.card_index(card_id), ts, area


_CARD_ROW = np.dtype([("nfields", ">i2"), ("len_card", ">i4"), ("card", ">i4"), ("len_ts", ">i4"), ("ts", ">i8"),
                      ("len_station", ">i4"), ("station", ">i4")])


def _parse_card_reads(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(card_id, ts ns, station_id) from the binary COPY of (card_id, ts, station_id)."""
    rows = binary_rows(raw, _CARD_ROW, "card reads")
    ts = pg_ts_ns(rows["ts"])
    return rows["card"].astype(np.int64), ts, rows["station"].astype(np.int64)


async def load_triggers(conn: Conn, layout: PersonnelLayout, a: int, b: int, exclude_mask: int) -> Triggers:
    """Power-off triggers in [a, b] of the methane points of the faces that have areas: the
    first considered reading at or above power-off of each power-off episode (rules.md §4)."""
    if not layout.face_codes:
        return Triggers.empty()
    rows = await conn.fetch(
        "SELECT p.code, f.code AS face, t.ts FROM episodes e JOIN points p ON p.id = e.point_id "
        "JOIN faces f ON f.id = p.face_id "
        "CROSS JOIN LATERAL (SELECT r.ts FROM readings r WHERE r.point_id = e.point_id AND r.ts >= e.start_ts "
        "AND (e.end_ts IS NULL OR r.ts <= e.end_ts) AND r.status & $5 = 0 AND r.value <> 'NaN' "
        "AND r.value >= (e.thresholds->>'poweroff_hi')::float8 ORDER BY r.ts LIMIT 1) t "
        "WHERE p.mine_id = $1 AND p.value_type = 'MN' AND p.gas = 'methane' AND f.code = ANY($2::text[]) "
        "AND e.level = 'power_off' AND e.thresholds->>'poweroff_hi' IS NOT NULL "
        "AND e.start_ts <= $4 AND (e.end_ts IS NULL OR e.end_ts >= $3) ORDER BY t.ts, p.code",
        layout.mine_id, list(layout.face_codes), from_ns(a), from_ns(b), exclude_mask)
    rows = [r for r in rows if a <= to_ns(r["ts"]) <= b]
    return Triggers(np.array([to_ns(r["ts"]) for r in rows], np.int64),
                    np.array([layout.face_codes.index(r["face"]) for r in rows], np.int64),
                    tuple(r["code"] for r in rows))


async def load_signals(conn: Conn, layout: PersonnelLayout, orders: Orders, a: int, b: int,
                       exclude_mask: int) -> Signals:
    """The production-signal points' readings up to ``b``, from far enough back that every
    producing span an order could cover is read from its start (rules.md §7).

    Nothing is read when no order started by ``b``. Otherwise the read starts an hour before
    ``a`` and doubles back while some span begins at the first readings loaded (it may have
    begun earlier) and an order started before the first instant loaded: such a span could
    have switched on under that order (one lifted since included: its breach is still open).
    A span still cut off after that began before every order, and is not judged. The lookback
    stops at `SIGNAL_LOOKBACK_NS` (a point producing without a pause for longer is judged
    from there).
    """
    if len(layout.signal_ids) == 0 or len(orders.ids) == 0:
        return Signals.empty()
    if not np.any(orders.start <= b):
        return Signals.empty()
    look = HOUR
    while True:
        since = a - look
        point, ts, value, status = await readings_of(conn, layout.signal_ids, since, b + 1_000)  # ts <= b (µs)
        considered = ((status.astype(np.int64) & exclude_mask) == 0) & ~np.isnan(value)
        signals = Signals(point[considered], ts[considered], value[considered])
        spans = production_spans(layout, signals, orders)
        if not (np.any(spans.truncated) and np.any(orders.start < since)) or look >= SIGNAL_LOOKBACK_NS:
            return signals
        look *= 2


async def load_orders(conn: Conn, mine_id: int) -> Orders:
    """The mine's shutdown orders (not withdrawn) as [start, lifted) spans."""
    rows = await conn.fetch(
        "SELECT id, rule, start_ts, lifted_at, state FROM orders WHERE mine_id = $1 AND withdrawn_at IS NULL "
        "ORDER BY start_ts, id", mine_id)
    return Orders(np.array([r["id"] for r in rows], np.int64), tuple(r["rule"] for r in rows),
                  np.array([to_ns(r["start_ts"]) for r in rows], np.int64),
                  np.array([to_ns(r["lifted_at"]) if r["state"] == "lifted" and r["lifted_at"] is not None else -1
                            for r in rows], np.int64))


async def _next_reads(conn: Conn, mine_id: int, lo: int, hi: int) -> tuple[list[int], int]:
    """The cards read in [lo, hi] and how far their reads decide presence: the latest of their
    next reads after hi, or `FOREVER` when one of them has none (before its read in [lo, hi]
    arrived, its presence ran on to the present: a late shaft read can end a stay that kept a
    later no_leader or over_capacity open)."""
    row = await conn.fetchrow(
        "WITH touched AS (SELECT DISTINCT card_id FROM card_reads WHERE mine_id = $1 AND ts >= $2 AND ts <= $3) "
        "SELECT array_agg(t.card_id) AS cards, max(n.ts) AS nxt, bool_or(n.ts IS NULL) AS last "
        "FROM touched t LEFT JOIN LATERAL "
        "(SELECT ts FROM card_reads r WHERE r.card_id = t.card_id AND r.ts > $3 ORDER BY r.ts LIMIT 1) n ON true",
        mine_id, from_ns(lo), from_ns(hi))
    cards = [] if row is None or row["cards"] is None else list(row["cards"])
    if cards and row is not None and row["last"]:
        return cards, FOREVER
    nxt = hi if row is None or row["nxt"] is None else max(hi, to_ns(row["nxt"]))
    return cards, nxt


def _successor(old: FindingRow, placed: Sequence[tuple[FindingRow, int]]) -> int | None:
    """A vanished finding goes to the same rule's finding of the same subject now covering its time."""
    a, b = span_of(old)
    best: tuple[int, int] | None = None
    for f, fid in placed:
        s, e = span_of(f)
        if f.rule == old.rule and f.subject == old.subject and s <= b and e >= a and (best is None or s < best[0]):
            best = (s, fid)
    return None if best is None else best[1]


async def reevaluate_personnel(conn: Conn, mine_id: int, spans: Sequence[tuple[int, int]], *, now_ns: int,
                               tally: Tally, settings: PersonnelSettings | None = None, exclude_mask: int = 0,
                               triggers_after: bool = True) -> bool:
    """Re-judge the personnel rules over the union of spans [lo, hi] (ns) of one mine in the
    caller's transaction; ``triggers_after`` widens the range by the evacuation delay (a
    readings window may hold a power-off trigger). True when a finding changed."""
    if not spans:
        return False
    layout = await load_layout(conn, mine_id, settings)
    if len(layout.card_ids) == 0 and len(layout.signal_ids) == 0:
        return False
    params = params_of(settings or PersonnelSettings())
    lo = min(a for a, _ in spans)
    hi = min(max(b for _, b in spans), now_ns)
    if lo > now_ns:
        return False
    touched, hi2 = await _next_reads(conn, mine_id, lo, hi)
    if triggers_after:
        hi2 = max(hi2, hi + params.evacuate_ns)
    hi2 = min(hi2, now_ns)
    # Stays are read whole whatever ``a`` is; ``a`` only bounds the head counts, and moves back
    # while a count-rule finding reaches it.
    reach_ns = max(params.evacuate_ns, params.over_capacity_min_ns, params.leader_min_span_ns + 2 * params.leader_travel_ns)
    a, b = lo - reach_ns, hi2 + reach_ns
    stored = await store.findings_touching(conn, mine_id, list(PERSONNEL_RULES), lo, hi2)
    orders = await load_orders(conn, mine_id)
    # Stored count-rule findings touching the range are judged whole: read back to them at once.
    a = min([a, *(x.row.start - (params.evacuate_ns if x.row.rule == WORK_CONTINUED else 0) - reach_ns
                  for x in stored if x.row.rule in COUNT_RULES)])
    while True:
        at = min(now_ns, b)
        card, ts, area = await load_reads(conn, layout, a, at)
        tally.readings += len(ts)
        triggers = await load_triggers(conn, layout, a, at, exclude_mask)
        signals = await load_signals(conn, layout, orders, lo, at, exclude_mask)
        judged = evaluate(layout, card, ts, area, triggers=triggers, orders=orders, now_ns=at, params=params,
                          shifts_from=a, signals=signals)
        desired, reach = _owned(layout, judged, touched, lo, hi2, at)
        counted = [f for f in desired if f.rule in COUNT_RULES] + [s.row for s in stored if s.row.rule in COUNT_RULES]
        earliest = min((f.start - (params.evacuate_ns if f.rule == WORK_CONTINUED else 0) for f in counted),
                       default=FOREVER)
        if earliest <= a:
            a = earliest - reach_ns
            continue
        if at < now_ns and any(f.end is None or f.end >= at for f in desired):
            b += 2 * (b - a)
            continue
        break
    compared = {x.id: x for x in stored}
    if reach:
        w_lo = min(x for x, _ in reach.values())
        w_hi = min(max(y for _, y in reach.values()), FOREVER - 1)
        for x in await store.findings_touching(conn, mine_id, list(CARD_RULES), w_lo, w_hi):
            if x.row.subject in reach and touches(x.row, *reach[x.row.subject]):
                compared[x.id] = x
    for x in await store.findings_by_key(conn, mine_id, [f.key for f in desired]):
        compared.setdefault(x.id, x)
    return await store.apply_findings(conn, mine_id, desired, list(compared.values()), _successor, tally)


def _card_reach(layout: PersonnelLayout, judged: Judged, touched: Sequence[int], lo: int, hi: int, at: int
                ) -> dict[str, tuple[int, int]]:
    """Per touched card: from the first of its stays that cross [lo, hi] (or lo) to ``at``, the
    end of the reads judged. A late read may end a stay that ran on (an old finding far after
    hi goes) or move an entry back; every finding of the card in that range is computed whole."""
    out: dict[str, tuple[int, int]] = {}
    stays = judged.stays
    if stays is None or not touched:
        return out
    idx = layout.card_index(np.array(sorted(touched), np.int64))
    for i, c in zip(idx.tolist(), sorted(touched), strict=True):
        if i < len(layout.card_ids) and int(layout.card_ids[i]) == c:
            out[layout.card_codes[i]] = (lo, at)
    end = np.where(stays.is_open, FOREVER, stays.end)
    hit = (stays.start <= hi) & (end >= lo)
    for k in np.flatnonzero(hit).tolist():
        code = layout.card_codes[int(stays.card[k])]
        if code in out:
            out[code] = (min(out[code][0], int(stays.start[k])), at)
    return out


def _owned(layout: PersonnelLayout, judged: Judged, touched: Sequence[int], lo: int, hi: int, at: int
           ) -> tuple[list[FindingRow], dict[str, tuple[int, int]]]:
    """The findings this evaluation decides: every rule's touching [lo, hi], and a touched
    card's findings in its reach (`_card_reach`, returned per card code)."""
    reach = _card_reach(layout, judged, touched, lo, hi, at)
    out: list[FindingRow] = []
    for rule, rows in judged.rows.items():
        for f in rows:
            if rule in CARD_RULES and f.subject in reach:
                if touches(f, *reach[f.subject]):
                    out.append(f)
            elif touches(f, lo, hi):
                out.append(f)
    return out, reach


async def reevaluate_windows(conn: Conn, pack: RulePack, mine_id: int, windows: Sequence[store.DirtyWindow], *,
                             now_ns: int, tally: Tally, slack_ns: int, piece_ns: int) -> bool:
    """The worker's hook: re-judge the spans of a claim's card-read windows, and of its readings
    windows when they may hold a power-off trigger of a face with areas (work_continued)."""
    cards = [(w.lo, w.hi) for w in windows if w.kind == store.CARDS_KIND]
    readings = [(w.lo, w.hi) for w in windows if w.kind == store.READINGS_KIND]
    evac = pack.personnel.evacuate
    if readings and (
            await _power_off_near(conn, mine_id, min(lo for lo, _ in readings) - evac, max(hi for _, hi in readings))
            or await _signals_under_order(conn, mine_id, max(hi for _, hi in readings))):
        cards += readings
    changed = False
    for lo, hi in plan_spans(cards, slack_ns=slack_ns, piece_ns=piece_ns):
        changed = await reevaluate_personnel(conn, mine_id, [(lo, hi)], now_ns=now_ns, tally=tally,
                                             settings=pack.personnel, exclude_mask=pack.episodes.exclude_mask,
                                             triggers_after=bool(readings)) or changed
    return changed


async def _signals_under_order(conn: Conn, mine_id: int, hi: int) -> bool:
    """Whether the mine has production-signal points and an order started by ``hi`` (a
    readings window may then hold a seal breach, or end one)."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM points WHERE mine_id = $1 AND production_signal) "
        "AND EXISTS (SELECT 1 FROM orders WHERE mine_id = $1 AND withdrawn_at IS NULL AND start_ts <= $2)",
        mine_id, from_ns(hi))
    return found


async def _power_off_near(conn: Conn, mine_id: int, lo: int, hi: int) -> bool:
    """Whether a power-off episode of a methane point of a face with areas touches [lo, hi]."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM episodes e JOIN points p ON p.id = e.point_id "
        "JOIN areas a ON a.face_id = p.face_id AND a.mine_id = p.mine_id WHERE p.mine_id = $1 AND e.level = 'power_off' "
        "AND e.start_ts <= $3 AND (e.end_ts IS NULL OR e.end_ts >= $2))", mine_id, from_ns(lo), from_ns(hi))
    return found


async def clock_pass(conn: Conn, now_ns: int, *, tally: Tally, settings: PersonnelSettings | None = None,
                     exclude_mask: int = 0, mines: Sequence[int] | None = None,
                     between: store.Between | None = None) -> bool:
    """The rules that fire with no new read, at the clock's ``now_ns``: each mine's last
    minutes are re-judged in one transaction under its evaluation lock (a mine being
    evaluated is skipped: its evaluation runs at the same clock; ``between`` is awaited before
    each mine). An open stay past entry + shift + grace becomes `overtime`, cards still at a
    face 30 min after a power-off trigger `work_continued`, counts that stay over their limit
    `over_capacity`. Keeps no state of its own; a second pass at the same clock writes nothing.
    True when a finding changed."""
    ids = mines if mines is not None else [
        r["id"] for r in await conn.fetch(
            "SELECT m.id FROM mines m WHERE m.active AND EXISTS (SELECT 1 FROM cards c WHERE c.mine_id = m.id) "
            "ORDER BY m.id")]
    changed = False
    for mine_id in ids:
        if between is not None:
            await between()
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", store.MINE_LOCK_CLASS, mine_id):
                continue
            if await reevaluate_personnel(conn, mine_id, [(now_ns - CLOCK_TAIL_NS, now_ns)], now_ns=now_ns,
                                          tally=tally, settings=settings, exclude_mask=exclude_mask,
                                          triggers_after=False):
                await store.notify_findings(conn)
                changed = True
    return changed


__all__ = ["PersonnelParams", "clock_pass", "load_layout", "load_orders", "load_reads", "load_triggers",
           "reevaluate_personnel"]
