"""Relation response (power_off_failure): the kernels against the loop references, and the
named edge case of a relay that opens at 60 s versus 61 s."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import find_episodes
from rules.integrity.common import CONSIDERED_EXCLUDE_MASK
from rules.integrity.relation import PowerOffParams, PowerOffResponse, power_off_response, power_off_triggers
from rules.thresholds import classify
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import T0, Rows, rows

S = 1_000_000_000


def nan_safe(rows_: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return [tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in r) for r in rows_]


def as_rows(r: PowerOffResponse) -> list[tuple[object, ...]]:
    return nan_safe(list(zip(r.trigger.tolist(), r.relation.tolist(), r.feed_idx.tolist(), r.answered_at.tolist(),
                             r.failed.tolist(), r.start.tolist(), r.end.tolist(), r.n_feed_readings.tolist(),
                             r.last_feed_value.tolist(), strict=True)))


@settings(max_examples=150, deadline=None)
@given(rows(max_points=4, values=[0.0, 0.0, 1.0, 1.6, math.nan],
            steps=[0, 10 * S, 30 * S, 59 * S, 60 * S, 61 * S], start_spread=120 * S), st.data())
def test_power_off_response_matches_reference(r: Rows, data: st.DataObject) -> None:
    n = r.n_points
    n_trig = data.draw(st.integers(0, 5))
    tp = data.draw(st.lists(st.integers(0, n - 1), min_size=n_trig, max_size=n_trig))
    # Triggers at reading times (often), between them, or none (-1).
    times = r.ts.tolist() or [T0]
    tt = data.draw(st.lists(st.one_of(st.sampled_from(times), st.integers(T0, T0 + 600 * S), st.just(-1)),
                            min_size=n_trig, max_size=n_trig))
    n_rel = data.draw(st.integers(0, 5))
    rp = data.draw(st.lists(st.integers(0, n - 1), min_size=n_rel, max_size=n_rel))
    rf = data.draw(st.lists(st.integers(0, n - 1), min_size=n_rel, max_size=n_rel))
    now = max(times) + data.draw(st.sampled_from([-60 * S, 0, 60 * S, 61 * S, 3600 * S]))
    window = data.draw(st.sampled_from([60 * S, 30 * S]))
    mask = data.draw(st.sampled_from([CONSIDERED_EXCLUDE_MASK, 0]))
    got = power_off_response(r.point, r.ts, r.values, r.status, trigger_point=np.array(tp, np.int64),
                             trigger_ts=np.array(tt, np.int64), relation_point=np.array(rp, np.int64),
                             relation_feed=np.array(rf, np.int64), now_ns=now,
                             params=PowerOffParams(response_ns=window, exclude_mask=mask))
    expected = ref.power_off(*r.lists(), tp, tt, rp, rf, now, window, 0.0, mask)
    assert as_rows(got) == nan_safe(list(expected))


@settings(max_examples=150, deadline=None)
@given(rows(max_points=3, values=[0.5, 1.2, 1.6, 2.0, math.nan], steps=[0, 30 * S, 60 * S, 600 * S]))
def test_power_off_triggers_match_reference(r: Rows) -> None:
    exceed, clear, poweroff = classify(r.values, alarm_hi=1.0, poweroff_hi=1.5)
    eps = find_episodes(r.point, r.ts, r.values, r.status, exceed, clear, poweroff, max_gap_ns=300 * S)
    row, t = power_off_triggers(r.point, r.ts, r.status, poweroff, episode_first_row=eps.first_row,
                                episode_last_row=eps.last_row)
    expected = ref.triggers(r.point.tolist(), r.ts.tolist(), r.status.tolist(), poweroff.tolist(),
                            eps.first_row.tolist(), eps.last_row.tolist(), CONSIDERED_EXCLUDE_MASK)
    assert list(zip(row.tolist(), t.tolist(), strict=True)) == expected
    # An episode reaches its trigger exactly when it reached power-off level.
    assert ((row >= 0) == (eps.level == 2)).all()


def relay(opens_after_s: int | None, now_after_s: int = 600) -> PowerOffResponse:
    """Methane point 0 reaches power-off at T0 (1.6 %); its relay (point 1, 1009) reports 1
    (on) every 30 s and then 0 (off) `opens_after_s` after T0 (never, for None)."""
    tm = T0 + np.array([-30, 0, 30], np.int64) * S
    vm = np.array([0.9, 1.6, 1.7])
    tr = np.arange(-60, 600, 30, dtype=np.int64) * S + T0
    if opens_after_s is not None:
        tr = np.sort(np.append(tr[tr < T0 + opens_after_s * S], T0 + opens_after_s * S))
    vr = np.where(tr >= T0 + (opens_after_s or 10**6) * S, 0.0, 1.0)
    p = np.concatenate((np.zeros(3, np.int64), np.ones(len(tr), np.int64)))
    exceed, clear, poweroff = classify(np.concatenate((vm, vr)), alarm_hi=1.0, poweroff_hi=1.5)
    z = np.zeros(len(p), np.int64)
    eps = find_episodes(p[:3], tm, vm, z[:3], exceed[:3], clear[:3], poweroff[:3], max_gap_ns=300 * S)
    _, t = power_off_triggers(p[:3], tm, z[:3], poweroff[:3], episode_first_row=eps.first_row,
                              episode_last_row=eps.last_row)
    assert t.tolist() == [T0]
    return power_off_response(p, np.concatenate((tm, tr)), np.concatenate((vm, vr)), z,
                              trigger_point=np.array([0]), trigger_ts=t, relation_point=np.array([0]),
                              relation_feed=np.array([1]), now_ns=T0 + now_after_s * S)


def test_relay_opening_at_60_s_satisfies_the_measure() -> None:
    got = relay(60)
    assert got.failed.tolist() == [False] and got.answered_at.tolist() == [T0 + 60 * S]
    assert len(got.failures()) == 0


def test_relay_opening_at_61_s_is_a_power_off_failure() -> None:
    got = relay(61)
    assert got.failed.tolist() == [True]
    assert (got.start.tolist(), got.end.tolist()) == ([T0 + 60 * S], [T0 + 61 * S])
    # The feed did report in the window, "on" each time (0, 30, 60 s).
    assert (got.n_feed_readings.tolist(), got.last_feed_value.tolist()) == ([3], [1.0])


def test_relay_that_never_opens_is_an_open_failure_once_the_window_has_passed() -> None:
    assert len(relay(None, now_after_s=60)) == 0  # the window is not over yet
    got = relay(None, now_after_s=61)
    assert (got.failed.tolist(), got.start.tolist(), got.end.tolist()) == ([True], [T0 + 60 * S], [-1])


def test_feed_that_reports_nothing_is_a_failure() -> None:
    got = power_off_response(np.zeros(1, np.int64), np.array([T0]), np.array([1.6]), np.zeros(1, np.int64),
                             trigger_point=np.array([0]), trigger_ts=np.array([T0]), relation_point=np.array([0]),
                             relation_feed=np.array([3]), now_ns=T0 + 3600 * S)
    assert got.failed.tolist() == [True] and got.n_feed_readings.tolist() == [0]
    assert math.isnan(got.last_feed_value[0])


def test_a_repeated_reading_is_not_a_trigger() -> None:
    # At 30 s the first stored row reads 1.2 (alarm); a second copy reads 1.6: the copy is
    # not the reading, so power-off level is first reached at 60 s.
    t = T0 + np.array([0, 30, 30, 60], np.int64) * S
    v = np.array([1.1, 1.2, 1.6, 1.7])
    z = np.zeros(4, np.int64)
    exceed, clear, poweroff = classify(v, alarm_hi=1.0, poweroff_hi=1.5)
    eps = find_episodes(z, t, v, z, exceed, clear, poweroff, max_gap_ns=300 * S)
    row, at = power_off_triggers(z, t, z, poweroff, episode_first_row=eps.first_row, episode_last_row=eps.last_row)
    assert (row.tolist(), at.tolist()) == ([3], [T0 + 60 * S])
