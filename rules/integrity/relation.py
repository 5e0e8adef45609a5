"""Relation response: after a methane point reaches its power-off level, did the feed point
of its power-off relation report "off" in time (`power_off_failure`, rules.md §4)?

rules.md §4: "a point with a power-off relation (`D` relation to a feed / relay point)
reaches its power-off threshold at time t (the first considered reading ≥ power-off of an
episode). The related feed point must report "off" (value 0; for a relay point 1009, value
0) at some reading in [t, t + 2 patrol cycles] (default 60 s). If none does — the feed keeps
reporting "on", or reports nothing — a `power_off_failure` finding starts at t + 60 s, with
the methane point, the feed point and their readings in [t − 60 s, t + 120 s] as evidence."
"At a glance": the span is t + 60 s → the feed's first later "off" reading.

- `power_off_triggers` finds t per episode: the first row in [first_row, last_row] of the
  episode that is considered (first of its (point, ts), no bit of ``exclude_mask``) and at
  power-off level (the ``poweroff`` marks of `rules.thresholds`).
- `power_off_response` pairs every trigger with every `D` relation of its point. A feed
  reading counts when it is considered; it is "off" when its value equals ``off_value``.
  The window [t, t + response_ns] is closed: an off reading at t + 60 s answers, one at
  t + 61 s does not (the finding then ends at t + 61 s). A trigger is judged only once
  ``now_ns > t + response_ns`` (before that the feed may still answer); a feed that has not
  answered by then gives an open finding (``end == -1``: never answered so far).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.integrity.common import (
    CONSIDERED_EXCLUDE_MASK,
    F64,
    I64,
    NO_END,
    Bools,
    S,
    as_i64,
    checked_readings,
    first_of_time,
    ranges,
    rows_of_points,
    segment_bounds,
    segment_searchsorted,
)


@dataclass(frozen=True)
class PowerOffParams:
    """Defaults of rules.md §4 power off (`power_off_failure`)."""

    response_ns: int = 60 * S  # §4: "[t, t + 2 patrol cycles] (default 60 s)"
    off_value: float = 0.0  # §4: "off" is value 0 (for a relay point 1009, value 0)
    evidence_before_ns: int = 60 * S  # §4: evidence readings in [t − 60 s, t + 120 s]
    evidence_after_ns: int = 120 * S
    exclude_mask: int = CONSIDERED_EXCLUDE_MASK  # §1: which readings are considered


@dataclass(frozen=True, eq=False)
class PowerOffResponse:
    """One row per (trigger, relation) judged, ordered by (trigger, relation)."""

    trigger: I64  # index into the triggers given
    relation: I64  # index into the relations given
    point_idx: I64  # the methane point
    feed_idx: I64  # the feed / relay point
    t: I64  # the trigger time
    answered_at: I64  # the first "off" reading in the window, -1 for none
    failed: Bools
    start: I64  # t + response_ns for a failure, -1 otherwise
    end: I64  # the first "off" reading after the window, -1 while none (or not failed)
    n_feed_readings: I64  # considered feed readings in [t, t + response_ns]
    last_feed_value: F64  # the last of them, NaN for none ("reports nothing")

    def __len__(self) -> int:
        return len(self.t)

    def failures(self) -> PowerOffResponse:
        """Only the failed rows (the findings)."""
        k = np.flatnonzero(self.failed)
        return PowerOffResponse(*(getattr(self, f)[k] for f in self.__dataclass_fields__))


def power_off_triggers(
    point_idx: I64, ts: I64, status: NDArray[np.integer], poweroff: Bools, *,
    episode_first_row: I64, episode_last_row: I64,
    params: PowerOffParams = PowerOffParams(),
) -> tuple[I64, I64]:
    """Per episode, (row, t) of its first considered power-off reading; -1 where it has none.

    ``poweroff`` is the per-row mark of `rules.thresholds.classify*`; episodes come from
    `rules.episodes` over the same rows.
    """
    p, t = checked_readings(point_idx, ts, status, poweroff)
    # Power-off rows are few: find them first, then check only them (first of their
    # (point, ts), no excluded bit).
    rows = np.flatnonzero(np.asarray(poweroff, np.bool_))
    before = np.maximum(rows - 1, 0)
    repeat = (rows > 0) & (p[before] == p[rows]) & (t[before] == t[rows])
    rows = rows[~repeat & ((np.asarray(status)[rows] & params.exclude_mask) == 0)]
    a, b = as_i64(episode_first_row), as_i64(episode_last_row)
    i = np.searchsorted(rows, a, side="left")
    probe = rows[np.minimum(i, max(len(rows) - 1, 0))] if len(rows) else np.zeros(len(a), np.int64)
    hit = (i < len(rows)) & (probe <= b)
    row = np.where(hit, probe, -1).astype(np.int64)
    return row, np.where(hit, t[np.maximum(row, 0)] if len(t) else -1, -1).astype(np.int64)


def power_off_response(
    point_idx: I64, ts: I64, values: F64, status: NDArray[np.integer], *,
    trigger_point: I64, trigger_ts: I64,
    relation_point: I64, relation_feed: I64,
    now_ns: int,
    params: PowerOffParams = PowerOffParams(),
) -> PowerOffResponse:
    """Judge each (trigger, `D` relation of its point) over readings sorted by (point, ts).

    ``relation_point[k]`` → ``relation_feed[k]`` are the power-off relations (point indices);
    a trigger whose point has none is not judged here (the registry owns that gap).
    """
    p, t = checked_readings(point_idx, ts, values, status)
    tp, tt = as_i64(trigger_point), as_i64(trigger_ts)
    rp, rf = as_i64(relation_point), as_i64(relation_feed)
    # Only the feed points' rows are read.
    sel = rows_of_points(p, rf)
    sp, st = p[sel], t[sel]
    ok = first_of_time(sp, st) & ((np.asarray(status)[sel] & params.exclude_mask) == 0)
    rows = sel[ok]
    cp, ct, cv = p[rows], t[rows], np.asarray(values, dtype=np.float64)[rows]
    off = np.flatnonzero(cv == params.off_value)
    op, ot = cp[off], ct[off]
    by_point = np.argsort(rp, kind="stable")
    lo_r, hi_r = segment_bounds(rp[by_point], tp)
    judged = tt + params.response_ns < now_ns
    n_rel = np.where(judged & (tt >= 0), hi_r - lo_r, 0)
    trig = np.repeat(np.arange(len(tp), dtype=np.int64), n_rel)
    rel = by_point[np.repeat(lo_r, n_rel) + ranges(n_rel)].astype(np.int64)
    feed, t0 = rf[rel], tt[trig]
    t1 = t0 + params.response_ns
    # The first "off" reading of the feed at or after t.
    lo_o, hi_o = segment_bounds(op, feed)
    i = segment_searchsorted(ot, lo_o, hi_o, t0, side="left")
    off_t = np.where(i < hi_o, ot[np.minimum(i, max(len(ot) - 1, 0))] if len(ot) else NO_END, NO_END)
    answered = (off_t != NO_END) & (off_t <= t1)
    failed = ~answered
    # What the feed said in the window: how many readings, and the last value.
    lo_c, hi_c = segment_bounds(cp, feed)
    a = segment_searchsorted(ct, lo_c, hi_c, t0, side="left")
    b = segment_searchsorted(ct, lo_c, hi_c, t1, side="right")
    last_v = np.where(b > a, cv[np.maximum(b - 1, 0)] if len(cv) else np.nan, np.nan)
    return PowerOffResponse(
        trigger=trig,
        relation=rel,
        point_idx=tp[trig],
        feed_idx=feed,
        t=t0,
        answered_at=np.where(answered, off_t, NO_END).astype(np.int64),
        failed=failed,
        start=np.where(failed, t1, NO_END).astype(np.int64),
        end=np.where(failed, off_t, NO_END).astype(np.int64),
        n_feed_readings=(b - a).astype(np.int64),
        last_feed_value=np.asarray(last_v, np.float64),
    )
