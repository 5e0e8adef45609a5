"""Under-reporting: the kernel against the loop reference, and the named edge case of a YCBJ
record that overlaps the episode by one second."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.integrity.under_reporting import UnderReported, UnderReportingParams, covered_episodes, under_reported
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import MIN, T0

S = 1_000_000_000
H = 60 * MIN
ZONES = ["Asia/Shanghai", "UTC", "America/New_York"]


def findings(u: UnderReported) -> list[tuple[int, int, int, list[int]]]:
    return [(int(u.mine[i]), int(u.day_start[i]), int(u.day_end[i]), u.episodes_of(i).tolist())
            for i in range(len(u))]


# Times on a coarse grid so that starts and ends often coincide exactly.
TIMES = st.integers(0, 72).map(lambda k: T0 + k * 30 * MIN)
LENGTHS = st.sampled_from([-1, 0, S, 30 * MIN, 5 * H])


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_under_reported_matches_reference(data: st.DataObject) -> None:
    n_points = data.draw(st.integers(1, 4))
    mines = data.draw(st.lists(st.integers(0, 1), min_size=n_points, max_size=n_points))
    n_ep = data.draw(st.integers(0, 8))
    ep_point = data.draw(st.lists(st.integers(0, n_points - 1), min_size=n_ep, max_size=n_ep))
    ep_start = data.draw(st.lists(TIMES, min_size=n_ep, max_size=n_ep))
    ep_end = [-1 if d < 0 else s + d for s, d in
              zip(ep_start, data.draw(st.lists(LENGTHS, min_size=n_ep, max_size=n_ep)), strict=True)]
    n_rec = data.draw(st.integers(0, 8))
    rec_point = data.draw(st.lists(st.integers(0, n_points - 1), min_size=n_rec, max_size=n_rec))
    rec_start = data.draw(st.lists(TIMES.map(lambda t: t + data.draw(st.sampled_from([-S, 0, S]))),
                                   min_size=n_rec, max_size=n_rec))
    rec_end = [-1 if d < 0 else s + d for s, d in
               zip(rec_start, data.draw(st.lists(LENGTHS, min_size=n_rec, max_size=n_rec)), strict=True)]
    rec_code = data.draw(st.lists(st.sampled_from(["001", "002", "007"]), min_size=n_rec, max_size=n_rec))
    tz = data.draw(st.sampled_from(ZONES))
    grace = data.draw(st.sampled_from([0, 2 * H]))
    now = T0 + data.draw(st.integers(0, 80)) * H
    params = UnderReportingParams(grace_ns=grace, timezone=tz)
    got = under_reported(np.array(ep_point, np.int64), np.array(ep_start, np.int64), np.array(ep_end, np.int64),
                         point_mine=np.array(mines), record_point=np.array(rec_point, np.int64),
                         record_start=np.array(rec_start, np.int64), record_end=np.array(rec_end, np.int64),
                         record_code=np.array(rec_code, dtype=np.str_), now_ns=now, params=params)
    covered, expected = ref.under_reported(ep_point, ep_start, ep_end, mines, rec_point, rec_start, rec_end,
                                           rec_code, now, ("001", "002"), grace, tz)
    assert got.covered.tolist() == covered
    assert findings(got) == expected


EP_START, EP_END = T0 + 2 * H, T0 + 2 * H + 10 * MIN  # 10:00–10:10 in Shanghai


def covers(rec_start: int, rec_end: int, code: str = "001") -> bool:
    return bool(covered_episodes(np.array([0]), np.array([EP_START]), np.array([EP_END]), np.array([0]),
                                 np.array([rec_start]), np.array([rec_end]), np.array([code]))[0])


def test_record_overlapping_the_episode_by_one_second_covers_it() -> None:
    assert covers(EP_START - 5 * MIN, EP_START + S)  # ends 1 s into the episode
    assert covers(EP_END - S, EP_END + 5 * MIN)  # starts 1 s before the episode ends


def test_record_one_second_short_of_the_episode_does_not_cover_it() -> None:
    assert not covers(EP_START - 5 * MIN, EP_START - S)
    assert not covers(EP_END + S, EP_END + 5 * MIN)


def test_record_touching_the_episode_covers_it_and_other_types_do_not() -> None:
    assert covers(EP_START - 5 * MIN, EP_START)  # closed intervals share the instant
    assert covers(EP_START, EP_START)  # a one-instant record at the start
    assert covers(EP_START - H, -1, code="002")  # a record still going on
    assert not covers(EP_START - H, -1, code="007")  # calibration is not an alarm record


def test_one_finding_per_mine_and_day_once_the_day_and_its_grace_have_passed() -> None:
    # Three exceedances on 2026-11-23 (local) at points 0 and 1 of mine 4; the YCBJ names two.
    ep_p = np.array([0, 1, 0], np.int64)
    ep_s = np.array([EP_START, EP_START + H, EP_START + 3 * H], np.int64)
    ep_e = ep_s + 10 * MIN
    rec = dict(record_point=np.array([0, 0], np.int64), record_start=ep_s[[0, 2]] + S,
               record_end=ep_e[[0, 2]], record_code=np.array(["001", "002"]))
    day_end = T0 + 16 * H  # 2026-11-24 00:00 Shanghai
    args = (ep_p, ep_s, ep_e)
    before = under_reported(*args, point_mine=np.array([4, 4]), now_ns=day_end + 2 * H - 1, **rec)
    assert len(before) == 0 and before.judged.tolist() == [False] * 3
    got = under_reported(*args, point_mine=np.array([4, 4]), now_ns=day_end + 2 * H, **rec)
    assert findings(got) == [(4, day_end - 24 * H, day_end, [1])]
    assert got.covered.tolist() == [True, False, True]
