"""Which readings a geotech kernel reads, and where each reading's trailing window is.

Readings are sorted by (point index, ts), a stable sort of their arrival, so the first stored
of two rows with the same (point, ts) comes first. As for methane episodes (rules.md §1,
`rules.episodes`): a repeat of (point, ts) is ignored whatever either row's status (the first
stored row *is* the reading); a row with an excluded status bit (calibrating, over-range,
station fault, not polled, paused, sensor fault) belongs to the health rules, not here; and a
NaN value says nothing about the ground. `usable_rows` returns the rows left, in order.

A trailing window of duration W at reading i is the rows of the same point with times in
(t_i − W, t_i] — a reading exactly W earlier is out, as for every rolling window of
rules.md (§3, §8's "(t − 24 h, t]"). Bounds are `[start[i], end[i])` with `end[i] = i + 1`,
from `np.searchsorted` over a key that keeps points apart, one call per cache-sized chunk of
whole points (pandas' ``get_window_bounds``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.errors import RulesError

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]

# Keys of one searchsorted batch stay below 2**62 so that key − W never wraps.
_KEY_LIMIT = 1 << 62
# Rows per searchsorted call (whole points): 512 KiB of keys, a binary search in cache.
_CHUNK_ROWS = 1 << 16


def check_sorted(point_idx: I64, ts: I64, *, strict: bool = False) -> tuple[I64, I64]:
    """The arrays as int64, after checking they are sorted by (point, ts) (strictly: no repeats)."""
    p, t, _ = _sorted_with_stalls(point_idx, ts, strict=strict)
    return p, t


def _sorted_with_stalls(point_idx: I64, ts: I64, *, strict: bool) -> tuple[I64, I64, I64]:
    """`check_sorted`, and the rows i whose next time is not later (t[i + 1] <= t[i])."""
    p = np.asarray(point_idx, dtype=np.int64)
    t = np.asarray(ts, dtype=np.int64)
    if len(p) != len(t):
        raise RulesError("point_idx and ts must have the same length")
    stalls = np.zeros(0, np.int64)
    if len(p) > 1:
        # Times fall back only where a new point starts, so the few backward (or repeated)
        # steps are found first and only their points compared: two cheap passes, not six.
        stalls = np.flatnonzero(t[1:] <= t[:-1])
        back = stalls if strict else stalls[t[stalls + 1] < t[stalls]]
        if not bool(np.all(p[1:] >= p[:-1])) or bool(np.any(p[back + 1] == p[back])):
            what = " with one row per (point, ts); use usable_rows" if strict else "; use a stable sort"
            raise RulesError(f"readings must be sorted by (point, ts){what}")
    return p, t, stalls


def usable_rows(
    point_idx: I64,
    ts: I64,
    values: F64,
    status: NDArray[np.integer] | None = None,
    *,
    exclude_mask: int = DEFAULT_EXCLUDE_MASK,
) -> I64:
    """Indices of the rows the geotech kernels read: the first of each (point, ts), not
    excluded by status, with a finite value."""
    p, t, stalls = _sorted_with_stalls(point_idx, ts, strict=False)
    v = np.asarray(values, dtype=np.float64)
    if len(v) != len(p) or (status is not None and len(status) != len(p)):
        raise RulesError("every per-reading array must have the same length")
    keep = np.isfinite(v)
    # Repeats and excluded statuses are rare: found from their few rows, not with full masks.
    same = stalls[t[stalls + 1] == t[stalls]] + 1
    keep[same[p[same] == p[same - 1]]] = False
    if status is not None:
        st = np.asarray(status)
        flagged = np.flatnonzero(st)
        keep[flagged[(st[flagged] & exclude_mask) != 0]] = False
    return np.flatnonzero(keep).astype(np.int64, copy=False)


def segment_starts(point_idx: I64) -> I64:
    """First row of each point's run of rows."""
    p = np.asarray(point_idx, dtype=np.int64)
    if len(p) == 0:
        return np.zeros(0, np.int64)
    return np.append(0, np.flatnonzero(p[1:] != p[:-1]) + 1).astype(np.int64, copy=False)


def segments(point_idx: I64) -> tuple[I64, I64]:
    """First row of each point's run of rows, and per row the index of its run."""
    first = segment_starts(point_idx)
    seg = np.repeat(np.arange(len(first), dtype=np.int64), np.diff(np.append(first, len(point_idx))))
    return first, seg


# Every this many queries one is searched; the others guess from it and check the guess.
_SAMPLE_EVERY = 16


def _right_ranks(key: I64, query: I64) -> I64:
    """``np.searchsorted(key, query, side="right")`` for ascending ``key`` and ``query`` with
    ``query[i] < key[i]`` (a trailing window's left edge): per query, the first row whose key is
    above it.

    A binary search per query costs about 17 dependent probes of 100 k keys. Here only the
    first query of each block of `_SAMPLE_EVERY` (and the last query) is searched. Ranks only
    grow with the query, so a block whose rank does not move up to the next block's first
    query has that rank throughout (a point's first day: its windows all start at its first
    row). In the others each query guesses the block's lag behind its own row (readings at a
    steady period), and a guess g is the answer exactly when ``key[g − 1] <= query < key[g]``:
    two gathers to check. The few wrong guesses (a duplicate or an outage entering or leaving
    the window, a new point) are searched.
    """
    n = len(key)
    if n <= _SAMPLE_EVERY:
        return np.searchsorted(key, query, side="right")
    at = np.arange(0, n, _SAMPLE_EVERY)
    sampled = np.searchsorted(key, query[np.append(at, n - 1)], side="right")
    low = sampled[:-1]
    rank = np.repeat(low, _SAMPLE_EVERY)[:n]
    rows = np.flatnonzero(np.repeat(sampled[1:] != low, _SAMPLE_EVERY)[:n])
    if len(rows) == 0:
        return rank
    # The guess lies in [the block's first rank, its own row]. A guess of 0 reads key[−1], the
    # largest key, above every query: it counts as wrong and is searched.
    guess = rows - np.repeat(at - low, _SAMPLE_EVERY)[rows]
    q = query[rows]
    ok = (key[guess] > q) & (key[guess - 1] <= q)
    rank[rows] = guess
    wrong = rows[~ok]
    rank[wrong] = np.searchsorted(key, query[wrong], side="right")
    return rank


def trailing_bounds(point_idx: I64, ts: I64, window_ns: int) -> tuple[I64, I64]:
    """Per reading, the rows of its point with times in (t − W, t]: ``[start, end)``."""
    if window_ns <= 0:
        raise RulesError(f"a trailing window must be positive, got {window_ns} ns")
    p, t = check_sorted(point_idx, ts)
    n = len(p)
    end = np.arange(1, n + 1, dtype=np.int64)
    if n == 0:
        return np.zeros(0, np.int64), end
    first = segment_starts(p)
    origin = t[first]
    seg_end = np.append(first[1:], n)
    span = t[seg_end - 1] - origin
    # Each point's times become offset + (t − its first time); offsets leave W + 1 ns between
    # points, so t − W of one point never reaches back into the previous point's keys.
    width = span + (window_ns + 1)
    if bool(np.any(width >= _KEY_LIMIT // 2)):
        raise RulesError("a point's readings span more than 73 years; split the evaluation")
    start = np.empty(n, np.int64)
    a = 0
    while a < len(first):
        # One searchsorted per chunk of whole points (a window never leaves its point): about
        # _CHUNK_ROWS rows, so the binary search runs in cache; and keys that fit in int64 —
        # the float sum only picks the chunk, with a factor 2 to spare for its rounding.
        rows_to = np.searchsorted(first, first[a] + _CHUNK_ROWS, side="left")
        reach = np.cumsum(width[a:rows_to + 1].astype(np.float64))
        b = a + max(1, min(int(np.searchsorted(reach, _KEY_LIMIT / 2, side="right")), int(rows_to) - a))
        w = width[a:b]
        offsets = np.cumsum(w) - w - origin[a:b]
        lo, hi = int(first[a]), int(seg_end[b - 1])
        key = np.repeat(offsets, seg_end[a:b] - first[a:b]) + t[lo:hi]
        start[lo:hi] = _right_ranks(key, key - window_ns) + lo
        a = b
    return start, end
