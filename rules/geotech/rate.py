"""Displacement rate: the least-squares slope of cumulative displacement over a trailing window;
and cumulative displacement against the slope height.

rules.md §8: per point, the displacement rate is the least-squares slope of cumulative
displacement over a trailing window — 24 h for thresholds in mm/day, 1 h for mm/h (reference
thresholds: > 10 mm/day on pit slopes, ≥ 5 mm/h on working benches, dump slopes 25–50 cm/day;
each point's own come from the registry). Cumulative displacement is a concern above
6×10⁻³ × the slope height.

`least_squares` is the kernel over ``(x, y, start, end)``: from prefix sums of x, y, x², xy
(and y² for r²), per window the centred sums Sxx = Σx² − (Σx)²/n, Sxy = Σxy − ΣxΣy/n, then
slope Sxy/Sxx, intercept (Σy − slope Σx)/n and r² = Sxy² / (Sxx Syy). Times are taken relative
to each point's first reading, in the rate's unit (days for mm/day), so the prefix sums stay
small, and the prefix sums restart at each point (``restart``), so one point's history does
not inflate another's rounding. Prefix differences still lose digits when a window's spread
is tiny against the prefix sums (two readings a second apart after an outage, days into the
history): a window whose Sxx is below `_CONDITION` × its prefix sums of x² is recomputed
directly with two-pass centred sums over its own rows (a handful of windows in real data).
The answer then agrees with a plain two-pass loop to about 1e-9 relative, not to the bit —
summation order differs — which is why the tests compare with a tolerance. A window of fewer than
``min_points`` readings (a line needs two) has no rate (NaN).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import NS_PER_DAY, NS_PER_HOUR
from rules.geotech.windows import segment_starts, trailing_bounds

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
Bools = NDArray[np.bool_]
G = TypeVar("G", bound=np.generic)

# rules.md §8: cumulative displacement > 6×10⁻³ × slope height (both in one length unit).
CUMULATIVE_FACTOR = 6e-3
MM_PER_M = 1000.0  # displacement is in mm, the registry's slope_height_m in m
# Windows with Sxx below this fraction of their prefix sums of x² are recomputed directly: the
# prefix difference's rounding (~1e-16 × the prefix, times the square root of the rows summed)
# could otherwise exceed ~1e-8 of Sxx. In steady data no window comes near it: a day of
# minute readings at day 30 of a point's history has Sxx ≈ 1e-5 × its prefix.
_CONDITION = 1e-6
# Prefix sums restart at every point, except that points of a few rows are summed together
# up to this many: a point must not inherit a long neighbour's sums (its windows would all
# come out frail and be recomputed one by one), while a cumsum call per tiny point would
# cost more than the few rows it sums.
_GROUP_ROWS = 64


@dataclass(frozen=True)
class RateParams:
    """Trailing window and the time unit of the rate (rules.md §8: 24 h for mm/day, 1 h for
    mm/h); ``min_points``: a least-squares line needs two readings."""

    window_ns: int = NS_PER_DAY
    unit_ns: int = NS_PER_DAY
    min_points: int = 2

    def __post_init__(self) -> None:
        if self.window_ns <= 0 or self.unit_ns <= 0 or self.min_points < 2:
            raise RulesError(f"a rate needs a positive window and unit and min_points >= 2, got {self}")


PER_DAY = RateParams()  # mm/day over 24 h
PER_HOUR = RateParams(window_ns=NS_PER_HOUR, unit_ns=NS_PER_HOUR)  # mm/h over 1 h


@dataclass(frozen=True, eq=False)
class LineFit:
    """Per window: least-squares slope, intercept (at x = 0), r² (NaN when y is constant) and
    the number of points fitted; slope and intercept NaN when fewer than min_points."""

    slope: F64
    intercept: F64
    r2: F64
    n: F64


def time_axis(point_idx: I64, ts: I64, unit_ns: int) -> tuple[F64, I64]:
    """Per reading, its time since its point's first reading in ``unit_ns`` units, and that
    first reading's time (int64 ns): the x of the fits and its origin."""
    t = np.asarray(ts, dtype=np.int64)
    origin = per_row(t, segment_starts(point_idx))
    # The int64 difference is exact; as a float it is exact up to 104 days of ns.
    return (t - origin) / float(unit_ns), origin


def per_row(values: NDArray[G], first: I64) -> NDArray[G]:
    """Each row's copy of its segment's first value (segments start at ``first``)."""
    if len(values) == 0:
        return values.copy()
    return np.repeat(values[first], np.diff(np.append(first, len(values))))


def least_squares(x: F64, y: F64, start: I64, end: I64, *, restart: I64 | None = None,
                  weight: Bools | None = None, min_points: int = 2, with_r2: bool = True,
                  with_intercept: bool = True) -> LineFit:
    """Per window ``[start, end)`` the least-squares line of y on x over its rows (only rows
    with ``weight`` true when given). ``restart``: sorted first rows of the segments (points)
    no window crosses — the prefix sums restart there, so one point's history does not
    inflate another's rounding; None: one segment. Without ``with_r2`` / ``with_intercept``
    those come back NaN (the rate needs neither)."""
    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    a, b = np.asarray(start, np.int64), np.asarray(end, np.int64)
    if len(xs) != len(ys) or len(a) != len(b):
        raise RulesError("x and y, and start and end, must have the same lengths")
    if len(a) == 0:
        z = np.zeros(0)
        return LineFit(z, z, z, z)
    w = None if weight is None else np.asarray(weight, np.bool_)
    if w is not None:
        xs, ys = np.where(w, xs, 0.0), np.where(w, ys, 0.0)
    # The summed columns x, y, x², xy (y², weight), each written straight into its place.
    cols: list[Callable[[F64], object]] = [
        lambda out: np.copyto(out, xs), lambda out: np.copyto(out, ys),
        lambda out: np.multiply(xs, xs, out=out), lambda out: np.multiply(xs, ys, out=out)]
    if with_r2:
        cols.append(lambda out: np.multiply(ys, ys, out=out))
    if w is not None:
        cols.append(lambda out: np.copyto(out, w))  # 1.0 where weighted, else 0.0
    groups = _groups(restart, len(xs))
    # Trailing windows end at their own row (end = i + 1): P[last] is P itself, no gather,
    # and none is empty.
    trailing = len(b) == len(xs) and bool(b[0] == 1) and bool(np.all(np.diff(b) == 1))
    nonempty = None if trailing else b > a
    first = a if nonempty is None else np.where(nonempty, a, 0)
    last = None if nonempty is None else np.where(nonempty, b - 1, 0)
    # Window sums from inclusive prefixes, P[last] − (P[first] − v[first]), both in one
    # segment; in place, for every temporary is a pass over fresh memory. The prefix of x²
    # (and y²) at both ends is kept as the scale of the frailty check below.
    # Columns go two by two as the real and imaginary parts of one complex array: complex
    # addition is the two float additions, so every sum has the same bits as column by column,
    # and numpy's complex prefix sum runs as fast per element as its float one (it is latency
    # bound), so two columns cost one pass.
    sums, scales = [], []
    for k in range(0, len(cols), 2):
        pair = np.empty(len(xs), np.complex128)
        cols[k](pair.real)
        if k + 1 < len(cols):
            cols[k + 1](pair.imag)
        else:
            pair.imag = 0.0
        pc = _segmented_prefix(pair, groups)
        at_last = pc if last is None else pc[last]
        if k in (2, 4):
            low = pc[first]
            scales.append(at_last.real + low.real)
            low -= pair[first]
        else:
            # P[first] − v[first] from one gather of P − v (no scale wanted from this pair).
            np.subtract(pc, pair, out=pair)
            low = pair[first]
        np.subtract(at_last, low, out=low)
        sums += [low.real, low.imag]
    del sums[len(cols):]
    sx, sy, cxx, cxy = sums[0], sums[1], sums[2], sums[3]
    cyy = sums[4] if with_r2 else np.empty(len(a))  # never read without r² (the redo writes it)
    n = sums[-1] if w is not None else np.subtract(b, a, dtype=np.float64)  # exact: counts < 2**53
    if nonempty is not None:
        n[~nonempty] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = sx / n
        term = sx * mx
        cxx -= term  # Sxx − (Σx)²/n
        np.multiply(sy, mx, out=term)
        cxy -= term  # Sxy − ΣxΣy/n
        if with_r2:
            cyy -= sy * sy / n
    # Sxx (and Syy when r² is wanted) too small against the prefix sums they came from: too
    # few digits left, recompute. A constant y lands here too (its Syy is rounding noise) and
    # comes out exactly flat: slope 0, no r².
    frail = cxx <= _CONDITION * scales[0]
    if with_r2:
        frail |= cyy <= _CONDITION * scales[1]
    enough = n >= min_points
    redo = np.flatnonzero(frail & enough)
    if len(redo):
        cxx[redo], cxy[redo], cyy[redo] = _centred(xs, ys, a[redo], b[redo], w)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = enough & (cxx > 0)
        slope = np.divide(cxy, cxx, out=np.full(len(a), np.nan), where=ok)
        # What is not wanted is NaN, one read-only row for both (the rate wants neither).
        unwanted = np.broadcast_to(np.float64(np.nan), (len(a),))
        intercept = np.where(ok, (sy - slope * sx) / n, np.nan) if with_intercept else unwanted
        # Without Syy (with_r2 false) there is no r²; with a constant y there is none either.
        r2 = np.where(ok & (cyy > 0) & with_r2, cxy * cxy / (cxx * cyy), np.nan) if with_r2 else unwanted
    return LineFit(slope, intercept, r2, n)


def _centred(x: F64, y: F64, start: I64, end: I64, weight: Bools | None) -> tuple[F64, F64, F64]:
    """Sxx, Sxy, Syy of each window by two passes over its own rows, for the windows whose
    prefix differences are not precise enough; each holds >= 2 (weighted) rows. x is centred
    on its mean; y is first taken relative to the window's first y (the sums do not change,
    and a constant y gives exactly 0), then centred."""
    lengths = end - start
    owner = np.repeat(np.arange(len(start)), lengths)
    rows = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    if weight is not None:
        keep = weight[rows]
        owner, rows = owner[keep], rows[keep]
    cut = np.searchsorted(owner, np.arange(len(start)))
    count = np.diff(np.append(cut, len(rows))).astype(np.float64)
    xr, yr = x[rows], y[rows]
    dx = xr - (np.add.reduceat(xr, cut) / count)[owner]
    dy = yr - yr[cut][owner]
    ey = dy - (np.add.reduceat(dy, cut) / count)[owner]
    return np.add.reduceat(dx * dx, cut), np.add.reduceat(dx * dy, cut), np.add.reduceat(ey * ey, cut)


def _groups(restart: I64 | None, n: int) -> list[tuple[int, int]]:
    """Row ranges the prefix sums restart at: segment starts, with consecutive small segments
    taken together up to `_GROUP_ROWS` rows (their sums stay small; a call per point would
    cost more than it saves)."""
    if restart is None or len(restart) == 0:
        return [(0, n)]
    bounds = np.append(np.asarray(restart, np.int64), n)
    if bool(np.all(np.diff(bounds[:-1]) >= _GROUP_ROWS)):
        # No small segment but perhaps the last: every segment is its own group.
        return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    out, lo = [], 0
    while lo < n:
        # The group runs to the first segment boundary at least _GROUP_ROWS past its start.
        hi = int(bounds[min(int(np.searchsorted(bounds, lo + _GROUP_ROWS)), len(bounds) - 1)])
        out.append((lo, hi))
        lo = hi
    return out


def _segmented_prefix(values: NDArray[G], groups: list[tuple[int, int]]) -> NDArray[G]:
    """Inclusive prefix sums of ``values`` restarting at each group."""
    out = np.empty_like(values)
    accumulate = np.add.accumulate  # the ufunc method: one call per group, no wrapper layers
    for lo, hi in groups:
        accumulate(values[lo:hi], out=out[lo:hi])
    return out


def displacement_rate(point_idx: I64, ts: I64, displacement: F64, params: RateParams = PER_DAY, *,
                      bounds: tuple[I64, I64] | None = None) -> F64:
    """Per reading (sorted by (point, ts), one per instant), the least-squares rate of its
    point's cumulative displacement over (t − window, t], in displacement units per unit.
    ``bounds``: the readings' `trailing_bounds` for ``params.window_ns``, when already known."""
    start, end = trailing_bounds(point_idx, ts, params.window_ns) if bounds is None else bounds
    y = np.asarray(displacement, np.float64)
    if len(y) != len(ts) or len(start) != len(ts):
        raise RulesError("ts, displacement and the bounds must have the same length")
    first = segment_starts(point_idx)
    t = np.asarray(ts, np.int64)
    # x since the point's first reading (exact as an int64 difference), and y from its first
    # value too: the slope is the same, the sums smaller.
    x = (t - per_row(t, first)) / float(params.unit_ns)
    y = y - per_row(y, first)
    return least_squares(x, y, start, end, restart=first, min_points=params.min_points,
                         with_r2=False, with_intercept=False).slope


def cumulative_exceeds(point_idx: I64, displacement_mm: F64, slope_height_m: F64,
                       factor: float = CUMULATIVE_FACTOR) -> Bools:
    """Per reading, whether its cumulative displacement (mm) is strictly above ``factor`` ×
    its point's slope height (m, indexed by point; NaN: no height, never above)."""
    h = np.asarray(slope_height_m, np.float64)[np.asarray(point_idx, np.int64)]
    return np.asarray(displacement_mm, np.float64) > factor * h * MM_PER_M
