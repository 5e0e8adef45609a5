"""The integrity rules (rules.md §6 and the §4 power-off check) against PostgreSQL: load, judge, write findings.

The pure kernels live in `rules.integrity`; `rules.integrity_rows` turns their spans into
`findings` rows (the contract's rule ids, the subjects and levels of rules.md's "at a glance"
table, evidence: points, window, values, expected vs seen). This module reads a mine's arrays
and writes those rows by `rules.store.upsert_finding` inside the caller's transaction.

One code path serves the streaming worker and the back-fill:
`reevaluate_integrity(conn, mine, spans, now_ns=...)` re-judges spans [lo, hi] of a mine.
For each span it reads the readings from far enough back and far enough on that every span
of every rule touching [lo, hi] is computed whole (a stuck run is read back to the last
different value, a silence from the last reading before, a station's states from its last
good report; open spans read on while data follow; calibration over whole local shifts, for
the points the window can change), and diffs the findings touching [lo, hi] (widened per
subject by the spans found) with the stored live ones of the same rules by identity (rule,
subject, start): a finding that changed is updated, one no longer found is superseded by the
one now covering its time (withdrawn when none). Re-judging the same data at the same clock
writes nothing.

The present (``now_ns``) is injected: it opens the spans that silence keeps open (a point
offline since its last reading, a feed that never answered) and judges the days whose
upload grace is over (`under_reporting`). The clock-driven pass (`clock_pass`) judges those
rules from stored times alone (no readings read), so they fire while no data arrive at all;
it keeps no state of its own (restart-safe) and writes nothing when nothing changed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np

from minewatch.timeutil import from_ns, to_ns
from rules import store
from rules.episodes import STATION_FAULT as STATION_FAULT_BIT
from rules.evaluate import FindingRow, iso
from rules.inputs import I64, Readings
from rules.integrity.calibration import calibration_in_episodes
from rules.integrity.common import HOUR
from rules.integrity.relation import power_off_response
from rules.integrity.shifts import DAY_START_HOURS, local_boundaries
from rules.integrity.silence import SilenceParams, flagged_station_states, station_fault_spans
from rules.integrity.under_reporting import under_reported
from rules.integrity_rows import (
    CALIBRATION_ABUSE,
    DEFAULT_PARAMS,
    FOREVER,
    IMPLAUSIBLE_PAIR,
    OFFLINE,
    POWER_OFF_FAILURE,
    STATION_FAULT,
    STATION_LOOKBACK_NS,
    STUCK,
    UNDER_REPORTING,
    US,
    WITNESS_LOOKBACK_NS,
    Desired,
    IntegrityParams,
    MineLayout,
    calibration_rows,
    days_of,
    end_or_none,
    finding,
    merge_same_key,
    offline_rows,
    overlapping,
    pair_rows,
    seconds,
    span_of,
    stuck_rows,
    touches,
)
from rules.load import Conn, binary_rows, copy_binary, load_readings, pg_ts_ns

if TYPE_CHECKING:
    from rules.backfill import Tally


# A binary COPY row of (station_id int4, ts timestamptz, state int2).
_STATE_ROW = np.dtype([("nfields", ">i2"), ("len_station", ">i4"), ("station", ">i4"), ("len_ts", ">i4"),
                       ("ts", ">i8"), ("len_state", ">i4"), ("state", ">i2")])

async def load_layout(conn: Conn, mine_id: int) -> MineLayout:
    """A mine's points, stations, power-off relations and configured pairs."""
    mine = await conn.fetchrow("SELECT code, timezone FROM mines WHERE id = $1", mine_id)
    if mine is None:
        raise KeyError(mine_id)
    pts = await conn.fetch(
        "SELECT id, code, active, value_type, gas, station_id, face_id, expected_period_s FROM points "
        "WHERE mine_id = $1 ORDER BY id",
        mine_id,
    )
    sts = await conn.fetch("SELECT id, code FROM stations WHERE mine_id = $1 ORDER BY id", mine_id)
    ids = np.array([r["id"] for r in pts], np.int64)
    station_ids = np.array([r["id"] for r in sts], np.int64)
    faces = sorted({r["face_id"] for r in pts if r["face_id"] is not None})
    station_of = {int(s): k for k, s in enumerate(station_ids.tolist())}
    period = np.array([round(r["expected_period_s"] * 1e9) for r in pts], np.int64)
    station = np.array([station_of.get(r["station_id"], -1) for r in pts], np.int64)
    # A station's expected period: the shortest of its points' (the default when it has none).
    st_period = np.full(len(station_ids), SilenceParams().period_ns, np.int64)
    for k in range(len(station_ids)):
        mine_pts = period[station == k]
        if len(mine_pts):
            st_period[k] = int(mine_pts.min())
    index = {int(r["id"]): k for k, r in enumerate(pts)}
    rel = await conn.fetch(
        "SELECT r.point_id, r.target_point_id FROM point_relations r JOIN points p ON p.id = r.point_id "
        "WHERE p.mine_id = $1 AND r.kind = 'D' ORDER BY r.point_id, r.target_point_id",
        mine_id,
    )
    rel = [r for r in rel if r["point_id"] in index and r["target_point_id"] in index]
    pairs = await conn.fetch(
        "SELECT upstream_point_id, downstream_point_id FROM point_pairs WHERE mine_id = $1 "
        "ORDER BY downstream_point_id, upstream_point_id",
        mine_id,
    )
    pairs = [r for r in pairs if r["upstream_point_id"] in index and r["downstream_point_id"] in index]
    return MineLayout(
        mine_id=mine_id,
        mine_code=mine["code"],
        timezone=mine["timezone"],
        ids=ids,
        codes=tuple(r["code"] for r in pts),
        active=np.array([r["active"] for r in pts], np.bool_),
        analog=np.array([r["value_type"] == "MN" for r in pts], np.bool_),
        methane=np.array([r["value_type"] == "MN" and r["gas"] == "methane" for r in pts], np.bool_),
        station=station,
        face=np.array([faces.index(r["face_id"]) if r["face_id"] is not None else -1 for r in pts], np.int64),
        period_ns=period,
        station_ids=station_ids,
        station_codes=tuple(r["code"] for r in sts),
        station_period_ns=st_period,
        relation_point=np.array([index[r["point_id"]] for r in rel], np.int64),
        relation_feed=np.array([index[r["target_point_id"]] for r in rel], np.int64),
        pair_up=np.array([index[r["upstream_point_id"]] for r in pairs], np.int64),
        pair_down=np.array([index[r["downstream_point_id"]] for r in pairs], np.int64),
    )


# --- database reads of the bounds ------------------------------------------------------------


async def _last_before(conn: Conn, ids: Sequence[int], t: int) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT p, (SELECT r.ts FROM readings r WHERE r.point_id = p AND r.ts < $2 ORDER BY r.ts DESC LIMIT 1) AS ts "
        "FROM unnest($1::int[]) AS p",
        list(ids),
        from_ns(t),
    )
    return {r["p"]: to_ns(r["ts"]) for r in rows if r["ts"] is not None}


async def _stuck_bounds(conn: Conn, ids: Sequence[int], lo: int, hi: int, mask: int, newest: dict[int, int]) -> tuple[int, int]:
    """(earliest start, latest end) over the points of the equal-value runs that hold at lo and
    at hi: back to the last considered reading with another value before the run at lo, on to
    the first considered reading with another value after the run at hi (or the point's newest
    reading: the run lasts to the end of its data)."""
    if not ids:
        return lo, hi
    rows = await conn.fetch(
        "SELECT p, "
        "(SELECT r.ts FROM readings r WHERE r.point_id = p AND r.ts < a.ts AND r.status & $4 = 0 "
        " AND r.value <> 'NaN' AND r.value <> a.value ORDER BY r.ts DESC LIMIT 1) AS back, a.ts AS a_ts, "
        "(SELECT r.ts FROM readings r WHERE r.point_id = p AND r.ts > b.ts AND r.status & $4 = 0 "
        " AND r.value <> 'NaN' AND r.value <> b.value ORDER BY r.ts LIMIT 1) AS fwd, b.ts AS b_ts "
        "FROM unnest($1::int[]) AS p "
        "LEFT JOIN LATERAL (SELECT ts, value FROM readings r WHERE r.point_id = p AND r.ts < $2 AND r.status & $4 = 0 "
        " AND r.value <> 'NaN' ORDER BY r.ts DESC LIMIT 1) a ON true "
        "LEFT JOIN LATERAL (SELECT ts, value FROM readings r WHERE r.point_id = p AND r.ts <= $3 AND r.status & $4 = 0 "
        " AND r.value <> 'NaN' ORDER BY r.ts DESC LIMIT 1) b ON true",
        list(ids),
        from_ns(lo),
        from_ns(hi),
        mask,
    )
    a, b = lo, hi
    for r in rows:
        if r["a_ts"] is not None:
            a = min(a, to_ns(r["back"]) if r["back"] is not None else -FOREVER)
        if r["b_ts"] is not None:
            b = max(b, to_ns(r["fwd"]) if r["fwd"] is not None else newest.get(r["p"], hi))
    return a, b


async def _first_reading(conn: Conn, ids: Sequence[int]) -> int:
    """The oldest reading of any of the points (0 when none)."""
    first = await conn.fetchval(
        "SELECT min(f.ts) FROM unnest($1::int[]) AS p, LATERAL (SELECT ts FROM readings WHERE point_id = p "
        "ORDER BY ts LIMIT 1) f",
        list(ids),
    )
    return 0 if first is None else to_ns(first)


async def _stored(conn: Conn, mine_id: int, rules: Sequence[str], lo: int, hi: int) -> list[store.StoredFinding]:
    """Live findings of these rules of a mine whose span touches [lo, hi]."""
    return await store.findings_touching(conn, mine_id, list(rules), lo, hi)


# --- the evaluation --------------------------------------------------------------------------


async def reevaluate_integrity(
    conn: Conn,
    mine_id: int,
    spans: Sequence[tuple[int, int]],
    *,
    now_ns: int,
    tally: Tally,
    params: IntegrityParams = DEFAULT_PARAMS,
    days: Sequence[int] = (),
) -> bool:
    """Re-judge the integrity rules over spans [lo, hi] (ns) of one mine in the caller's
    transaction (which holds the mine's lock); ``days`` adds local days (their start, ns) to
    judge for under-reporting. True when a finding changed."""
    layout = await load_layout(conn, mine_id)
    changed = False
    day_starts = set(days)
    for lo, hi in spans:
        desired = await _evaluate_span(conn, layout, lo, hi, now_ns, params)
        changed = await _write(conn, layout, desired, tally) or changed
        day_starts.update(days_of(layout, lo, hi))
    if day_starts:
        desired = await _under_reporting(conn, layout, sorted(day_starts), now_ns, params)
        changed = await _write(conn, layout, desired, tally) or changed
    return changed


async def _write(conn: Conn, layout: MineLayout, desired: Desired, tally: Tally) -> bool:
    changed = False
    for rule, rows in desired.rows.items():
        lo, hi = desired.own[rule]
        merged = merge_same_key(rows)
        # Per subject, the owned range widens to the spans found touching it: a finding that
        # moved its start (a run read further back) supersedes the one it replaces.
        reach: dict[str, tuple[int, int]] = {}
        for f in merged:
            a, b = span_of(f)
            ra, rb = reach.get(f.subject, (lo, hi))
            reach[f.subject] = (min(ra, a), max(rb, b))
        wide_lo = min([lo, *(a for a, _ in reach.values())])
        wide_hi = max([hi, *(b for _, b in reach.values())])
        stored = [
            s
            for s in await _stored(conn, layout.mine_id, [rule], wide_lo, min(wide_hi, FOREVER - 1))
            if touches(s.row, *reach.get(s.row.subject, (lo, hi)))
            and (rule not in desired.limits or s.row.subject in desired.limits[rule])
        ]
        by_key = {f.key for f in merged}
        stored += [
            s for s in await store.findings_by_key(conn, layout.mine_id, by_key) if s.row.key not in {x.row.key for x in stored}
        ]
        changed = await store.apply_findings(conn, layout.mine_id, merged, stored, overlapping, tally) or changed
    return changed


async def _evaluate_span(conn: Conn, layout: MineLayout, lo: int, hi: int, now_ns: int, params: IntegrityParams) -> Desired:
    ids = layout.ids.tolist()
    desired = Desired()
    if not ids:
        return desired
    newest = await store.last_reading(conn, ids)
    if not newest:  # no reading of the mine at all: its stations may still report
        await _station_fault(conn, layout, Readings.empty(), now_ns, params, lo, hi, lo - STATION_LOOKBACK_NS, desired)
        return desired
    first = await _first_reading(conn, ids)
    cal = params.calibration
    shifts = local_boundaries(lo - cal.max_interval_ns, hi, layout.timezone, cal.shift_start_hours)
    s_lo = int(shifts[np.searchsorted(shifts, lo - cal.max_interval_ns, side="right") - 1])
    s_hi = int(shifts[np.searchsorted(shifts, hi, side="right")])
    methane_ids = layout.ids[layout.methane].tolist()
    st_a, st_b = await _stuck_bounds(conn, methane_ids, lo, hi, params.stuck.exclude_mask, newest)
    max_period = int(layout.period_ns.max())
    pair_reach = params.pairs.max_age_periods * max_period
    running = await _stored(conn, layout.mine_id, [IMPLAUSIBLE_PAIR, STATION_FAULT], lo, lo)
    # Every point from just before the window (a calibrating reading vouches for 5 min before
    # it); all analog points from before a stuck run only when a run touching the window can
    # reach the minimum duration (the witnesses of its whole run); the pairs' points from 30 min
    # + 2 periods back (or a stored pair span running at lo); the points of a station with
    # bit-16 readings near the window (or a stored fault running at lo) from an hour back.
    a = max(first, lo - 2 * cal.max_interval_ns)
    if max(st_b, hi) - min(st_a, lo) >= params.stuck.min_duration_ns:
        a = max(first, min(a, st_a - WITNESS_LOOKBACK_NS))
    pair_a = max(
        first,
        min([lo - params.pairs.min_duration_ns - pair_reach, *(s.row.start for s in running if s.row.rule == IMPLAUSIBLE_PAIR)]),
    )
    pair_points = np.unique(np.concatenate((layout.pair_up, layout.pair_down)))
    b = max(hi + cal.max_interval_ns, hi + pair_reach, st_b) + US
    step = HOUR
    code_index = {c: k for k, c in enumerate(layout.codes)}
    while True:
        readings = await load_readings(conn, layout.points(), a, b)
        last_seen = await _last_before(conn, ids, a)
        seen = np.array([last_seen.get(i, -1) for i in ids], np.int64)
        paired = readings if pair_a >= a else await _load_some(conn, layout, pair_points, pair_a, b)
        out = Desired()
        offline_rows(layout, readings, seen, now_ns, params, lo, hi, out)
        stuck_rows(layout, readings, params, lo, hi, out)
        pair_rows(layout, paired, params, lo, hi + pair_reach, out)
        # An open span whose points have readings at or after b is cut by the read: read on.
        later = 0
        for rule in (OFFLINE, STUCK, IMPLAUSIBLE_PAIR):
            for f in out.rows.get(rule, []):
                if f.end is None:
                    codes = f.evidence.get("points") or [f.subject]
                    later = max([later, *(newest.get(int(layout.ids[code_index[c]]), 0) for c in codes)])
        if later >= b:
            b = min(b + step, later + US)
            step *= 2
            continue
        break
    desired.rows.update(out.rows)
    desired.own.update(out.own)
    await _calibration(conn, layout, readings, now_ns, params, lo, hi, s_lo, s_hi, desired)
    flagged = readings.point_idx[(readings.status & STATION_FAULT_BIT) != 0]
    stations = set(layout.station[flagged].tolist()) | {
        layout.station_codes.index(s.row.subject)
        for s in running
        if s.row.rule == STATION_FAULT and s.row.subject in layout.station_codes
    }
    stations.discard(-1)
    states_from = readings
    if stations:
        st_from = max(
            first,
            min([lo - STATION_LOOKBACK_NS, *(s.row.start - STATION_LOOKBACK_NS for s in running if s.row.rule == STATION_FAULT)]),
        )
        members = np.flatnonzero(np.isin(layout.station, np.array(sorted(stations), np.int64)))
        states_from = await _load_some(conn, layout, members, min(st_from, a), b)
    else:
        states_from = Readings.empty()
    await _station_fault(conn, layout, states_from, now_ns, params, lo, hi, a, desired)
    await _power_off(conn, layout, now_ns, params, lo, hi, desired)
    return desired


async def _load_some(conn: Conn, layout: MineLayout, points: I64, lo: int, hi: int) -> Readings:
    """Readings of some of the mine's points (indices, ascending) in [lo, hi), with the mine's point indices."""
    if len(points) == 0:
        return Readings.empty()
    sub = dataclasses.replace(layout, ids=layout.ids[points], codes=tuple(layout.codes[k] for k in points)).points()
    r = await load_readings(conn, sub, lo, hi)
    return Readings(points[r.point_idx], r.ts, r.value, r.status)


async def _calibration(
    conn: Conn,
    layout: MineLayout,
    near: Readings,
    now_ns: int,
    params: IntegrityParams,
    lo: int,
    hi: int,
    s_lo: int,
    s_hi: int,
    out: Desired,
) -> None:
    """Calibration per shift and during a neighbour's episode, judged over whole local shifts
    for the points whose judgement the window can change: those calibrating in it (or just
    before: a reading vouches for up to `max_interval_ns`), and the points of every face with
    an exceedance episode near it. Only their shifts' readings are read."""
    cal = params.calibration
    calibrating = (near.ts >= lo - cal.max_interval_ns) & ((near.status & cal.calibrating_bit) != 0)
    cand = set(near.point_idx[calibrating].tolist())
    eps = await conn.fetch(
        "SELECT DISTINCT point_id FROM episodes WHERE mine_id = $1 AND start_ts <= $3 AND (end_ts IS NULL OR end_ts >= $2)",
        layout.mine_id,
        from_ns(lo - cal.max_interval_ns),
        from_ns(hi + cal.max_interval_ns),
    )
    index = {int(i): k for k, i in enumerate(layout.ids.tolist())}
    faces = {int(layout.face[index[e["point_id"]]]) for e in eps if e["point_id"] in index} - {-1}
    cand |= {k for k in range(len(layout)) if int(layout.face[k]) in faces}
    out.limit(CALIBRATION_ABUSE, {layout.codes[k] for k in cand})
    out.add(CALIBRATION_ABUSE, [], s_lo + US, s_hi - US)
    if not cand:
        return
    sub = np.array(sorted(cand), np.int64)
    sub_points = dataclasses.replace(layout, ids=layout.ids[sub], codes=tuple(layout.codes[k] for k in sub)).points()
    r = await load_readings(conn, sub_points, s_lo - cal.max_interval_ns, s_hi + cal.max_interval_ns)
    r = Readings(sub[r.point_idx], r.ts, r.value, r.status)  # back to the mine's point indices
    calibration_rows(layout, r, now_ns, params, s_lo, s_hi, out)
    await _calibration_in_episodes(conn, layout, r, params, s_lo, s_hi, out)


async def _calibration_in_episodes(
    conn: Conn, layout: MineLayout, r: Readings, params: IntegrityParams, s_lo: int, s_hi: int, out: Desired
) -> None:
    eps = await conn.fetch(
        "SELECT point_id, start_ts, end_ts, peak, level FROM episodes WHERE mine_id = $1 AND start_ts < $3 "
        "AND (end_ts IS NULL OR end_ts >= $2) ORDER BY point_id, start_ts",
        layout.mine_id,
        from_ns(s_lo),
        from_ns(s_hi),
    )
    eps = [e for e in eps if int(e["point_id"]) in set(layout.ids.tolist())]
    if not eps:
        out.add(CALIBRATION_ABUSE, [], s_lo + US, s_hi - US)
        return
    ep = np.array([layout.index_of(e["point_id"]) for e in eps], np.int64)
    es = np.array([to_ns(e["start_ts"]) for e in eps], np.int64)
    ee = np.array([-1 if e["end_ts"] is None else to_ns(e["end_ts"]) for e in eps], np.int64)
    bounds = local_boundaries(s_lo, s_hi - 1, layout.timezone, params.calibration.shift_start_hours)
    rows = []
    for j in range(len(bounds) - 1):
        a, b = int(bounds[j]), int(bounds[j + 1])
        if a < s_lo or a >= s_hi:
            continue
        part = r.take((r.ts >= a) & (r.ts < b))
        ce = calibration_in_episodes(
            part.point_idx,
            part.ts,
            part.status,
            point_face=layout.face,
            episode_point=ep,
            episode_start=es,
            episode_end=ee,
            params=params.calibration,
        )
        for k in range(len(ce.point_idx)):
            i, e = int(ce.point_idx[k]), int(ce.episode[k])
            rows.append(
                finding(
                    CALIBRATION_ABUSE,
                    layout.codes[i],
                    int(ce.start[k]),
                    int(ce.end[k]),
                    {
                        "kind": "neighbour_episode",
                        "point": layout.codes[i],
                        "neighbour": layout.codes[int(ep[e])],
                        "episode_start": iso(int(es[e])),
                        "episode_end": iso(end_or_none(int(ee[e]))),
                        "episode_peak": float(eps[e]["peak"]),
                        "episode_level": eps[e]["level"],
                        "shift_start": iso(a),
                        "calibrating_from": iso(int(ce.start[k])),
                        "calibrating_until": iso(int(ce.end[k])),
                        "n_readings": int(ce.n_readings[k]),
                        "expected": "no calibration during a neighbour's exceedance",
                    },
                )
            )
    out.add(CALIBRATION_ABUSE, rows, s_lo + US, s_hi - US)


async def _station_fault(
    conn: Conn, layout: MineLayout, r: Readings, now_ns: int, params: IntegrityParams, lo: int, hi: int, a: int, out: Desired
) -> None:
    n_st = len(layout.station_ids)
    if n_st == 0:
        return
    # FZSS / `stations` states: from each station's last good report before the window's start
    # (or before the readings' start, whichever is earlier) to its first good one after the end.
    good = list(params.silence.good_states)
    bounds = await conn.fetch(
        "SELECT s, (SELECT max(ts) FROM station_states x WHERE x.station_id = s AND x.ts < $2 "
        "AND x.state = ANY($4::smallint[])) AS back, (SELECT min(ts) FROM station_states x WHERE x.station_id = s "
        "AND x.ts > $3 AND x.state = ANY($4::smallint[])) AS fwd FROM unnest($1::int[]) AS s",
        layout.station_ids.tolist(),
        from_ns(min(a, lo)),
        from_ns(hi),
        good,
    )
    back = min([to_ns(x["back"]) for x in bounds if x["back"] is not None] or [min(a, lo)])
    fwd_all = [x["fwd"] for x in bounds]
    upper = None if any(f is None for f in fwd_all) else max(to_ns(f) for f in fwd_all)
    raw = await copy_binary(
        conn,
        "SELECT station_id, ts, state FROM station_states WHERE station_id = ANY($1::int[]) AND ts >= $2 "
        "AND ($3::timestamptz IS NULL OR ts <= $3) ORDER BY station_id, ts",
        layout.station_ids.tolist(),
        from_ns(min(back, a)),
        None if upper is None else from_ns(upper),
    )
    rows = binary_rows(raw, _STATE_ROW, "station states")
    # Station ids to layout indexes (the ids are the layout's, ascending: every row is one of them).
    fz_s = np.searchsorted(layout.station_ids, rows["station"].astype(np.int64)).astype(np.int64)
    fz_t = pg_ts_ns(rows["ts"])
    fz_v = rows["state"].astype(np.int64)
    bs, bt, bv = flagged_station_states(r.point_idx, r.ts, r.status, layout.station, n_stations=n_st)
    s_all = np.concatenate((fz_s, bs))
    t_all = np.concatenate((fz_t, bt))
    v_all = np.concatenate((fz_v, bv.astype(np.int64)))
    src = np.concatenate((np.zeros(len(fz_s), np.int8), np.ones(len(bs), np.int8)))
    order = np.lexsort((t_all, s_all))
    s_all, t_all, v_all, src = s_all[order], t_all[order], v_all[order], src[order]
    sp = station_fault_spans(
        s_all, t_all, v_all, n_stations=n_st, now_ns=now_ns, period_ns=layout.station_period_ns, params=params.silence
    )
    found = []
    for k in range(len(sp.subject)):
        st = int(sp.subject[k])
        start, end = int(sp.start[k]), end_or_none(int(sp.end[k]))
        at = np.flatnonzero((s_all == st) & (t_all == start) & np.isin(v_all, params.silence.faulty_states))
        first = int(at[0]) if len(at) else -1
        found.append(
            finding(
                STATION_FAULT,
                layout.station_codes[st],
                start,
                end,
                {
                    "station": layout.station_codes[st],
                    "points": [layout.codes[i] for i in np.flatnonzero(layout.station == st).tolist()],
                    "first_faulty_report": iso(start),
                    "first_good_report": iso(end),
                    "reported_state": int(v_all[first]) if first >= 0 else None,
                    "source": ("fzss" if src[first] == 0 else "bit16") if first >= 0 else None,
                    "expected_period_s": seconds(int(layout.station_period_ns[st])),
                    "limit_s": seconds(int(sp.limit_ns[k])),
                    "seen_s": None if end is None else seconds(int(sp.seen_ns[k])),
                    "raised_at": iso(int(sp.raised_at[k])),
                },
            )
        )
    out.add(STATION_FAULT, [f for f in found if touches(f, lo, hi)], lo, hi)


async def _power_off(
    conn: Conn, layout: MineLayout, now_ns: int, params: IntegrityParams, lo: int, hi: int, out: Desired
) -> None:
    if len(layout.relation_point) == 0:
        return
    po = params.power_off
    w_lo = lo - po.response_ns - po.evidence_after_ns
    subjects = sorted({int(i) for i in layout.relation_point.tolist()})
    sub_ids = [int(layout.ids[i]) for i in subjects]
    eps = list(
        await conn.fetch(
            "SELECT point_id, start_ts, end_ts, thresholds FROM episodes WHERE point_id = ANY($1::int[]) "
            "AND level = 'power_off' AND start_ts <= $3 AND (end_ts IS NULL OR end_ts >= $2)",
            sub_ids,
            from_ns(w_lo),
            from_ns(hi),
        )
    )
    # Episodes of failures stored as running in the window (the feed answered only now).
    for s in await _stored(conn, layout.mine_id, [POWER_OFF_FAILURE], w_lo, hi):
        for ev in (s.row.evidence, *s.row.evidence.get("also", [])):
            if "episode_start" in ev and ev.get("point") in layout.codes:
                eps += await conn.fetch(
                    "SELECT point_id, start_ts, end_ts, thresholds FROM episodes WHERE point_id = $1 AND start_ts = $2 "
                    "AND level = 'power_off'",
                    int(layout.ids[layout.codes.index(ev["point"])]),
                    datetime.fromisoformat(ev["episode_start"]),
                )
    seen_eps: set[tuple[int, datetime]] = set()
    rows = []
    for e in eps:
        key = (int(e["point_id"]), e["start_ts"])
        if key in seen_eps:
            continue
        seen_eps.add(key)
        level = json.loads(e["thresholds"]).get("poweroff_hi")
        if level is None:
            continue
        t_row = await conn.fetchval(
            "SELECT ts FROM readings WHERE point_id = $1 AND ts >= $2 AND ($3::timestamptz IS NULL OR ts <= $3) "
            "AND status & $4 = 0 AND value <> 'NaN' AND value >= $5 ORDER BY ts LIMIT 1",
            e["point_id"],
            e["start_ts"],
            e["end_ts"],
            po.exclude_mask,
            float(level),
        )
        if t_row is None:
            continue
        t = to_ns(t_row)
        if not now_ns > t + po.response_ns:
            continue
        i = layout.index_of(e["point_id"])
        feeds = layout.relation_feed[layout.relation_point == i]
        feed_ids = [int(layout.ids[f]) for f in feeds.tolist()]
        window = await load_readings(conn, layout.points(), t - po.evidence_before_ns, t + po.evidence_after_ns + US)
        # The first "off" reading of each feed after the window closes the failure.
        after = await conn.fetch(
            "SELECT f, (SELECT ts FROM readings r WHERE r.point_id = f AND r.ts > $2 AND r.status & $3 = 0 "
            "AND r.value = $4 ORDER BY r.ts LIMIT 1) AS ts FROM unnest($1::int[]) AS f",
            feed_ids,
            from_ns(t + po.response_ns + po.evidence_after_ns),
            po.exclude_mask,
            po.off_value,
        )
        extra = [(layout.index_of(x["f"]), to_ns(x["ts"])) for x in after if x["ts"] is not None]
        rp = np.concatenate((window.point_idx, np.array([p for p, _ in extra], np.int64)))
        rt = np.concatenate((window.ts, np.array([q for _, q in extra], np.int64)))
        rv = np.concatenate((window.value, np.full(len(extra), po.off_value)))
        rs = np.concatenate((window.status, np.zeros(len(extra), np.int16)))
        order = np.lexsort((rt, rp))
        resp = power_off_response(
            rp[order],
            rt[order],
            rv[order],
            rs[order],
            trigger_point=np.array([i], np.int64),
            trigger_ts=np.array([t], np.int64),
            relation_point=np.full(len(feeds), i, np.int64),
            relation_feed=feeds.astype(np.int64),
            now_ns=now_ns,
            params=po,
        )
        keep = np.isin(window.point_idx, np.array([i, *feeds.tolist()], np.int64))
        evidence_readings: dict[str, list[list[Any]]] = {}
        for p_, t_, v_, s_ in zip(
            window.point_idx[keep].tolist(),
            window.ts[keep].tolist(),
            window.value[keep].tolist(),
            window.status[keep].tolist(),
            strict=True,
        ):
            evidence_readings.setdefault(layout.codes[p_], []).append([iso(t_), None if math.isnan(v_) else v_, s_])
        for k in np.flatnonzero(resp.failed).tolist():
            end = end_or_none(int(resp.end[k]))
            feed = layout.codes[int(resp.feed_idx[k])]
            last_v = float(resp.last_feed_value[k])
            rows.append(
                finding(
                    POWER_OFF_FAILURE,
                    layout.codes[i],
                    int(resp.start[k]),
                    end,
                    {
                        "point": layout.codes[i],
                        "feed": feed,
                        "points": [layout.codes[i], feed],
                        "episode_start": iso(to_ns(e["start_ts"])),
                        "trigger_at": iso(t),
                        "poweroff_threshold": float(level),
                        "response_s": seconds(po.response_ns),
                        "expected": f"{feed} reports off ({po.off_value:g}) by {iso(t + po.response_ns)}",
                        "seen_feed_readings": int(resp.n_feed_readings[k]),
                        "last_feed_value": None if math.isnan(last_v) else last_v,
                        "off_at": iso(end),
                        "window": [iso(t - po.evidence_before_ns), iso(t + po.evidence_after_ns)],
                        "readings": evidence_readings,
                    },
                )
            )
    out.add(POWER_OFF_FAILURE, rows, w_lo, hi)


async def _under_reporting(
    conn: Conn, layout: MineLayout, day_starts: Sequence[int], now_ns: int, params: IntegrityParams
) -> Desired:
    """Judge whole local days whose upload grace is over: computed methane episodes against
    the mine's YCBJ records. A mine that uploads no files (no TJSJ / YCBJ record near the day)
    is not judged: it has no alarm records to leave anything out of."""
    out = Desired()
    urp = dataclasses.replace(params.under_reporting, timezone=layout.timezone)
    zone = ZoneInfo(layout.timezone)
    methane_ids = layout.ids[layout.methane].tolist()
    for d0 in day_starts:
        bounds = local_boundaries(d0, d0, layout.timezone, DAY_START_HOURS)
        j = int(np.searchsorted(bounds, d0, side="right") - 1)
        d0, d1 = int(bounds[j]), int(bounds[j + 1])
        if d1 + urp.grace_ns > now_ns or not methane_ids:
            continue
        uploads = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM reported_abnormal WHERE point_id = ANY($1::int[]) AND started_at < $3 "
            "AND started_at >= $2::timestamptz - interval '7 days') OR EXISTS (SELECT 1 FROM reported_stats WHERE "
            "point_id = ANY($1::int[]) AND period_end >= $2 AND period_start < $3)",
            layout.ids.tolist(),
            from_ns(d0),
            from_ns(d1),
        )
        eps = await conn.fetch(
            "SELECT point_id, start_ts, end_ts, peak, level FROM episodes WHERE point_id = ANY($1::int[]) "
            "AND start_ts >= $2 AND start_ts < $3 ORDER BY point_id, start_ts",
            methane_ids,
            from_ns(d0),
            from_ns(d1),
        )
        rows: list[FindingRow] = []
        if uploads and eps:
            recs = await conn.fetch(
                "SELECT point_id, abnormal_code, started_at, ended_at FROM reported_abnormal WHERE "
                "point_id = ANY($1::int[]) AND started_at <= $3 AND (ended_at IS NULL OR ended_at >= $2)",
                methane_ids,
                from_ns(d0),
                from_ns(max(to_ns(e["end_ts"] or e["start_ts"]) for e in eps)),
            )
            res = under_reported(
                np.array([layout.index_of(e["point_id"]) for e in eps], np.int64),
                np.array([to_ns(e["start_ts"]) for e in eps], np.int64),
                np.array([-1 if e["end_ts"] is None else to_ns(e["end_ts"]) for e in eps], np.int64),
                point_mine=np.zeros(len(layout), np.int64),
                record_point=np.array([layout.index_of(x["point_id"]) for x in recs], np.int64),
                record_start=np.array([to_ns(x["started_at"]) for x in recs], np.int64),
                record_end=np.array([-1 if x["ended_at"] is None else to_ns(x["ended_at"]) for x in recs], np.int64),
                record_code=np.array([x["abnormal_code"] for x in recs], dtype=np.str_),
                now_ns=now_ns,
                params=urp,
            )
            for k in range(len(res.mine)):
                members = res.episode_order[int(res.first[k]) : int(res.first[k]) + int(res.count[k])].tolist()
                listed = [
                    {
                        "point": layout.codes[layout.index_of(eps[m]["point_id"])],
                        "start": iso(to_ns(eps[m]["start_ts"])),
                        "end": iso(None if eps[m]["end_ts"] is None else to_ns(eps[m]["end_ts"])),
                        "peak": float(eps[m]["peak"]),
                        "level": eps[m]["level"],
                    }
                    for m in members
                ]
                rows.append(
                    finding(
                        UNDER_REPORTING,
                        layout.mine_code,
                        int(res.day_start[k]),
                        int(res.day_end[k]),
                        {
                            "day": from_ns(int(res.day_start[k])).astimezone(zone).date().isoformat(),
                            "unreported": listed,
                            "points": sorted({x["point"] for x in listed}),
                            "episodes": len(eps),
                            "reported": int(res.covered.sum()),
                            "expected": f"a YCBJ record ({'/'.join(urp.alarm_codes)}) overlapping every episode",
                            "grace_s": seconds(urp.grace_ns),
                        },
                    )
                )
        out.add(UNDER_REPORTING, rows, d0, d1 - US)
    return out


# --- the clock-driven pass --------------------------------------------------------------------


async def clock_pass(
    conn: Conn,
    now: datetime,
    *,
    tally: Tally,
    params: IntegrityParams = DEFAULT_PARAMS,
    mines: Sequence[int] | None = None,
    since: datetime | None = None,
    between: store.Between | None = None,
) -> bool:
    """The rules that fire on silence, at the clock's ``now``, one transaction per mine under its
    evaluation lock (a mine the worker is evaluating is skipped: its evaluation runs at the same
    clock; ``between`` is awaited before each mine): each point's silence since its last
    reading (`offline`) and each station's run of faulty reports (`station_fault`) from the
    stored times alone, with no readings read; the power-off triggers of the last minutes
    (`power_off_failure`: the feed never answered); the local days whose upload grace just ended
    (`under_reporting`). Silence only opens spans, so offline and station faults are only added
    here, never withdrawn (new data do that, through the data-driven pass). ``since``, the clock
    of this process's previous pass, limits the days judged to those whose grace ended after it;
    without it (a first pass, after a restart) every day whose grace ended within `clock_days`
    is judged again. True when a finding changed."""
    now_ns = to_ns(now)
    since_ns = None if since is None else to_ns(since)
    ids = mines if mines is not None else [r["id"] for r in await conn.fetch("SELECT id FROM mines WHERE active ORDER BY id")]
    changed = False
    for mine_id in ids:
        if between is not None:
            await between()
        async with conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", store.MINE_LOCK_CLASS, mine_id):
                continue
            layout = await load_layout(conn, mine_id)
            back = now_ns - params.under_reporting.grace_ns - params.clock_days * 24 * HOUR
            bounds = local_boundaries(back, now_ns, layout.timezone, DAY_START_HOURS)
            days = [
                int(bounds[j])
                for j in range(len(bounds) - 1)
                if back <= int(bounds[j + 1]) + params.under_reporting.grace_ns <= now_ns
                and (since_ns is None or int(bounds[j + 1]) + params.under_reporting.grace_ns > since_ns)
            ]
            lo = now_ns - params.clock_tail_ns
            silent = Desired()
            # Open spans of silence already stored as open: their rows never change while open.
            known = {
                (r["rule"], r["subject"], to_ns(r["start_ts"]))
                for r in await conn.fetch(
                    "SELECT rule, subject, start_ts FROM findings WHERE mine_id = $1 AND rule = ANY($2::text[]) "
                    "AND end_ts IS NULL AND state = 'open'",
                    mine_id,
                    [OFFLINE, STATION_FAULT],
                )
            }
            newest = await store.last_reading(conn, layout.ids.tolist())
            seen = np.array([newest.get(int(i), -1) for i in layout.ids.tolist()], np.int64)
            offline_rows(layout, Readings.empty(), seen, now_ns, params, -FOREVER, FOREVER - 1, silent, known)
            await _station_fault(conn, layout, Readings.empty(), now_ns, params, lo, now_ns, lo, silent)
            mine_changed = await _add_only(conn, layout, silent, known, tally)
            desired = Desired()
            await _power_off(conn, layout, now_ns, params, lo, now_ns, desired)
            mine_changed = await _write(conn, layout, desired, tally) or mine_changed
            if days:
                desired = await _under_reporting(conn, layout, days, now_ns, params)
                mine_changed = await _write(conn, layout, desired, tally) or mine_changed
            if mine_changed:
                await store.notify_findings(conn)
                changed = True
    return changed


async def _add_only(conn: Conn, layout: MineLayout, desired: Desired, known: set[tuple[str, str, int]], tally: Tally) -> bool:
    """Write the open spans silence found that are not stored open already; withdraw nothing.
    (An open finding stored with other evidence, say after a registry change, is brought up to
    date by the next data-driven evaluation of its point.)"""
    rows = [f for rows in desired.rows.values() for f in merge_same_key(rows) if f.end is None and f.key not in known]
    if not rows:
        return False
    stored = {s.row.key: s for s in await store.findings_by_key(conn, layout.mine_id, [f.key for f in rows])}
    return await store.apply_findings(conn, layout.mine_id, rows, list(stored.values()), overlapping, tally)
