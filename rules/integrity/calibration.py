"""Calibration time: how long each point carries the calibrating bit per local shift, and
calibrating readings inside another point's exceedance (`calibration_abuse`).

rules.md §6: "a point carries the calibrating bit (4) for more than 30 min in total within
one shift (local shifts, §7), or any calibrating reading of a point falls inside an
exceedance episode of another point of the same face (calibration used to hide a rise)."

Calibration time is measured from the readings: a calibrating reading at t (the first row
of its (point, ts) carrying the bit) stands for [t, next) where ``next`` is the point's next
reading of any status, cut at ``t + max_interval_ns`` (a reading does not vouch for the
time after the point fell silent: that is `offline`'s) and at ``now_ns``. The intervals are
split at the shift boundaries (`rules.integrity.shifts`, from the mine's zone) and summed per
(point, shift); a total *more than* ``max_total_ns`` is a finding covering the calibrating
time found: from its first to its last calibrating instant in the shift. It is open while
the last interval reaches ``now_ns`` (the point is calibrating now).

During an episode: a calibrating reading (first of its (point, ts), bit 4) at t is inside an
episode of another point of the same face when ``start <= t < end`` (an open episode has no
end). One finding per (calibrating point, episode): first and last such reading, count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.calendar import DEFAULT_ZONE
from rules.episodes import CALIBRATING
from rules.integrity.common import (
    I64,
    MINUTE,
    Bools,
    as_i64,
    checked_readings,
    first_of_time,
    ranges,
    segment_bounds,
    segment_searchsorted,
)
from rules.integrity.shifts import SHIFT_START_HOURS, local_boundaries

_FOREVER = np.iinfo(np.int64).max


@dataclass(frozen=True)
class CalibrationParams:
    """Defaults of rules.md §6 `calibration_abuse`."""

    max_total_ns: int = 30 * MINUTE  # §6: "for more than 30 min in total within one shift"
    shift_start_hours: tuple[int, ...] = SHIFT_START_HOURS  # §7: shifts 00–08, 08–16, 16–24
    timezone: str = DEFAULT_ZONE  # rules.md: local time, default Asia/Shanghai
    # How long one calibrating reading vouches for: the §1 max_gap (5 min) beyond which a
    # point's data are not continuous (a 30 s point normally reports long before).
    max_interval_ns: int = 5 * MINUTE
    calibrating_bit: int = CALIBRATING  # §6 / formats.md: status bit 4


@dataclass(frozen=True, eq=False)
class ShiftCalibration:
    """Calibration per (point, shift) over the limit, ordered by (point, shift start)."""

    point_idx: I64
    shift_start: I64
    shift_end: I64
    start: I64  # first calibrating instant in the shift
    end: I64  # last calibrating instant in the shift (exclusive end of the last interval)
    total_ns: I64
    is_open: Bools  # calibrating at now_ns

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True, eq=False)
class CalibrationInEpisode:
    """Calibration during another point's episode, ordered by (point, episode)."""

    point_idx: I64  # the calibrating point
    episode: I64  # index into the episodes given
    episode_point: I64
    start: I64  # first calibrating reading inside the episode
    end: I64  # last calibrating reading inside the episode
    n_readings: I64

    def __len__(self) -> int:
        return len(self.start)


def calibration_intervals(
    point_idx: I64, ts: I64, status: NDArray[np.integer], *, now_ns: int,
    params: CalibrationParams = CalibrationParams(),
) -> tuple[I64, I64, I64]:
    """The calibrating intervals (point, start, end) of readings sorted by (point, ts),
    ordered by (point, start), empty ones dropped."""
    p, t = checked_readings(point_idx, ts, status)
    n = len(p)
    # Calibrating rows are few: find them, keep the first of each (point, ts), and step
    # over repeats of it to the point's next reading.
    cal = np.flatnonzero((np.asarray(status) & params.calibrating_bit) != 0)
    before = np.maximum(cal - 1, 0)
    cal = cal[~((cal > 0) & (p[before] == p[cal]) & (t[before] == t[cal]))]
    nxt = cal + 1
    while True:
        probe = np.minimum(nxt, max(n - 1, 0))
        repeat = (nxt < n) & (p[probe] == p[cal]) & (t[probe] == t[cal])
        if not bool(repeat.any()):
            break
        nxt = nxt + repeat
    has_next = (nxt < n) & (p[probe] == p[cal])
    nxt_t = np.where(has_next, t[probe], _FOREVER) if len(cal) else t[cal]
    start = t[cal]
    end = np.minimum(np.minimum(nxt_t, start + params.max_interval_ns), now_ns)
    ok = end > start
    return p[cal][ok], start[ok], end[ok].astype(np.int64)


def shift_calibration(
    point_idx: I64, ts: I64, status: NDArray[np.integer], *, now_ns: int,
    params: CalibrationParams = CalibrationParams(),
    all_shifts: bool = False,
) -> ShiftCalibration:
    """Calibrating time per (point, local shift) of readings sorted by (point, ts); only the
    totals over the limit unless ``all_shifts``. See the module docstring."""
    ip, a, b = calibration_intervals(point_idx, ts, status, now_ns=now_ns, params=params)
    if len(a) == 0:
        e = np.zeros(0, np.int64)
        return ShiftCalibration(e, e, e, e, e, e, np.zeros(0, np.bool_))
    bounds = local_boundaries(int(a.min()), int(b.max()), params.timezone, params.shift_start_hours)
    # Split each interval [a, b) at the boundaries: shifts sa..sb, one piece each.
    sa = np.searchsorted(bounds, a, side="right") - 1
    sb = np.searchsorted(bounds, b, side="left") - 1
    n_pieces = (sb - sa + 1).astype(np.int64)
    iv = np.repeat(np.arange(len(a)), n_pieces)
    shift = np.repeat(sa, n_pieces) + ranges(n_pieces)
    ps = np.maximum(a[iv], bounds[shift])
    pe = np.minimum(b[iv], bounds[shift + 1])
    pp = ip[iv]
    # Pieces are in (point, time) order, so (point, shift) groups are contiguous.
    new = np.concatenate(([True], (pp[1:] != pp[:-1]) | (shift[1:] != shift[:-1])))
    g = np.flatnonzero(new)
    total = np.add.reduceat(pe - ps, g).astype(np.int64)
    g_last = np.append(g[1:] - 1, len(pp) - 1)
    over = np.ones(len(g), np.bool_) if all_shifts else total > params.max_total_ns
    g, g_last, total = g[over], g_last[over], total[over]
    return ShiftCalibration(
        point_idx=pp[g],
        shift_start=bounds[shift[g]],
        shift_end=bounds[shift[g] + 1],
        start=ps[g],
        end=pe[g_last],
        total_ns=total,
        is_open=pe[g_last] == now_ns,
    )


def calibration_in_episodes(
    point_idx: I64, ts: I64, status: NDArray[np.integer], *,
    point_face: I64,
    episode_point: I64, episode_start: I64, episode_end: I64,
    params: CalibrationParams = CalibrationParams(),
) -> CalibrationInEpisode:
    """Calibrating readings inside another same-face point's episode (end -1: open).

    ``point_face`` per point (-1: no face; such a point has no neighbours).
    """
    p, t = checked_readings(point_idx, ts, status)
    keep = first_of_time(p, t) & ((np.asarray(status) & params.calibrating_bit) != 0)
    face = as_i64(point_face)
    cp, ct = p[keep], t[keep]
    cf = face[cp]
    has_face = cf >= 0
    cp, ct, cf = cp[has_face], ct[has_face], cf[has_face]
    # Calibrating readings sorted by (face, ts, point): one search range per episode.
    order = np.lexsort((cp, ct, cf))
    cp, ct, cf = cp[order], ct[order], cf[order]
    ep = as_i64(episode_point)
    es, ee = as_i64(episode_start), as_i64(episode_end)
    ee = np.where(ee < 0, _FOREVER, ee)
    efa = face[ep] if len(ep) else np.zeros(0, np.int64)
    lo_f, hi_f = segment_bounds(cf, efa)
    lo = segment_searchsorted(ct, lo_f, hi_f, es, side="left")
    hi = segment_searchsorted(ct, lo_f, hi_f, ee, side="left")
    hi = np.where(efa >= 0, hi, lo)
    n = hi - lo
    e_of = np.repeat(np.arange(len(ep), dtype=np.int64), n)
    row = np.repeat(lo, n) + ranges(n)
    other = cp[row] != ep[e_of]
    e_of, row = e_of[other], row[other]
    # Group by (calibrating point, episode); within a group rows come by time.
    key_p = cp[row]
    order = np.lexsort((ct[row], e_of, key_p))
    e_of, row, key_p = e_of[order], row[order], key_p[order]
    if len(row) == 0:
        z = np.zeros(0, np.int64)
        return CalibrationInEpisode(z, z, z, z, z, z)
    new = np.concatenate(([True], (key_p[1:] != key_p[:-1]) | (e_of[1:] != e_of[:-1])))
    g = np.flatnonzero(new)
    g_last = np.append(g[1:] - 1, len(row) - 1)
    return CalibrationInEpisode(
        point_idx=key_p[g],
        episode=e_of[g],
        episode_point=ep[e_of[g]],
        start=ct[row[g]],
        end=ct[row[g_last]],
        n_readings=(g_last - g + 1).astype(np.int64),
    )

