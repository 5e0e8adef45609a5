"""Over-capacity (`over_capacity`, rules.md §7): head counts above an approved limit for long enough.

Input: head-count step functions (`presence.head_counts`) — per area from presence intervals,
or for the whole mine from stays under one key — and a limit per key (-1: no approved count,
never over). Per key:

- a span is a maximal run of time with count > limit; the step function is known up to
  ``now_ns``, so a span still over at ``now_ns`` is open (``end == -1``) and has lasted
  ``now_ns - start`` so far;
- a span is a finding when it lasts at least ``over_capacity_min_ns`` (default 5 min: 4 min
  59 s is a shift-change surge, 5 min is a finding); its start is the span's start, its end
  the instant the count fell back to the limit or below;
- its level is ``major`` when, within the span, the count stays above limit × (1 + pct/100)
  (default 1.2 ×; exactly 1.2 × is warning) for at least the same minimum duration, else
  ``warning``; ``major_start`` is where the first such run began (-1 if none);
- evidence: the peak count and the first time it was reached, and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.params import DEFAULT_PARAMS, PersonnelParams
from rules.personnel.presence import Steps

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
Bools = NDArray[np.bool_]
RULE = "over_capacity"
LEVEL_WARNING, LEVEL_MAJOR = 1, 2
LEVEL_NAMES = {LEVEL_WARNING: "warning", LEVEL_MAJOR: "major"}


@dataclass(frozen=True, eq=False)
class OverCapacity:
    """Over-capacity findings ordered by (key, start)."""

    key: I64  # the area index, or the mine's key
    start: I64
    end: I64  # -1 while open
    is_open: Bools
    level: I8  # LEVEL_WARNING / LEVEL_MAJOR
    major_start: I64  # start of the first run above the major limit long enough, -1 if none
    peak: I64
    peak_ts: I64
    limit: I64

    def __len__(self) -> int:
        return len(self.start)


def over_capacity(steps: Steps, limits: I64, *, now_ns: int, params: PersonnelParams = DEFAULT_PARAMS) -> OverCapacity:
    """Over-capacity findings of step functions against ``limits`` (indexed by key, -1 none)."""
    key, time, count = steps.key, steps.time, steps.count
    lim_by_key = np.asarray(limits, dtype=np.int64)
    n = len(time)
    if n and (int(key.min()) < 0 or int(key.max()) >= len(lim_by_key)):
        raise RulesError("every step's key must index the limits")
    if n and int(time.max()) > now_ns:
        raise RulesError("head counts are known up to now_ns; a step lies after it")
    if n == 0:
        return _empty()
    lim = lim_by_key[key]
    has = lim >= 0
    over = has & (count > lim)
    major = has & (count * 100 > lim * (100 + params.major_excess_pct))
    last_of_key = np.ones(n, np.bool_)
    last_of_key[:-1] = key[1:] != key[:-1]
    # Each step holds until the next step of its key; the last one until now (still running).
    until = np.empty(n, np.int64)
    until[:-1] = time[1:]
    until[last_of_key] = now_ns

    o_first, o_last = _runs(over, last_of_key)
    if len(o_first) == 0:
        return _empty()
    o_start, o_until = time[o_first], until[o_last]
    o_open = last_of_key[o_last]
    o_long = o_until - o_start >= params.over_capacity_min_ns

    m_first, m_last = _runs(major, last_of_key)
    m_start = time[m_first]
    m_long = until[m_last] - m_start >= params.over_capacity_min_ns
    # Major rows are over rows, so each major run lies inside one over run: the last over run
    # starting at or before it.
    m_span = np.searchsorted(o_first, m_first[m_long], side="right") - 1
    major_start = np.full(len(o_first), -1, np.int64)
    # Reversed assignment: for spans with several long major runs, the earliest one wins.
    major_start[m_span[::-1]] = m_start[m_long][::-1]

    # Peak and its first time over the rows of each span (non-over rows in between count -1).
    masked = np.where(over, count, -1)
    peak = np.maximum.reduceat(masked, o_first)
    mark = np.zeros(n, np.int64)
    mark[o_first] = 1
    span_of_row = np.cumsum(mark) - 1
    hit = np.flatnonzero(over & (masked == peak[np.maximum(span_of_row, 0)]))
    first_hit = hit[np.searchsorted(span_of_row[hit], np.arange(len(o_first)))]

    sel = np.flatnonzero(o_long)
    return OverCapacity(
        key=key[o_first][sel],
        start=o_start[sel],
        end=np.where(o_open, -1, o_until)[sel].astype(np.int64),
        is_open=o_open[sel],
        level=np.where(major_start >= 0, LEVEL_MAJOR, LEVEL_WARNING).astype(np.int8)[sel],
        major_start=major_start[sel],
        peak=peak[sel],
        peak_ts=time[first_hit][sel],
        limit=lim[o_first][sel],
    )


def _runs(mask: Bools, last_of_key: Bools) -> tuple[I64, I64]:
    """First and last row of each maximal run of true rows that does not cross a key."""
    n = len(mask)
    before = np.zeros(n, np.bool_)
    before[1:] = mask[:-1] & ~last_of_key[:-1]  # the previous row is in a run of the same key
    after = np.zeros(n, np.bool_)
    after[:-1] = mask[1:] & ~last_of_key[:-1]
    return np.flatnonzero(mask & ~before), np.flatnonzero(mask & ~after)


def _empty() -> OverCapacity:
    z = np.zeros(0, np.int64)
    return OverCapacity(z, z, z, np.zeros(0, np.bool_), np.zeros(0, np.int8), z, z, z, z)
