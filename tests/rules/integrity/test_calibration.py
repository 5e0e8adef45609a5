"""Calibration time per shift and calibration during a neighbour's episode: the kernels
against the loop references, the shift boundaries of a zone, and hand-written cases."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.integrity.calibration import (
    CalibrationInEpisode,
    CalibrationParams,
    ShiftCalibration,
    calibration_in_episodes,
    shift_calibration,
)
from rules.integrity.shifts import local_boundaries
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import MIN, T0, Rows, rows

S = 1_000_000_000
H = 60 * MIN
ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/Berlin"]


def as_rows(c: ShiftCalibration) -> list[tuple[object, ...]]:
    return list(zip(c.point_idx.tolist(), c.shift_start.tolist(), c.shift_end.tolist(), c.start.tolist(),
                    c.end.tolist(), c.total_ns.tolist(), c.is_open.tolist(), strict=True))


def in_ep_rows(c: CalibrationInEpisode) -> list[tuple[object, ...]]:
    return list(zip(c.point_idx.tolist(), c.episode.tolist(), c.episode_point.tolist(), c.start.tolist(),
                    c.end.tolist(), c.n_readings.tolist(), strict=True))


# Long calibrations around shift boundaries: steps up to an hour, mostly calibrating.
CAL_ROWS = rows(max_rows=40, statuses=[4, 4, 4, 0, 20, 16], start_spread=8 * H,
                steps=[0, 30 * S, 60 * S, 5 * MIN, 5 * MIN + 1, 20 * MIN, H])


@settings(max_examples=150, deadline=None)
@given(CAL_ROWS, st.data())
def test_shift_calibration_matches_reference(r: Rows, data: st.DataObject) -> None:
    tz = data.draw(st.sampled_from(ZONES))
    hours = data.draw(st.sampled_from([(0, 8, 16), (6, 14, 22), (0,)]))
    cap = data.draw(st.sampled_from([5 * MIN, 61 * MIN, 10 * H]))
    limit = data.draw(st.sampled_from([0, 30 * MIN, 2 * H]))
    now = (int(r.ts.max()) if len(r.ts) else T0) + data.draw(st.sampled_from([-10 * MIN, 0, 2 * MIN, H]))
    every = data.draw(st.booleans())
    params = CalibrationParams(max_total_ns=limit, shift_start_hours=hours, timezone=tz, max_interval_ns=cap)
    got = shift_calibration(r.point, r.ts, r.status, now_ns=now, params=params, all_shifts=every)
    p, t, _, status = r.lists()
    assert as_rows(got) == ref.shift_calibration(p, t, status, now, cap, 4, tz, hours, None if every else limit)


@settings(max_examples=150, deadline=None)
@given(rows(max_points=5, statuses=[4, 4, 0, 16]), st.data())
def test_calibration_in_episodes_matches_reference(r: Rows, data: st.DataObject) -> None:
    n = r.n_points
    faces = data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n))
    n_ep = data.draw(st.integers(0, 5))
    ep_point = data.draw(st.lists(st.integers(0, n - 1), min_size=n_ep, max_size=n_ep))
    ep_start = data.draw(st.lists(st.integers(0, 90).map(lambda m: T0 + m * MIN), min_size=n_ep, max_size=n_ep))
    ep_len = data.draw(st.lists(st.sampled_from([-1, 0, 30 * S, 20 * MIN, 2 * H]), min_size=n_ep, max_size=n_ep))
    ep_end = [-1 if d < 0 else s + d for s, d in zip(ep_start, ep_len, strict=True)]
    got = calibration_in_episodes(r.point, r.ts, r.status, point_face=np.array(faces),
                                  episode_point=np.array(ep_point, np.int64),
                                  episode_start=np.array(ep_start, np.int64), episode_end=np.array(ep_end, np.int64))
    p, t, _, status = r.lists()
    assert in_ep_rows(got) == ref.calibration_in_episodes(p, t, status, faces, ep_point, ep_start, ep_end, 4)


def test_shift_boundaries_of_shanghai() -> None:
    # T0 is 2026-11-23 08:00 in Shanghai (00:00 UTC); shifts start 00, 08, 16 local.
    b = local_boundaries(T0, T0, "Asia/Shanghai")
    assert T0 in b.tolist()
    i = b.tolist().index(T0)
    assert (b[i - 1], b[i + 1]) == (T0 - 8 * H, T0 + 8 * H)


def test_shift_boundaries_follow_daylight_saving() -> None:
    # 2026-03-29 in Berlin: the clock jumps 02:00 → 03:00; 00:00 and 08:00 local are
    # 23:00 and 06:00 UTC, so that night shift lasts 7 h.
    lo = 1_774_738_800 * S  # 2026-03-28 23:00 UTC = 2026-03-29 00:00 CET
    b = local_boundaries(lo, lo, "Europe/Berlin").tolist()
    i = b.index(lo)
    assert b[i + 1] - b[i] == 7 * H and b[i + 2] - b[i + 1] == 8 * H


def calibrating(minutes: float, start_min: float = 0, period_s: int = 30) -> ShiftCalibration:
    """One point reading every 30 s from T0 + start; calibrating for `minutes`, then normal."""
    t = np.arange(0, int((start_min + minutes) * 60) + 600, period_s) * S + T0 + int(start_min * MIN)
    status = np.where(t < T0 + int((start_min + minutes) * MIN), 4, 0)
    return shift_calibration(np.zeros(len(t), np.int64), t, status, now_ns=int(t[-1]) + S)


def test_calibration_for_exactly_30_min_is_not_abuse() -> None:
    assert len(calibrating(30)) == 0


def test_calibration_for_40_min_in_one_shift_is_abuse() -> None:
    got = calibrating(40, start_min=60)
    assert as_rows(got) == [(0, T0, T0 + 8 * H, T0 + H, T0 + 100 * MIN, 40 * MIN, False)]


def test_calibration_split_by_a_shift_boundary_is_counted_per_shift() -> None:
    # 40 min calibrating across the 16:00 boundary (T0 + 8 h): 20 min in each shift.
    assert len(calibrating(40, start_min=8 * 60 - 20)) == 0
    p = CalibrationParams(max_total_ns=19 * MIN)
    t = np.arange(-20 * 60, 20 * 60 + 30, 30) * S + T0 + 8 * H
    status = np.where(t < T0 + 8 * H + 20 * MIN, 4, 0)
    got = shift_calibration(np.zeros(len(t), np.int64), t, status, now_ns=int(t[-1]), params=p)
    assert got.total_ns.tolist() == [20 * MIN, 20 * MIN]
    assert got.shift_start.tolist() == [T0, T0 + 8 * H]


def test_calibration_during_a_neighbours_episode() -> None:
    # Points 0 and 1 share face 5, point 2 has face 6. Point 1 exceeds [10 min, 30 min).
    p = np.array([0, 0, 0, 0, 2], np.int64)
    t = T0 + np.array([5, 10, 20, 30, 15], np.int64) * MIN
    status = np.array([4, 4, 4, 4, 4])
    got = calibration_in_episodes(p, t, status, point_face=np.array([5, 5, 6]),
                                  episode_point=np.array([1, 0]), episode_start=np.array([T0 + 10 * MIN, T0]),
                                  episode_end=np.array([T0 + 30 * MIN, -1]))
    # Point 0 calibrates at 10 and 20 min inside point 1's episode (30 min is its end); its
    # own episode does not count, and point 2 is on another face.
    assert in_ep_rows(got) == [(0, 0, 1, T0 + 10 * MIN, T0 + 20 * MIN, 2)]


def test_a_repeated_calibrating_reading_counts_once_until_the_next_reading() -> None:
    # (0 s, calibrating) stored twice, the second copy without the bit: it is the same
    # reading, so the calibration lasts until the next reading at 60 s.
    t = T0 + np.array([0, 0, 60, 60], np.int64) * S
    got = shift_calibration(np.zeros(4, np.int64), t, np.array([4, 0, 0, 4]), now_ns=T0 + 90 * S,
                            all_shifts=True)
    assert got.total_ns.tolist() == [60 * S]
