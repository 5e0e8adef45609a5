"""Threshold sets, their versions, and the per-reading classification exceed / clear / power-off.

A point has up to eight thresholds (rules.md §1): alarm, clear (解报), power-off and
power-restore, for the upper side and for the lower side (oxygen). NaN means absent.

- Upper side: a reading *exceeds* when ``value >= alarm_hi``, is *clear* when
  ``value < clear_hi`` and is at *power-off* level when ``value >= poweroff_hi``.
- Lower side: a reading exceeds when ``value < alarm_lo`` (strict), is clear when
  ``value >= clear_lo`` and is at power-off level when ``value < poweroff_lo``.
- A missing clear threshold means the alarm threshold (no hysteresis band); a side whose
  alarm threshold is NaN is absent (its clear threshold is then ignored).
- ``exceed`` is either side exceeding; ``clear`` means not exceeding and back within the
  clear level on every present side; a reading that is neither lies in the hysteresis band.
  A NaN value is never exceed and never clear (it is band), so it neither opens nor closes.
  A reading with no threshold at all (no version yet) never exceeds; a finite value is clear.
  Values are finite or NaN (an infinite value on an absent side would count as band).
- A clear level beyond its alarm (clear_hi > alarm_hi, clear_lo < alarm_lo) is refused when a
  `ThresholdSet` or `ThresholdTable` is built, so exceed and clear never both hold.
- Restore thresholds are carried for the power-restore logic of §4, not used here.
- The default thresholds of a point without its own (rules.md §1) are not here: the registry
  owns that catalogue (`minewatch.registry.catalogue`) and writes them as versions, so the
  kernels judge every point by the arrays they are given.

Versions: a point's threshold set changes over time; each version has an ``effective_from``
(int64 ns UTC) and applies to readings at or after it, until the point's next version.
`resolve_versions` finds the version of each reading (-1 before the point's first version);
`version_runs` gives the same as runs for sorted readings (the fused episode search uses it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
_NAN = math.nan


@dataclass(frozen=True)
class ThresholdSet:
    """One point's thresholds at one time; NaN marks a threshold the point does not have."""

    alarm_hi: float = _NAN
    clear_hi: float = _NAN
    poweroff_hi: float = _NAN
    restore_hi: float = _NAN
    alarm_lo: float = _NAN
    clear_lo: float = _NAN
    poweroff_lo: float = _NAN
    restore_lo: float = _NAN

    def __post_init__(self) -> None:
        # A clear level on the wrong side of the alarm would make a reading both exceed and
        # clear; a power-off level inside the alarm band would raise power-off without alarm.
        checks = (
            ("clear_hi", "alarm_hi", self.clear_hi <= self.alarm_hi),
            ("poweroff_hi", "alarm_hi", self.poweroff_hi >= self.alarm_hi),
            ("clear_lo", "alarm_lo", self.clear_lo >= self.alarm_lo),
            ("poweroff_lo", "alarm_lo", self.poweroff_lo <= self.alarm_lo),
        )
        for name, ref, ok in checks:
            a, b = getattr(self, name), getattr(self, ref)
            if not (math.isnan(a) or math.isnan(b) or ok):
                side = "at or below" if name.endswith("_hi") else "at or above"
                raise RulesError(f"threshold {name}={a} must be {side} {ref}={b}")

    @property
    def lower(self) -> bool:
        """True for a lower-limit point (oxygen): its peak is the minimum, not the maximum."""
        return math.isnan(self.alarm_hi) and not math.isnan(self.alarm_lo)


def _effective(alarm: F64, clear: F64, absent: float) -> F64:
    """The clear level actually applied: clear, else alarm; `absent` (±inf) for a missing side.

    ±inf makes an absent side clear for every finite value and not clear for NaN, so the
    kernels need no separate isnan pass.
    """
    level = np.where(np.isnan(clear), alarm, clear)
    return np.where(np.isnan(alarm), absent, level)


@dataclass(frozen=True, eq=False)
class ThresholdTable:
    """Threshold versions as arrays, one row per version (the order of `version_point`/`from`)."""

    alarm_hi: F64
    clear_hi: F64
    poweroff_hi: F64
    restore_hi: F64
    alarm_lo: F64
    clear_lo: F64
    poweroff_lo: F64
    restore_lo: F64
    # Effective levels with one extra all-absent row at the end, so that version -1 ("no
    # version yet") indexes it directly and the hot path needs no np.where.
    _levels: tuple[F64, F64, F64, F64, F64, F64] = field(init=False, repr=False)
    _has_lower: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.alarm_hi)
        arrays = [np.asarray(getattr(self, f.name), dtype=np.float64) for f in fields(self)[:8]]
        for f, a in zip(fields(self)[:8], arrays, strict=True):
            object.__setattr__(self, f.name, a)
        if any(len(a) != n for a in arrays):
            raise RulesError("every threshold array of a table must have one entry per version")
        # As for ThresholdSet: a clear level beyond the alarm would make a reading both exceed
        # and clear; the kernels rely on the two being exclusive.
        a_hi, c_hi, a_lo, c_lo = arrays[0], arrays[1], arrays[4], arrays[5]
        if np.any(c_hi > a_hi) or np.any(c_lo < a_lo):
            raise RulesError("a clear threshold lies beyond its alarm threshold in a version")
        pad = [np.append(a, _NAN) for a in arrays]
        levels = (
            pad[0],
            _effective(pad[0], pad[1], math.inf),
            pad[2],
            pad[4],
            _effective(pad[4], pad[5], -math.inf),
            pad[6],
        )
        object.__setattr__(self, "_levels", levels)
        object.__setattr__(self, "_has_lower", bool(np.any(~np.isnan(pad[4]))))

    @classmethod
    def from_sets(cls, sets: Sequence[ThresholdSet]) -> ThresholdTable:
        """A table from threshold sets, in version order."""
        cols = [np.array([getattr(s, f.name) for s in sets], dtype=np.float64) for f in
                fields(ThresholdSet)]
        return cls(*cols)

    def __len__(self) -> int:
        return len(self.alarm_hi)

    @property
    def levels(self) -> tuple[F64, F64, F64, F64, F64, F64]:
        """Applied levels per version plus a last all-absent row (index -1): alarm, clear,
        power-off for the upper side, then the lower side; absent clear levels are ±inf."""
        return self._levels

    @property
    def has_lower(self) -> bool:
        """Whether any version has a lower side (else the kernels skip it)."""
        return self._has_lower

    @property
    def lower(self) -> Bools:
        """Per version: a lower-limit set (no upper alarm, a lower alarm)."""
        return np.isnan(self.alarm_hi) & ~np.isnan(self.alarm_lo)

    def rows(self, version: I64) -> dict[str, F64]:
        """The eight raw thresholds per reading for a version index array (-1 → all NaN)."""
        return {f.name: np.append(getattr(self, f.name), _NAN)[version] for f in fields(self)[:8]}


def classify(
    values: F64,
    *,
    alarm_hi: F64 | float = _NAN,
    clear_hi: F64 | float = _NAN,
    poweroff_hi: F64 | float = _NAN,
    alarm_lo: F64 | float = _NAN,
    clear_lo: F64 | float = _NAN,
    poweroff_lo: F64 | float = _NAN,
) -> tuple[Bools, Bools, Bools]:
    """(exceed, clear, poweroff) per reading from per-reading thresholds (arrays or scalars)."""
    v = np.asarray(values, dtype=np.float64)
    a_hi, c_hi, p_hi, a_lo, c_lo, p_lo = (
        np.broadcast_to(np.asarray(x, dtype=np.float64), v.shape)
        for x in (alarm_hi, clear_hi, poweroff_hi, alarm_lo, clear_lo, poweroff_lo)
    )
    levels = (a_hi, _effective(a_hi, c_hi, math.inf), p_hi,
              a_lo, _effective(a_lo, c_lo, -math.inf), p_lo)
    return classify_levels(v, levels)


def classify_versions(
    values: F64, version: I64, table: ThresholdTable
) -> tuple[Bools, Bools, Bools]:
    """`classify` with the thresholds of each reading's version (-1 = none) taken from `table`."""
    v = np.asarray(values, dtype=np.float64)
    ver = np.asarray(version, dtype=np.int64)
    if len(v) != len(ver):
        raise RulesError("values and version must have the same length")
    # -1 indexes the padding row; numpy would quietly accept other negatives (from the end)
    # and len(table) (the padding row itself), so both ends are checked.
    if len(ver) and (ver.min() < -1 or ver.max() >= len(table)):
        raise RulesError(f"version indices must lie in [-1, {len(table)})")
    # Gathers are the cost here (np.take beats fancy indexing), so the lower side is only
    # gathered when some version has one.
    levels = table.levels[: 6 if table.has_lower else 3]
    return classify_levels(v, tuple(np.take(lv, ver) for lv in levels))


def classify_levels(v: F64, levels: tuple[F64, ...]) -> tuple[Bools, Bools, Bools]:
    """`classify` from applied levels per reading (as `ThresholdTable.levels` holds them);
    with only the three upper-side levels the lower side is skipped."""
    a_hi, c_hi, p_hi = levels[:3]
    exceed = v >= a_hi
    clear = v < c_hi
    poweroff = v >= p_hi
    if len(levels) == 6:
        a_lo, c_lo, p_lo = levels[3:]
        exceed |= v < a_lo
        clear &= v >= c_lo
        poweroff |= v < p_lo
    # Only inconsistent per-row thresholds (clear beyond alarm) can make both true; exceeding wins.
    clear &= ~exceed
    return exceed, clear, poweroff


def sorted_by_point_time(point_idx: I64, ts: I64) -> bool:
    """True when rows are sorted by (point, ts), equal keys allowed."""
    p, t = np.asarray(point_idx), np.asarray(ts)
    if len(p) < 2:
        return True
    if bool(np.any(p[1:] < p[:-1])):
        return False
    back = np.flatnonzero(t[1:] < t[:-1])
    return bool(np.all(p[back + 1] > p[back]))


def resolve_versions(point_idx: I64, ts: I64, version_point: I64, version_from: I64) -> I64:
    """The threshold version of each reading: the point's last version with from <= ts, else -1.

    Versions are sorted by (point, effective_from); of two versions with the same point and
    effective time the later row wins. Readings in any order; sorted (point, ts) input takes a
    fast path that touches each reading once.
    """
    p = np.asarray(point_idx, dtype=np.int64)
    t = np.asarray(ts, dtype=np.int64)
    vp = np.asarray(version_point, dtype=np.int64)
    vf = np.asarray(version_from, dtype=np.int64)
    if len(p) != len(t) or len(vp) != len(vf):
        raise RulesError("point_idx/ts and version_point/version_from must pair up")
    if not sorted_by_point_time(vp, vf):
        raise RulesError("threshold versions must be sorted by (point, effective_from)")
    if len(vp) == 0:
        return np.full(len(p), -1, dtype=np.int64)
    if sorted_by_point_time(p, t):
        return _resolve_sorted(p, t, vp, vf)
    lo = np.searchsorted(vp, p, side="left")
    hi = np.searchsorted(vp, p, side="right")
    upto = _last_at_or_before(vf, lo, hi, t)
    return np.where(upto > lo, upto - 1, -1).astype(np.int64)


def _last_at_or_before(sorted_keys: I64, lo: I64, hi: I64, queries: I64) -> I64:
    """Per query, the first index in [lo, hi) whose key is > the query (vectorized bisect_right)."""
    a, b = lo.astype(np.int64), hi.astype(np.int64)
    last = len(sorted_keys) - 1
    while True:
        active = a < b
        if not active.any():
            return a
        mid = (a + b) >> 1
        go = sorted_keys[np.minimum(mid, last)] <= queries
        a = np.where(active & go, mid + 1, a)
        b = np.where(active & ~go, mid, b)


def version_runs(point_idx: I64, ts: I64, version_point: I64, version_from: I64) -> tuple[I64, I64]:
    """Readings sorted by (point, ts) cut into runs of one version: (first row, version) per run.

    The runs cover every row in order and none is empty; ``np.repeat(version, lengths)`` is
    `resolve_versions`. Callers check the sort order (this is the fast path's inner step).
    """
    p, t = np.asarray(point_idx, dtype=np.int64), np.asarray(ts, dtype=np.int64)
    vp, vf = np.asarray(version_point, dtype=np.int64), np.asarray(version_from, dtype=np.int64)
    n, nv = len(p), len(vp)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = np.searchsorted(p, vp, side="left")
    hi = np.searchsorted(p, vp, side="right")
    # Row where each version starts to apply: first row of its point with ts >= from.
    begin = _first_at_or_after(t, lo, hi, vf)
    # Markers (position, value): every version from its begin row; -1 after each point's rows.
    # At one position the last marker wins, so sort by (position, point, version-before-end).
    pts = np.unique(vp)
    ends = np.searchsorted(p, pts, side="right")
    pos = np.concatenate(([0], begin, ends))
    point = np.concatenate(([np.iinfo(np.int64).min], vp, pts))
    rank = np.concatenate(([0], np.arange(nv), np.full(len(pts), nv)))
    value = np.concatenate(([-1], np.arange(nv), np.full(len(pts), -1)))
    order = np.lexsort((rank, point, pos))
    pos, value = pos[order], value[order]
    keep = np.append(pos[1:] != pos[:-1], True) & (pos < n)
    return pos[keep].astype(np.int64), value[keep].astype(np.int64)


def _resolve_sorted(p: I64, t: I64, vp: I64, vf: I64) -> I64:
    start, version = version_runs(p, t, vp, vf)
    return np.repeat(version, np.diff(np.append(start, len(p))))


def _first_at_or_after(sorted_rows: I64, lo: I64, hi: I64, queries: I64) -> I64:
    """Per query, the first index in [lo, hi) whose row value is >= the query (bisect_left)."""
    a, b = lo.astype(np.int64), hi.astype(np.int64)
    last = len(sorted_rows) - 1
    while True:
        active = a < b
        if not active.any():
            return a
        mid = (a + b) >> 1
        go = sorted_rows[np.clip(mid, 0, last)] < queries
        a = np.where(active & go, mid + 1, a)
        b = np.where(active & ~go, mid, b)
