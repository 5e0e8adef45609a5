"""Under-reporting: the episodes Minewatch computed from a mine's readings that none of the
mine's own YCBJ alarm records covers, per mine and local day (`under_reporting`).

rules.md §6: "For each mine and local day: every computed episode of an analog methane point
that no YCBJ record of the same point overlaps in time (over-limit or power-off alarm types
001 / 002) counts as unreported; one finding per mine and day with any unreported episode,
listing them. Evaluated once the day is complete and its files had 2 h to arrive."

- An episode [start, end] (an open one has no end) is covered by a record [start, end] of
  the same point with an alarm code (001 / 002; a record still going on has no end) when the
  two closed intervals share an instant: record.start <= episode.end and episode.start <=
  record.end. A record that overlaps the episode by one second covers it; one that ends one
  second before the episode starts does not. (Closed, so that a one-reading episode, whose
  end is its start, can be covered at all.)
- The episode belongs to the local day of its start (the mine's zone, `rules.integrity.shifts`).
  A day is judged once ``now_ns >= day end + grace_ns``; later days are left for later.
- The caller passes the episodes of analog methane points only (`rules.episodes` output,
  filtered by the registry).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.calendar import DEFAULT_ZONE
from rules.integrity.common import (
    HOUR,
    I64,
    Bools,
    as_i64,
    segment_bounds,
    segment_searchsorted,
    segmented_cummax,
)
from rules.integrity.shifts import DAY_START_HOURS, local_boundaries, period_of

_FOREVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class UnderReportingParams:
    """Defaults of rules.md §6 `under_reporting`."""

    alarm_codes: tuple[str, ...] = ("001", "002")  # §6 / formats.md YCBJ: over-limit, power-off alarm
    grace_ns: int = 2 * HOUR  # §6: "its files had 2 h to arrive (configurable)"
    timezone: str = DEFAULT_ZONE  # rules.md: local days, default Asia/Shanghai


@dataclass(frozen=True, eq=False)
class UnderReported:
    """One finding per (mine, local day) with unreported episodes, ordered by (mine, day)."""

    mine: I64
    day_start: I64
    day_end: I64
    first: I64  # offset of the finding's episodes in `episode_order`
    count: I64
    episode_order: I64  # unreported episode indices, grouped by finding, by start
    covered: Bools  # per episode (input order): some record covers it
    judged: Bools  # per episode: its day is complete and past the grace

    def __len__(self) -> int:
        return len(self.day_start)

    def episodes_of(self, finding: int) -> I64:
        """The unreported episodes of one finding."""
        a = int(self.first[finding])
        return self.episode_order[a: a + int(self.count[finding])]


def covered_episodes(
    episode_point: I64, episode_start: I64, episode_end: I64,
    record_point: I64, record_start: I64, record_end: I64, record_code: NDArray[np.str_],
    params: UnderReportingParams = UnderReportingParams(),
) -> Bools:
    """Per episode, whether an alarm record of its point overlaps it (end -1: open)."""
    keep = np.isin(np.asarray(record_code), params.alarm_codes)
    rp, rs, re = as_i64(record_point)[keep], as_i64(record_start)[keep], as_i64(record_end)[keep]
    re = np.where(re < 0, _FOREVER, re)
    order = np.lexsort((rs, rp))
    rp, rs, re = rp[order], rs[order], re[order]
    new = np.concatenate(([True], rp[1:] != rp[:-1])) if len(rp) else np.zeros(0, np.bool_)
    reach = segmented_cummax(re, new)  # latest record end among those started so far
    ep, es = as_i64(episode_point), as_i64(episode_start)
    ee = np.where(as_i64(episode_end) < 0, _FOREVER, as_i64(episode_end))
    lo, hi = segment_bounds(rp, ep)
    # Records of the point that start no later than the episode ends ...
    i = segment_searchsorted(rs, lo, hi, ee, side="right")
    # ... of which the latest-ending one must end no earlier than the episode starts.
    has = i > lo
    r = reach[np.maximum(i - 1, 0)] if len(reach) else np.zeros(len(ep), np.int64)
    return np.asarray(has & (r >= es), dtype=np.bool_)


def under_reported(
    episode_point: I64, episode_start: I64, episode_end: I64, *,
    point_mine: I64,
    record_point: I64, record_start: I64, record_end: I64, record_code: NDArray[np.str_],
    now_ns: int,
    params: UnderReportingParams = UnderReportingParams(),
) -> UnderReported:
    """Findings per (mine, local day) of the complete days; see the module docstring."""
    ep, es = as_i64(episode_point), as_i64(episode_start)
    covered = covered_episodes(ep, es, episode_end, record_point, record_start, record_end,
                               record_code, params)
    if len(es) == 0:
        z = np.zeros(0, np.int64)
        return UnderReported(z, z, z, z, z, z, covered, np.zeros(0, np.bool_))
    bounds = local_boundaries(int(es.min()), int(es.max()), params.timezone, DAY_START_HOURS)
    day = period_of(es, bounds)
    judged = bounds[day + 1] + params.grace_ns <= now_ns
    mine = as_i64(point_mine)[ep]
    pick = np.flatnonzero(judged & ~covered)
    order = pick[np.lexsort((es[pick], day[pick], mine[pick]))]
    m_o, d_o = mine[order], day[order]
    new = np.concatenate(([True], (m_o[1:] != m_o[:-1]) | (d_o[1:] != d_o[:-1]))) if len(order) else np.zeros(0, np.bool_)
    first = np.flatnonzero(new).astype(np.int64)
    return UnderReported(
        mine=m_o[first],
        day_start=bounds[d_o[first]],
        day_end=bounds[d_o[first] + 1],
        first=first,
        count=np.diff(np.append(first, len(order))).astype(np.int64),
        episode_order=order.astype(np.int64),
        covered=covered,
        judged=np.asarray(judged, dtype=np.bool_),
    )
