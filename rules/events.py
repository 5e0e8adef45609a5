"""Exceedance events: episodes merged by scope and time gap into the unit regulators count.

Each episode carries a scope key (int64): its point, its face, or its mine — the rule pack's
``events.scope`` chooses; `scope_keys` builds the keys per point, and a point with no face
is its own scope under ``face``. Within one scope, episodes sorted by start form one event
while each starts no later than the running maximum end of the event so far plus ``gap_ns``
(rules.md §2, default 10 min): exactly 10 min apart is one event, 11 min is two. An open
episode has an infinite end, so its event is open and swallows every later episode of the
scope until it ends.

An event holds one gas: merge each gas (or finding kind) separately. An event records its
scope, its mine (the first episode's), start (earliest start), end (latest end, -1 while
open), peak (max of the episodes' peaks; min for lower-limit gases) and the first time it
is reached, the highest level, and which episodes it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rules.episodes import Episodes
from rules.errors import RulesError

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]
Scope = Literal["point", "face", "mine"]
SCOPES: tuple[Scope, ...] = ("point", "face", "mine")
_FOREVER = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class Events:
    """Events as struct-of-arrays, ordered by (scope, start)."""

    scope: I64
    mine: I64
    start: I64
    end: I64  # -1 while open
    is_open: Bools
    peak: F64
    peak_ts: I64
    level: I8
    lower: Bools
    first: I64  # offset of the event's first episode in `episode_order`
    count: I64  # number of episodes in the event
    episode_order: I64  # episode indices, grouped by event, by start within an event
    event_of_episode: I64  # per episode (input order), its event

    def __len__(self) -> int:
        return len(self.start)

    def episodes_of(self, event: int) -> I64:
        """The indices of one event's episodes, by start."""
        a = int(self.first[event])
        return self.episode_order[a : a + int(self.count[event])]


def scope_keys(scope: Scope, point_face: I64, point_mine: I64) -> I64:
    """Per point, its merge key: the point, its face (a point with no face, -1, is its own),
    or its mine. Index the result with ``episodes.point_idx``.
    """
    face = np.asarray(point_face, dtype=np.int64)
    if scope == "point":
        return np.arange(len(face), dtype=np.int64)
    if scope == "face":
        # Negative keys for faceless points cannot collide with face ids, which are >= 0.
        return np.where(face >= 0, face, -1 - np.arange(len(face), dtype=np.int64))
    if scope == "mine":
        return np.asarray(point_mine, dtype=np.int64).copy()
    raise RulesError(f"unknown event scope {scope!r}; allowed: {', '.join(SCOPES)}")


def merge_events(episodes: Episodes, scope: I64, mine: I64, *, gap_ns: int) -> Events:
    """Merge episodes into events; ``scope`` and ``mine`` hold one key per episode."""
    ne = len(episodes)
    sc = np.asarray(scope, dtype=np.int64)
    mn = np.asarray(mine, dtype=np.int64)
    if len(sc) != ne or len(mn) != ne:
        raise RulesError("merge_events needs one scope key and one mine per episode")
    if gap_ns < 0:
        raise RulesError(f"merge gap must not be negative, got {gap_ns} ns")
    if ne == 0:
        e = np.zeros(0, np.int64)
        return Events(e, e, e, e, np.zeros(0, np.bool_), np.zeros(0, np.float64), e,
                      np.zeros(0, np.int8), np.zeros(0, np.bool_), e, e, e, e)
    order = np.lexsort((episodes.start, sc))  # stable: ties keep episode order
    s_scope, s_start = sc[order], episodes.start[order]
    s_end = np.where(episodes.is_open[order], _FOREVER, episodes.end[order])
    group_start = np.concatenate(([True], s_scope[1:] != s_scope[:-1]))
    reach = _running_max_by_group(s_end, group_start)
    # An episode opens a new event when it starts more than `gap` after everything before it
    # in its scope has ended (start - gap, not reach + gap: reach may be the int64 maximum).
    new = group_start.copy()
    new[1:] |= s_start[1:] - gap_ns > reach[:-1]
    first = np.flatnonzero(new)
    eid = np.cumsum(new) - 1

    lower = episodes.lower[order][first]
    signed = np.where(lower[eid], -episodes.peak[order], episodes.peak[order])
    best = np.fmax.reduceat(signed, first)
    hit_ts = np.where(signed == best[eid], episodes.peak_ts[order], _FOREVER)
    end = np.maximum.reduceat(s_end, first)
    is_open = end == _FOREVER
    event_of = np.empty(ne, np.int64)
    event_of[order] = eid
    return Events(
        scope=s_scope[first],
        mine=mn[order][first],
        start=s_start[first],
        end=np.where(is_open, -1, end),
        is_open=is_open,
        peak=np.where(lower, -best, best),
        peak_ts=np.minimum.reduceat(hit_ts, first),
        level=np.maximum.reduceat(episodes.level[order], first),
        lower=lower,
        first=first.astype(np.int64),
        count=np.diff(np.append(first, ne)).astype(np.int64),
        episode_order=order.astype(np.int64),
        event_of_episode=event_of,
    )


def _running_max_by_group(values: I64, group_start: Bools) -> I64:
    """Running maximum that restarts at each group start (groups are contiguous).

    numpy has no segmented scan, so values are replaced by their ranks and offset by
    group number × count: later groups then always dominate earlier ones and one plain
    `maximum.accumulate` does the job exactly (no float, no overflow).
    """
    n = len(values)
    by_value = np.argsort(values, kind="stable")
    rank = np.empty(n, np.int64)
    rank[by_value] = np.arange(n)
    offset = (np.cumsum(group_start) - 1) * n
    top = np.maximum.accumulate(offset + rank) - offset
    return np.asarray(values[by_value[top]], dtype=np.int64)
