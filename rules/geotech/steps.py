"""Levels as step functions over time, and the spans at blue or above they make.

A step function of keys (points, quantities, ponds) is a list of steps ``(key, ts, level)``
sorted by (key, ts): from a step's time the key is at its level until its next step. Before a
key's first step its level is none (0), and each step changes the level, so a key that never
leaves none has no step. Rules.md §8: a point level span ends at the first reading below it,
so a point's steps come from its readings alone — silence holds the level (style.md §16:
silence is a finding of its own, never a resolution).

A span is a maximal stretch of one key at blue or above (rules.md "Findings at a glance":
`tailings_warning` / `slope_warning` cover "the span at blue or above"): it starts at the step
that leaves none and ends at the step back to none (``end`` −1 while open); its level may rise
and fall inside (one finding, one case; its level is the highest reached, ``peak``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import BLUE
from rules.geotech.windows import check_sorted

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Steps:
    """A step function as struct-of-arrays, sorted by (key, ts).

    ``row``: for a point's steps, the reading row that made the step; for a ladder's, the
    input step that completed the instant. ``raised``: the ladder's count rule, not a single
    member, set the level (always False for a point's steps).
    """

    key: I64
    ts: I64
    level: I8
    row: I64
    raised: Bools

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: I64 | Bools) -> Steps:
        """The steps an index or mask selects, in that order."""
        return Steps(*(getattr(self, f.name)[index] for f in fields(self)))

    @classmethod
    def empty(cls) -> Steps:
        """No steps."""
        i64 = np.zeros(0, np.int64)
        return cls(i64, i64, np.zeros(0, np.int8), i64, np.zeros(0, np.bool_))

    def level_at(self, key: int, ts: int) -> int:
        """The level of one key at one time (0 before its first step)."""
        a, b = np.searchsorted(self.key, key, side="left"), np.searchsorted(self.key, key, side="right")
        i = int(np.searchsorted(self.ts[a:b], ts, side="right"))
        return 0 if i == 0 else int(self.level[a + i - 1])


@dataclass(frozen=True, eq=False)
class Spans:
    """Spans at blue or above, sorted by (key, start): ``steps[first : first + count]`` are the
    steps inside (the closing step excluded)."""

    key: I64
    start: I64
    end: I64  # −1 while open
    peak: I8
    first: I64
    count: I64

    def __len__(self) -> int:
        return len(self.start)


def level_steps(point_idx: I64, ts: I64, level: I8) -> Steps:
    """The step function of per-reading levels of readings sorted by (point, ts), one per
    (point, ts) (see `windows.usable_rows`): a step at each reading whose level differs from
    its point's previous reading (from none at the point's first)."""
    p, t = check_sorted(point_idx, ts, strict=True)
    lv = np.asarray(level, dtype=np.int8)
    if len(lv) != len(p):
        raise RulesError("point_idx, ts and level must have the same length")
    if len(p) == 0:
        return Steps.empty()
    prev = np.empty_like(lv)
    prev[0] = 0
    prev[1:] = lv[:-1]
    prev[1:][p[1:] != p[:-1]] = 0
    rows = np.flatnonzero(lv != prev).astype(np.int64)
    return Steps(p[rows], t[rows], lv[rows], rows, np.zeros(len(rows), np.bool_))


def spans(steps: Steps, at_least: int = BLUE) -> Spans:
    """The maximal spans of each key at level ``at_least`` or above (default blue)."""
    n = len(steps)
    z = np.zeros(0, np.int64)
    if n == 0:
        return Spans(z, z, z, np.zeros(0, np.int8), z, z)
    key = steps.key
    above = steps.level >= at_least
    new_key = np.empty(n, np.bool_)
    new_key[0] = True
    np.not_equal(key[1:], key[:-1], out=new_key[1:])
    was = np.empty(n, np.bool_)
    was[0] = False
    was[1:] = above[:-1]
    was[new_key] = False
    opens = np.flatnonzero(above & ~was)
    if len(opens) == 0:
        return Spans(z, z, z, np.zeros(0, np.int8), z, z)
    # A span's closing step is the first close after its opening one, if it is of the same key
    # (n stands for "no close left").
    closes = np.append(np.flatnonzero(~above & was), n)
    close_row = closes[np.searchsorted(closes, opens)]
    key_end = np.append(np.flatnonzero(new_key)[1:], n)[np.cumsum(new_key)[opens] - 1]
    has_close = close_row < key_end
    stop = np.where(has_close, close_row, key_end)  # exclusive: the steps of the span
    # reduceat runs each segment to the next opening; the steps between a span's stop and the
    # next opening (or another key's below-level steps) are all below at_least, so the maximum
    # is the span's own.
    peak = np.maximum.reduceat(steps.level, opens)
    end = np.where(has_close, steps.ts[np.minimum(close_row, n - 1)], -1)
    return Spans(key[opens], steps.ts[opens], end.astype(np.int64), peak.astype(np.int8),
                 opens.astype(np.int64), (stop - opens).astype(np.int64))
