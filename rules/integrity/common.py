"""What every integrity kernel shares: array types, input checks, first-wins rows, and
searches inside the per-point (or per-group) segments of sorted arrays.

Readings arrive sorted by (point index, ts) — a stable sort, so of two rows with the same
(point, ts) the first stored comes first and is *the* reading (rules.md §1: "readings with
the same point and time count once (the first stored)"). Times are int64 ns UTC.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.errors import RulesError

I64 = NDArray[np.int64]
I16 = NDArray[np.int16]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]

S = 1_000_000_000
MINUTE = 60 * S
HOUR = 60 * MINUTE
NO_END = -1  # the end of a span that is still open (as `rules.episodes` spells it)
CONSIDERED_EXCLUDE_MASK = DEFAULT_EXCLUDE_MASK  # rules.md §1: the bits that make a reading not considered


def as_i64(a: object) -> I64:
    """An int64 array view or copy of ``a``."""
    return np.asarray(a, dtype=np.int64)


def checked_readings(point_idx: object, ts: object, *others: object, what: str = "readings") -> tuple[I64, I64]:
    """Point and time arrays of rows sorted by (point, ts), checked for equal lengths and order."""
    p, t = as_i64(point_idx), as_i64(ts)
    n = len(p)
    if len(t) != n or any(len(np.asarray(o)) != n for o in others):
        raise RulesError(f"every per-row array of the {what} must have the same length")
    if n > 1:
        same = p[1:] == p[:-1]
        if bool(np.any(p[1:] < p[:-1])) or bool(np.any(same & (t[1:] < t[:-1]))):
            raise RulesError(f"{what} must be sorted by (point, ts); use a stable sort")
    return p, t


def per_point(value: object, n_points: int, what: str) -> I64:
    """A per-point int64 array from a scalar or an array of length ``n_points``."""
    a = as_i64(value)
    if a.ndim == 0:
        return np.full(n_points, int(a), np.int64)
    if len(a) < n_points:
        raise RulesError(f"{what} needs one value per point ({n_points}), got {len(a)}")
    return a


def first_of_time(p: I64, t: I64) -> Bools:
    """Per row: it is the first stored row of its (point, ts) — the one that counts."""
    keep = np.ones(len(p), np.bool_)
    if len(p) > 1:
        keep[1:] = (t[1:] != t[:-1]) | (p[1:] != p[:-1])
    return keep


def considered(p: I64, t: I64, values: F64, status: NDArray[np.integer], exclude_mask: int) -> Bools:
    """Per row: a considered reading (rules.md §1) — first of its (point, ts), no excluded
    status bit, and a value (NaN is no value: it can neither equal nor differ from another)."""
    st = np.asarray(status)
    return np.asarray(first_of_time(p, t) & ((st & exclude_mask) == 0) & ~np.isnan(values), dtype=np.bool_)


def segment_bounds(sorted_keys: I64, keys: I64) -> tuple[I64, I64]:
    """For each key, the index range [lo, hi) of its rows in a sorted key array."""
    return (np.searchsorted(sorted_keys, keys, side="left").astype(np.int64),
            np.searchsorted(sorted_keys, keys, side="right").astype(np.int64))


def segment_searchsorted(values: I64, lo: I64, hi: I64, queries: I64, side: str = "left") -> I64:
    """`np.searchsorted` of each query inside its own sorted slice ``values[lo:hi]``.

    The answer is an index into ``values`` in [lo, hi]. A vectorized bisection: every query
    halves its own range in each pass, so ~log2(longest slice) passes over the queries.
    """
    a, b = as_i64(lo).copy(), as_i64(hi).copy()
    q = as_i64(queries)
    if len(values) == 0:
        return a
    right = side == "right"
    while True:
        active = a < b
        if not bool(np.any(active)):
            return a
        mid = (a + b) // 2
        v = values[np.minimum(mid, len(values) - 1)]
        go_right = active & ((v <= q) if right else (v < q))
        go_left = active & ~go_right
        a = np.where(go_right, mid + 1, a)
        b = np.where(go_left, mid, b)


def segmented_cummax(values: I64, segment_start: Bools) -> I64:
    """Running maximum of int64 values that restarts where ``segment_start`` is true.

    numpy has no segmented scan; values are replaced by their ranks offset by segment
    number × count, so later segments dominate earlier ones and one plain
    `maximum.accumulate` gives the exact answer (no float, no overflow).
    """
    n = len(values)
    if n == 0:
        return values.copy()
    by_value = np.argsort(values, kind="stable")
    rank = np.empty(n, np.int64)
    rank[by_value] = np.arange(n)
    offset = (np.cumsum(segment_start) - 1) * n
    top = np.maximum.accumulate(offset + rank) - offset
    return np.asarray(values[by_value[top]], dtype=np.int64)


def run_starts(p: I64, same_as_previous: Bools) -> Bools:
    """Per row, whether it starts a run: a new point, or not continuing the previous row."""
    start = np.ones(len(p), np.bool_)
    if len(p) > 1:
        start[1:] = (p[1:] != p[:-1]) | ~same_as_previous
    return start


def ranges(lengths: I64) -> I64:
    """0..len-1 for each length, concatenated (the offsets inside repeated segments)."""
    n = as_i64(lengths)
    ends = np.cumsum(n)
    total = int(ends[-1]) if len(ends) else 0
    return (np.arange(total, dtype=np.int64) - np.repeat(ends - n, n)).astype(np.int64)


def rows_of_points(p: I64, points: I64) -> I64:
    """The row indices of the given points' readings in rows sorted by point, in row order
    (so a kernel that reads a few points touches only their rows)."""
    wanted = np.unique(as_i64(points))
    lo, hi = segment_bounds(p, wanted)
    n = hi - lo
    return (np.repeat(lo, n) + ranges(n)).astype(np.int64)
