"""As-of pair joins: a downstream point (a return airway) that reads implausibly below its
upstream point (its face) for a long time (`implausible_pair`).

rules.md §6: "for configured pairs (upstream, downstream) ...: at every reading time of
either point, take each point's latest considered value (an as-of join, at most 2 expected
periods old); the finding covers each maximal span of ≥ 30 min in which downstream <
upstream − 0.3 (%CH4)."

- Considered readings (§1): first row of a (point, ts), no bit of ``exclude_mask``, a value.
- The join is evaluated once per distinct time at which either point has a considered
  reading, after every reading at that time: each side's value is its latest considered
  reading at or before the time, if at most ``max_age_periods`` × its period old (else the
  side is unknown and the condition does not hold).
- The condition holds from a join time until the next one (a value stands until the next
  reading). A span starts at the first join time where it holds and ends at the first later
  one where it does not (the finding's end). A closed span qualifies when ``end - start >=
  min_duration_ns``; a span still holding at the last join time (open, ``end == -1``)
  qualifies when ``last - start >= min_duration_ns`` (what the data show so far).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.integrity.common import (
    CONSIDERED_EXCLUDE_MASK,
    F64,
    I64,
    MINUTE,
    NO_END,
    Bools,
    S,
    as_i64,
    checked_readings,
    considered,
    per_point,
    ranges,
    rows_of_points,
    segment_bounds,
)


@dataclass(frozen=True)
class PairParams:
    """Defaults of rules.md §6 `implausible_pair`."""

    min_difference: float = 0.3  # §6: "downstream < upstream − 0.3 (%CH4)"
    min_duration_ns: int = 30 * MINUTE  # §6: "each maximal span of ≥ 30 min"
    max_age_periods: int = 2  # §6: "at most 2 expected periods old"
    period_ns: int = 30 * S  # §6 offline: "default period 30 s"
    exclude_mask: int = CONSIDERED_EXCLUDE_MASK  # §1: which readings are considered


@dataclass(frozen=True, eq=False)
class PairSpans:
    """Implausible spans as struct-of-arrays, ordered by (pair, start)."""

    pair: I64  # index into the pairs given
    start: I64
    end: I64  # -1 while the condition still holds at the last join time
    last: I64  # the last join time at which it holds
    worst: F64  # the largest upstream - downstream in the span
    worst_ts: I64  # the first join time it is reached
    n_times: I64  # join times in the span

    def __len__(self) -> int:
        return len(self.start)

    @property
    def is_open(self) -> Bools:
        """Per span: still holding at the last join time."""
        return np.asarray(self.end == NO_END, dtype=np.bool_)


@dataclass(frozen=True, eq=False)
class AsOfJoin:
    """The joined timeline of pairs: one row per (pair, distinct reading time)."""

    pair: I64
    ts: I64
    up: F64  # NaN where unknown (no reading yet, or too old)
    down: F64

    def __len__(self) -> int:
        return len(self.ts)


def asof_join(
    point_idx: I64, ts: I64, values: F64, status: NDArray[np.integer], *,
    upstream: I64, downstream: I64, n_points: int,
    period_ns: I64 | int | None = None,
    params: PairParams = PairParams(),
) -> AsOfJoin:
    """The as-of join of each pair over readings sorted by (point, ts)."""
    p, t = checked_readings(point_idx, ts, values, status)
    up, down = as_i64(upstream), as_i64(downstream)
    # Only the paired points' rows are read.
    sel = rows_of_points(p, np.concatenate((up, down)))
    sp, st, sv = p[sel], t[sel], np.asarray(values, dtype=np.float64)[sel]
    rows = np.flatnonzero(considered(sp, st, sv, np.asarray(status)[sel], params.exclude_mask))
    cp, ct, cv = sp[rows], st[rows], sv[rows]
    period = per_point(params.period_ns if period_ns is None else period_ns, n_points, "period_ns")
    # Every considered reading of either side, tagged with its pair and side.
    parts_pair, parts_row, parts_side = [], [], []
    for tag, pts in ((0, up), (1, down)):
        lo, hi = segment_bounds(cp, pts)
        n = hi - lo
        parts_pair.append(np.repeat(np.arange(len(pts), dtype=np.int64), n))
        parts_row.append(np.repeat(lo, n) + ranges(n))
        parts_side.append(np.full(int(n.sum()), tag, np.int8))
    pair = np.concatenate(parts_pair)
    row = np.concatenate(parts_row)
    side = np.concatenate(parts_side)
    jt = ct[row]
    order = np.lexsort((side, jt, pair))
    pair, row, side, jt = pair[order], row[order], side[order], jt[order]
    m = len(pair)
    pos = np.arange(m, dtype=np.int64)
    seg_first = np.concatenate(([True], pair[1:] != pair[:-1])) if m else np.zeros(0, np.bool_)
    seg_start = np.maximum.accumulate(np.where(seg_first, pos, 0)) if m else pos
    out = []
    for s in (0, 1):
        # Forward fill of each side's latest row within the pair's segment.
        last = np.maximum.accumulate(np.where(side == s, pos, -1)) if m else pos
        valid = last >= seg_start
        src = row[np.maximum(last, 0)] if m else row
        age = jt - ct[src] if m else jt
        fresh = valid & (age <= params.max_age_periods * period[cp[src]] if m else valid)
        out.append(np.where(fresh, cv[src], np.nan) if m else np.zeros(0))
    # One row per (pair, time): the state after every reading at that time.
    last_of_time = np.append((pair[1:] != pair[:-1]) | (jt[1:] != jt[:-1]), True) if m else seg_first
    return AsOfJoin(pair[last_of_time], jt[last_of_time],
                    np.asarray(out[0], np.float64)[last_of_time], np.asarray(out[1], np.float64)[last_of_time])


def implausible_spans(
    point_idx: I64, ts: I64, values: F64, status: NDArray[np.integer], *,
    upstream: I64, downstream: I64, n_points: int,
    period_ns: I64 | int | None = None,
    params: PairParams = PairParams(),
) -> PairSpans:
    """Spans where downstream < upstream - min_difference for long enough; see the module
    docstring. ``upstream[k]``, ``downstream[k]`` are the point indices of pair k."""
    j = asof_join(point_idx, ts, values, status, upstream=upstream, downstream=downstream,
                  n_points=n_points, period_ns=period_ns, params=params)
    return spans_of_join(j, params)


def spans_of_join(j: AsOfJoin, params: PairParams = PairParams()) -> PairSpans:
    """The qualifying spans of a joined timeline."""
    m = len(j)
    if m == 0:
        z = np.zeros(0, np.int64)
        return PairSpans(z, z, z, z, np.zeros(0), z, z)
    gap = j.up - j.down
    # NaN compares false: an unknown side never makes the condition hold.
    cond = j.down < j.up - params.min_difference
    new_pair = np.concatenate(([True], j.pair[1:] != j.pair[:-1]))
    prev = np.concatenate(([False], cond[:-1])) & ~new_pair
    first = np.flatnonzero(cond & ~prev)
    nxt_new = np.append(new_pair[1:], True)
    next_cond = np.append(cond[1:], False) & ~nxt_new
    last = np.flatnonzero(cond & ~next_cond)
    after = last + 1
    ends = (after < m) & ~np.append(new_pair[1:], True)[last]
    end = np.where(ends, j.ts[np.minimum(after, m - 1)], NO_END).astype(np.int64)
    dur = np.where(ends, end, j.ts[last]) - j.ts[first]
    ok = dur >= params.min_duration_ns
    first, last, end = first[ok], last[ok], end[ok]
    if len(first) == 0:
        z = np.zeros(0, np.int64)
        return PairSpans(z, z, z, z, np.zeros(0), z, z)
    n_in = last - first + 1
    idx = np.repeat(first, n_in) + ranges(n_in)
    span_of = np.repeat(np.arange(len(first)), n_in)
    worst = np.maximum.reduceat(gap[idx], np.concatenate(([0], np.cumsum(n_in)[:-1])))
    at_worst = gap[idx] == worst[span_of]
    hits, hit_span = idx[at_worst], span_of[at_worst]
    worst_ts = j.ts[hits[np.searchsorted(hit_span, np.arange(len(first)))]]
    return PairSpans(j.pair[first], j.ts[first], end, j.ts[last], worst, worst_ts.astype(np.int64),
                     (last - first + 1).astype(np.int64))

