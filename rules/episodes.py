"""Episodes: contiguous exceedances of one point, found with hysteresis over sorted readings.

Input: readings sorted by (point, ts) — stable, so the first stored of two equal keys comes
first — with the per-reading ``exceed`` / ``clear`` / ``poweroff`` of `rules.thresholds`.

- A row with the same (point, ts) as the previous row is ignored (first wins), whatever the
  status of either: the first stored row *is* the reading.
- A row with any bit of ``exclude_mask`` (default 252: calibrating 4, over-range 8, station
  fault 16, not polled 32, paused 64, sensor fault 128) is ignored entirely: it neither opens,
  extends nor closes an episode, and is not "the last reading" for gap purposes. The other
  rules (calibration, health) read those rows; episodes do not.
- An episode opens at the first valid row that exceeds and stays open through rows that
  neither exceed nor clear (the hysteresis band, NaN values included). It closes at the first
  valid row that clears: ``end`` is that row's ts, ``end_reason`` "cleared".
- When the time from one valid row of a point to the next is strictly greater than the later
  row's ``max_gap_ns``, an open episode closes at the earlier row: ``end`` is its ts (the last
  valid reading), ``end_reason`` "gap"; the later row starts fresh (it may open a new one).
- An episode still open at the end of a point's data is open: ``end == -1``, ``is_open``
  true, ``end_reason`` "open". Silence never closes an episode (that is the offline rule's).

Records: ``peak`` is the maximum non-NaN value over the episode's valid rows (the opening
row to its last in-episode row; the clearing row is not part of it), the minimum for a
lower-limit point (``lower_by_point``, judged at the opening row);
``peak_ts`` the first time it is reached; ``level`` 1 alarm or 2 power-off (any row of the
episode at power-off level); ``version`` the threshold version of the opening row;
``first_row`` / ``last_row`` the input row indices of the opening and the last in-episode row;
``end_row`` the row whose ts is ``end`` (-1 while open).

Method: only rows that are valid and not clearing (exceed or band) can be inside an episode.
They are few in real data, so after a handful of whole-array passes (status, duplicates,
marks) all work is on those rows: runs of them that are adjacent in valid-row order, of one
point and without a gap, are cut at their first exceeding row; each such run is one episode.
`find_episodes` takes the marks of `rules.thresholds.classify*`; `find_episodes_by_version`
fuses version resolution and classification into the search (the hot path, same answer).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.thresholds import (
    ThresholdTable,
    classify_levels,
    sorted_by_point_time,
    version_runs,
)

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]

# Point status bits (formats.md); a value may carry several.
ALARM, POWER_OFF, CALIBRATING, OVER_RANGE = 1, 2, 4, 8
STATION_FAULT, NOT_POLLED, PAUSED, SENSOR_FAULT = 16, 32, 64, 128
DEFAULT_EXCLUDE_MASK = (
    CALIBRATING | OVER_RANGE | STATION_FAULT | NOT_POLLED | PAUSED | SENSOR_FAULT
)
STATUS_BITS: dict[str, int] = {
    "alarm": ALARM,
    "power_off": POWER_OFF,
    "calibrating": CALIBRATING,
    "over_range": OVER_RANGE,
    "station_fault": STATION_FAULT,
    "not_polled": NOT_POLLED,
    "paused": PAUSED,
    "sensor_fault": SENSOR_FAULT,
}
LEVEL_ALARM, LEVEL_POWER_OFF = 1, 2
LEVEL_NAMES = {LEVEL_ALARM: "alarm", LEVEL_POWER_OFF: "power_off"}  # as the API spells them
END_OPEN, END_CLEARED, END_GAP = 0, 1, 2
END_REASONS = ("open", "cleared", "gap")


@dataclass(frozen=True, eq=False)
class Episodes:
    """Episodes as struct-of-arrays, ordered by (point, start)."""

    point_idx: I64
    start: I64
    end: I64  # -1 while open
    is_open: Bools
    peak: F64
    peak_ts: I64
    level: I8  # LEVEL_ALARM / LEVEL_POWER_OFF
    lower: Bools  # lower-limit point: peak is a minimum
    version: I64  # threshold version at the opening row (-1 when not given)
    first_row: I64
    last_row: I64
    end_row: I64  # -1 while open
    end_reason: I8  # index into END_REASONS

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index: I64 | Bools) -> Episodes:
        """The episodes selected by an index or mask array, in that order."""
        return Episodes(*(getattr(self, f.name)[index] for f in fields(self)))

    @classmethod
    def empty(cls) -> Episodes:
        """No episodes."""
        i64, f64 = np.zeros(0, np.int64), np.zeros(0, np.float64)
        b, i8 = np.zeros(0, np.bool_), np.zeros(0, np.int8)
        return cls(i64, i64, i64, b, f64, i64, i8, b, i64, i64, i64, i64, i8)


def find_episodes(
    point_idx: I64,
    ts: I64,
    values: F64,
    status: NDArray[np.integer],
    exceed: Bools,
    clear: Bools,
    poweroff: Bools,
    *,
    max_gap_ns: I64 | int,
    version: I64 | None = None,
    lower_by_point: Bools | None = None,
    exclude_mask: int = DEFAULT_EXCLUDE_MASK,
) -> Episodes:
    """Episodes of readings sorted by (point, ts); see the module docstring for the rules.

    ``max_gap_ns`` is per row (the later row of a pair decides) or one number for all;
    ``lower_by_point`` is indexed by ``point_idx`` and marks lower-limit points (oxygen).
    """
    p, t, gap = _checked(point_idx, ts, max_gap_ns, values, status, exceed, clear, poweroff,
                         *(() if version is None else (version,)))
    if len(p) == 0:
        return Episodes.empty()
    bad = _invalid_rows(p, t, np.asarray(status), exclude_mask)
    k = _drop(np.flatnonzero(~np.asarray(clear, dtype=np.bool_)), bad)
    return _episodes(
        p, t, np.asarray(values, dtype=np.float64), gap, bad, k,
        np.asarray(exceed, dtype=np.bool_)[k], np.asarray(poweroff, dtype=np.bool_)[k],
        None if version is None else np.asarray(version, dtype=np.int64)[k], lower_by_point,
    )


def find_episodes_by_version(
    point_idx: I64,
    ts: I64,
    values: F64,
    status: NDArray[np.integer],
    *,
    table: ThresholdTable,
    version_point: I64,
    version_from: I64,
    max_gap_ns: I64 | int,
    lower_by_point: Bools | None = None,
    exclude_mask: int = DEFAULT_EXCLUDE_MASK,
) -> Episodes:
    """`resolve_versions` → `classify_versions` → `find_episodes` in one, for the hot path.

    Same answer, fewer whole-array passes: readings are sorted, so versions come as runs;
    only the clear level is spread over all rows, and exceed / power-off are decided on the
    few rows that do not clear.
    """
    p, t, gap = _checked(point_idx, ts, max_gap_ns, values, status)
    if not sorted_by_point_time(version_point, version_from):
        raise RulesError("threshold versions must be sorted by (point, effective_from)")
    if len(p) == 0:
        return Episodes.empty()
    v = np.asarray(values, dtype=np.float64)
    run_start, run_version = version_runs(p, t, version_point, version_from)
    run_len = np.diff(np.append(run_start, len(p)))
    levels = table.levels
    keep = ~(v < np.repeat(levels[1][run_version], run_len))
    if table.has_lower:
        keep |= ~(v >= np.repeat(levels[4][run_version], run_len))
    bad = _invalid_rows(p, t, np.asarray(status), exclude_mask)
    k = _drop(np.flatnonzero(keep), bad)
    ver_k = run_version[np.searchsorted(run_start, k, side="right") - 1]
    width = 6 if table.has_lower else 3
    exceed_k, _, poweroff_k = classify_levels(v[k], tuple(lv[ver_k] for lv in levels[:width]))
    return _episodes(p, t, v, gap, bad, k, exceed_k, poweroff_k, ver_k, lower_by_point)


def _checked(point_idx: I64, ts: I64, max_gap_ns: I64 | int,
             *arrays: NDArray[np.generic]) -> tuple[I64, I64, I64]:
    p = np.asarray(point_idx, dtype=np.int64)
    t = np.asarray(ts, dtype=np.int64)
    gap = np.asarray(max_gap_ns, dtype=np.int64)
    n = len(p)
    if len(t) != n or any(len(a) != n for a in arrays) or (gap.ndim and len(gap) != n):
        raise RulesError("every per-reading array of an episode search must have the same length")
    if not sorted_by_point_time(p, t):
        raise RulesError("readings must be sorted by (point, ts); use a stable sort")
    return p, t, gap


def _invalid_rows(p: I64, t: I64, status: NDArray[np.integer], exclude_mask: int) -> I64:
    """Sorted indices of ignored rows: excluded status bits, or a repeat of (point, ts).

    They are few, so they are found from the nonzero statuses and the repeated times rather
    than with whole-array masks (each full temporary costs as much as a pass).
    """
    flagged = np.flatnonzero(status)
    flagged = flagged[(status[flagged] & exclude_mask) != 0]
    same_t = np.flatnonzero(t[1:] == t[:-1]) + 1
    return np.union1d(flagged, same_t[p[same_t] == p[same_t - 1]]).astype(np.int64)


def _drop(rows: I64, bad: I64) -> I64:
    """Rows without the ignored ones."""
    return rows[~_member(rows, bad)] if len(bad) else rows


def _episodes(
    p: I64, t: I64, values: F64, gap: I64, bad: I64, k: I64,
    exceed_k: Bools, poweroff_k: Bools, version_k: I64 | None, lower_by_point: Bools | None,
) -> Episodes:
    """Episodes from the candidate rows ``k`` (valid, not clearing) and their marks."""
    n = len(p)
    if len(k) == 0:
        return Episodes.empty()
    nxt = _next_valid(k, bad, n)

    def gap_of(rows: I64) -> I64:
        return gap if gap.ndim == 0 else gap[rows]

    kp, kt = p[k], t[k]
    # Two candidate rows continue one run when nothing valid lies between them, they belong
    # to one point and the later one did not come after a gap.
    link = (nxt[:-1] == k[1:]) & (kp[1:] == kp[:-1]) & (kt[1:] - kt[:-1] <= gap_of(k[1:]))
    run_start = np.concatenate(([True], ~link))
    run_first = np.flatnonzero(run_start)
    run_last = np.append(run_first[1:] - 1, len(k) - 1)
    run_id = np.cumsum(run_start) - 1

    plus = np.flatnonzero(exceed_k)
    if len(plus) == 0:
        return Episodes.empty()
    plus_run = run_id[plus]
    opens = np.concatenate(([True], plus_run[1:] != plus_run[:-1]))
    ep_a = plus[opens]  # position in k of each opening row
    ep_b = run_last[plus_run[opens]]  # position in k of each last in-episode row
    first_row, last_row = k[ep_a], k[ep_b]

    # How each episode ends: at the next valid row of its point, unless that came after a gap.
    after = nxt[ep_b]
    probe = np.minimum(after, n - 1)
    has_next = (after < n) & (p[probe] == p[last_row])
    gap_break = has_next & (t[probe] - t[last_row] > gap_of(probe))
    cleared = has_next & ~gap_break
    end_row = np.where(cleared, after, np.where(gap_break, last_row, -1))
    end = np.where(end_row >= 0, t[np.maximum(end_row, 0)], -1)
    reason = np.where(cleared, END_CLEARED, np.where(gap_break, END_GAP, END_OPEN))

    lower = (
        np.zeros(len(ep_a), np.bool_)
        if lower_by_point is None
        else np.asarray(lower_by_point, dtype=np.bool_)[p[first_row]]
    )
    peak, peak_row, any_off = _span_stats(k, ep_a, ep_b, values, lower, poweroff_k)
    return Episodes(
        point_idx=p[first_row],
        start=t[first_row],
        end=end.astype(np.int64),
        is_open=end_row < 0,
        peak=peak,
        peak_ts=t[peak_row],
        level=np.where(any_off, LEVEL_POWER_OFF, LEVEL_ALARM).astype(np.int8),
        lower=lower,
        version=np.full(len(ep_a), -1, np.int64) if version_k is None else version_k[ep_a],
        first_row=first_row,
        last_row=last_row,
        end_row=end_row.astype(np.int64),
        end_reason=reason.astype(np.int8),
    )


def _member(rows: I64, sorted_set: I64) -> Bools:
    """Per row, whether it is in a sorted, non-empty array of row indices."""
    i = np.minimum(np.searchsorted(sorted_set, rows), len(sorted_set) - 1)
    return np.equal(sorted_set[i], rows)


def _next_valid(rows: I64, bad: I64, n: int) -> I64:
    """Per row, the next row after it that is not in `bad` (sorted), or n when there is none."""
    nxt = rows + 1
    if len(bad) == 0:
        return nxt
    # The end of the run of consecutive bad rows each bad row belongs to.
    is_end = np.append(bad[1:] != bad[:-1] + 1, True)
    run_end = np.minimum.accumulate(np.where(is_end, bad, n)[::-1])[::-1]
    i = np.minimum(np.searchsorted(bad, nxt), len(bad) - 1)
    return np.where(bad[i] == nxt, run_end[i] + 1, nxt)


def _span_stats(
    k: I64, ep_a: I64, ep_b: I64, values: F64, lower: Bools, poweroff_k: Bools
) -> tuple[F64, I64, Bools]:
    """Peak, first peak row and any-power-off over each episode's rows k[ep_a..ep_b]."""
    m, ne = len(k), len(ep_a)
    depth = np.zeros(m + 1, np.int64)
    depth[ep_a] += 1
    depth[ep_b + 1] -= 1
    inside = np.flatnonzero(np.cumsum(depth[:-1]) > 0)
    opening = np.zeros(m, np.int64)
    opening[ep_a] = 1
    eid = (np.cumsum(opening) - 1)[inside]
    rows = k[inside]
    vals = values[rows]
    # Lower-limit episodes are searched for their maximum of -value, i.e. their minimum.
    signed = np.where(lower[eid], -vals, vals)
    seg = np.searchsorted(eid, np.arange(ne))
    best = np.fmax.reduceat(signed, seg)  # fmax: a NaN band row is not a peak
    hits = np.flatnonzero(signed == best[eid])
    first_hit = hits[np.searchsorted(eid[hits], np.arange(ne))]
    peak = np.where(lower, -best, best)
    any_off = np.logical_or.reduceat(poweroff_k[inside], seg)
    return peak, rows[first_hit], any_off
