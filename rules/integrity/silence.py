"""Silence spans: points that stop reporting (`offline`) and stations that report a fault
(`station_fault`), both found from times alone and both able to fire with no new data.

offline (rules.md §6): a point's last reading is at r and no reading follows for *more
than* k × its expected period (k = 3, period 30 s by default; §8 shortens the period under
warning — the caller passes the period in force per point). The span starts at r, is
raised at r + k × period, and ends at the next reading; with no next reading it is open
(``end == -1``) once ``now_ns - r > k × period``. Any stored row is a reading here,
whatever its status (a fault-flagged reading still arrived); of two rows at one (point, ts)
the first counts. ``last_seen_ns`` carries each point's last reading *before* the rows
given (-1 for none), so a clock-driven pass with no rows at all still finds every silent
point; a point never heard from has no r and no span.

station_fault (rules.md §6 and "at a glance": first faulty report → first good one): per
station, a run opens at a row whose run state is faulty (1 comm. lost, 2 fault) and closes
at the first later row whose state is good (0). Other states (9 unknown) neither open nor
close. A run is a finding when it lasts *more than* k × the station's expected period
(closed: end - start; open: now_ns - start). The other source rules.md names — every point
of the station flagged 16 — is turned into the same state rows by `flagged_station_states`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.episodes import STATION_FAULT
from rules.integrity.common import (
    I64,
    NO_END,
    Bools,
    S,
    as_i64,
    checked_readings,
    first_of_time,
    per_point,
)


@dataclass(frozen=True)
class SilenceParams:
    """Defaults of rules.md §6 `offline` and `station_fault`."""

    multiplier: int = 3  # §6: "for more than 3 × its expected period"
    period_ns: int = 30 * S  # §6: "default period 30 s"
    faulty_states: tuple[int, ...] = (1, 2)  # §6 / formats.md FZSS: 1 comm. lost, 2 fault
    good_states: tuple[int, ...] = (0,)  # formats.md FZSS: 0 ok; 9 unknown is neither


@dataclass(frozen=True, eq=False)
class SilenceSpans:
    """Silence spans as struct-of-arrays, ordered by (subject, start)."""

    subject: I64  # point index (offline) or station index (station_fault)
    start: I64
    end: I64  # -1 while open
    raised_at: I64  # start + k × period: when the span became a finding
    limit_ns: I64  # k × period: the silence that was allowed (expected)
    seen_ns: I64  # the silence seen: end - start, or now - start while open

    def __len__(self) -> int:
        return len(self.start)

    @property
    def is_open(self) -> Bools:
        """Per span: still open at ``now_ns``."""
        return np.asarray(self.end == NO_END, dtype=np.bool_)


def _spans(subject: I64, start: I64, end: I64, limit: I64, now_ns: int) -> SilenceSpans:
    seen = np.where(end == NO_END, now_ns - start, end - start)
    keep = seen > limit
    return SilenceSpans(subject[keep], start[keep], end[keep], (start + limit)[keep], limit[keep], seen[keep])


def offline_spans(
    point_idx: I64,
    ts: I64,
    *,
    n_points: int,
    now_ns: int,
    period_ns: I64 | int | None = None,
    last_seen_ns: I64 | None = None,
    params: SilenceParams = SilenceParams(),
) -> SilenceSpans:
    """Offline spans of readings sorted by (point, ts); see the module docstring.

    ``period_ns`` is the expected period per point (or one for all, default from params);
    ``last_seen_ns`` per point is its last reading before these rows (-1: none known).
    """
    p, t = checked_readings(point_idx, ts)
    period = per_point(params.period_ns if period_ns is None else period_ns, n_points, "period_ns")
    limit_of = period * params.multiplier
    keep = first_of_time(p, t)
    if not bool(keep.all()):
        p, t = p[keep], t[keep]
    # Closed spans: consecutive readings of one point further apart than the limit.
    same = p[1:] == p[:-1]
    ci = np.flatnonzero(same & (t[1:] - t[:-1] > limit_of[p[:-1]]))
    # The silence before the first row of each point, from its last reading before them.
    first = np.flatnonzero(np.concatenate(([True], ~same))) if len(p) else np.zeros(0, np.int64)
    seen_before = (np.full(n_points, -1, np.int64) if last_seen_ns is None
                   else per_point(last_seen_ns, n_points, "last_seen_ns"))
    fp = p[first]
    bi = first[(seen_before[fp] >= 0) & (seen_before[fp] < t[first])]
    # Open spans: from each point's last reading (in the rows, else before them) to now.
    last_t = seen_before.copy()
    if len(p):
        last_row = np.append(first[1:] - 1, len(p) - 1)
        last_t[p[last_row]] = np.maximum(last_t[p[last_row]], t[last_row])
    op = np.flatnonzero(last_t >= 0)
    subject = np.concatenate((p[ci], p[bi], op)).astype(np.int64)
    start = np.concatenate((t[ci], seen_before[p[bi]], last_t[op])).astype(np.int64)
    end = np.concatenate((t[ci + 1], t[bi], np.full(len(op), NO_END, np.int64))).astype(np.int64)
    order = np.lexsort((start, subject))
    subject, start, end = subject[order], start[order], end[order]
    return _spans(subject, start, end, limit_of[subject], now_ns)


def station_fault_spans(
    station_idx: I64,
    ts: I64,
    state: NDArray[np.integer],
    *,
    n_stations: int,
    now_ns: int,
    period_ns: I64 | int | None = None,
    params: SilenceParams = SilenceParams(),
) -> SilenceSpans:
    """Station fault spans of state rows sorted by (station, ts); see the module docstring."""
    p, t = checked_readings(station_idx, ts, state, what="station states")
    period = per_point(params.period_ns if period_ns is None else period_ns, n_stations, "period_ns")
    s = np.asarray(state)
    faulty = np.isin(s, params.faulty_states)
    decisive = first_of_time(p, t) & (faulty | np.isin(s, params.good_states))
    # Rows that neither open nor close change nothing; drop them and pair the rest.
    rows = np.flatnonzero(decisive)
    dp, dt, df = p[rows], t[rows], faulty[rows]
    new_station = np.concatenate(([True], dp[1:] != dp[:-1])) if len(rows) else np.zeros(0, np.bool_)
    prev_faulty = np.concatenate(([False], df[:-1])) if len(rows) else np.zeros(0, np.bool_)
    opens = np.flatnonzero(df & (new_station | ~prev_faulty))
    # Each run ends at the next good row of its station (the next decisive row that is good).
    good = np.flatnonzero(~df)
    nxt = np.searchsorted(good, opens, side="right")
    probe = good[np.minimum(nxt, max(len(good) - 1, 0))] if len(good) else np.zeros(len(opens), np.int64)
    closed = (nxt < len(good)) & (dp[probe] == dp[opens]) if len(good) else np.zeros(len(opens), np.bool_)
    end = np.where(closed, dt[probe], NO_END).astype(np.int64)
    subject = dp[opens]
    return _spans(subject, dt[opens], end, period[subject] * params.multiplier, now_ns)


def flagged_station_states(
    point_idx: I64,
    ts: I64,
    status: NDArray[np.integer],
    point_station: I64,
    *,
    n_stations: int,
    fault_bit: int = STATION_FAULT,
) -> tuple[I64, I64, NDArray[np.int8]]:
    """State rows (station, ts, state) derived from point readings, to feed
    `station_fault_spans` like FZSS rows: state 2 (fault) at an instant after which every
    point of the station (``point_station`` lists them; -1 for none) has its latest reading
    flagged ``fault_bit``, 0 (good) at every other instant at which some point of the
    station turns flagged or unflagged. A point's first reading is a turn from unflagged.
    Only turning instants give rows (the state cannot change in between), sorted by
    (station, ts), all turns of one instant applied before judging; the first row of a
    (point, ts) is the reading. Pass rows from far enough back that every point has one.
    """
    p, t = checked_readings(point_idx, ts, status)
    keep = first_of_time(p, t)
    st_all = np.asarray(status)
    if not bool(keep.all()):
        p, t, st_all = p[keep], t[keep], st_all[keep]
    flag = (st_all & fault_bit) != 0
    ps = as_i64(point_station)
    members = np.bincount(ps[ps >= 0], minlength=n_stations)
    # Per point, +1 where it turns flagged, -1 where it turns unflagged; rows are few.
    prev = np.concatenate(([False], flag[:-1]))
    if len(p):
        prev[np.flatnonzero(np.concatenate(([True], p[1:] != p[:-1])))] = False
    turn = np.flatnonzero(flag != prev)
    st = ps[p[turn]]
    on = st >= 0
    turn, st = turn[on], st[on]
    delta = np.where(flag[turn], 1, -1).astype(np.int64)
    order = np.lexsort((t[turn], st))
    st_o, t_o, d_o = st[order], t[turn][order], delta[order]
    if len(st_o) == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, np.int8)
    seg = np.concatenate(([True], st_o[1:] != st_o[:-1]))
    csum = np.cumsum(d_o)
    base = np.repeat(csum[seg] - d_o[seg], np.diff(np.append(np.flatnonzero(seg), len(st_o))))
    flagged_count = csum - base
    # The state after all turns of one (station, ts).
    last_of_instant = np.append((st_o[1:] != st_o[:-1]) | (t_o[1:] != t_o[:-1]), True)
    st_l, t_l, c_l = st_o[last_of_instant], t_o[last_of_instant], flagged_count[last_of_instant]
    state = np.where(c_l >= members[st_l], 2, 0).astype(np.int8)
    return st_l.astype(np.int64), t_l.astype(np.int64), state
