"""Episodes: the vectorized kernel against the loop reference, and the named edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import (
    CALIBRATING,
    DEFAULT_EXCLUDE_MASK,
    END_REASONS,
    SENSOR_FAULT,
    Episodes,
    find_episodes,
    find_episodes_by_version,
)
from rules.errors import RulesError
from rules.thresholds import (
    ThresholdSet,
    ThresholdTable,
    classify,
    classify_versions,
    resolve_versions,
)
from tests.rules import reference as ref
from tests.rules.strategies import Series, series

S = 1_000_000_000
MIN = 60 * S
NAN = math.nan


def run(s: Series, mask: int) -> tuple[Episodes, list[ref.Episode]]:
    ver = resolve_versions(s.point, s.ts, s.version_point, s.version_from)
    exceed, clear, poweroff = classify_versions(s.values, ver, s.table)
    got = find_episodes(s.point, s.ts, s.values, s.status, exceed, clear, poweroff,
                        max_gap_ns=s.max_gap, version=ver, lower_by_point=s.lower_by_point,
                        exclude_mask=mask)
    rows = s.table.rows(ver)
    marks = [ref.classify_row(v, *(float(rows[k][i]) for k in (
        "alarm_hi", "clear_hi", "poweroff_hi", "alarm_lo", "clear_lo", "poweroff_lo")))
        for i, v in enumerate(s.values.tolist())]
    expected = ref.episodes(
        s.point.tolist(), s.ts.tolist(), s.values.tolist(), s.status.tolist(),
        [m[0] for m in marks], [m[1] for m in marks], [m[2] for m in marks],
        s.max_gap.tolist(), ver.tolist(), s.lower_by_point.tolist(), mask)
    return got, expected


def as_rows(e: Episodes) -> list[tuple[object, ...]]:
    return list(zip(e.point_idx.tolist(), e.start.tolist(), e.end.tolist(), e.is_open.tolist(),
                    e.peak.tolist(), e.peak_ts.tolist(), e.level.tolist(), e.lower.tolist(),
                    e.version.tolist(), e.first_row.tolist(), e.last_row.tolist(),
                    e.end_row.tolist(), [END_REASONS[r] for r in e.end_reason.tolist()],
                    strict=True))


def ref_rows(eps: list[ref.Episode]) -> list[tuple[object, ...]]:
    return [(e.point, e.start, e.end, e.reason == "open", e.peak, e.peak_ts,
             2 if e.poweroff else 1, e.lower, e.version, e.first_row, e.last_row, e.end_row,
             e.reason) for e in eps]


@settings(max_examples=200, deadline=None)
@given(series(), st.sampled_from([DEFAULT_EXCLUDE_MASK, 0, CALIBRATING]))
def test_episodes_match_reference(s: Series, mask: int) -> None:
    got, expected = run(s, mask)
    assert as_rows(got) == ref_rows(expected)
    # The fused hot path gives exactly the same episodes.
    fused = find_episodes_by_version(
        s.point, s.ts, s.values, s.status, table=s.table, version_point=s.version_point,
        version_from=s.version_from, max_gap_ns=s.max_gap, lower_by_point=s.lower_by_point,
        exclude_mask=mask)
    assert as_rows(fused) == as_rows(got)


def episodes_of(ts_min: list[float], values: list[float], status: list[int] | None = None,
                point: list[int] | None = None, gap_min: float = 5, **thr: float) -> Episodes:
    t = (np.array(ts_min) * MIN).astype(np.int64)
    v = np.array(values, np.float64)
    st_ = np.array(status if status is not None else [0] * len(t), np.int64)
    p = np.array(point if point is not None else [0] * len(t), np.int64)
    exceed, clear, poweroff = classify(v, **(thr or {"alarm_hi": 1.0, "poweroff_hi": 1.5}))
    return find_episodes(p, t, v, st_, exceed, clear, poweroff, max_gap_ns=int(gap_min * MIN))


def test_hovering_at_threshold_is_one_episode() -> None:
    e = episodes_of([0, 1, 2, 3, 4, 5], [1.0, 0.9, 1.1, 0.85, 1.0, 0.7], alarm_hi=1.0,
                    clear_hi=0.8)
    assert len(e) == 1
    assert (e.start[0], e.end[0], e.peak[0], e.peak_ts[0]) == (0, 5 * MIN, 1.1, 2 * MIN)
    assert END_REASONS[e.end_reason[0]] == "cleared" and e.end_row[0] == 5


def test_calibration_only_rises_make_no_episode() -> None:
    e = episodes_of([0, 1, 2, 3], [0.3, 2.5, 3.0, 0.3], status=[0, CALIBRATING, CALIBRATING, 0])
    assert len(e) == 0


def test_calibration_neither_extends_nor_closes() -> None:
    # The calibration row reads low but must not close; the fault row reads high but is not
    # the peak.
    e = episodes_of([0, 1, 2, 3, 4], [1.2, 0.1, 9.0, 1.3, 0.2],
                    status=[0, CALIBRATING, SENSOR_FAULT, 0, 0])
    assert len(e) == 1
    assert (e.start[0], e.end[0], e.peak[0], e.last_row[0]) == (0, 4 * MIN, 1.3, 3)


def test_gap_closes_at_last_reading() -> None:
    e = episodes_of([0, 1, 2, 8, 9], [1.2, 1.6, 1.1, 1.3, 0.5])
    assert len(e) == 2
    assert (e.start[0], e.end[0], END_REASONS[e.end_reason[0]]) == (0, 2 * MIN, "gap")
    assert e.level.tolist() == [2, 1]
    assert (e.start[1], e.end[1], END_REASONS[e.end_reason[1]]) == (8 * MIN, 9 * MIN, "cleared")


def test_gap_is_strictly_greater_than_max_gap() -> None:
    e = episodes_of([0, 5, 10.0001], [1.2, 1.2, 0.5])
    assert len(e) == 1 and END_REASONS[e.end_reason[0]] == "gap" and e.end[0] == 5 * MIN


def test_open_at_end_has_no_end() -> None:
    e = episodes_of([0, 1, 2, 100], [0.3, 1.2, 1.1, 1.05], gap_min=500)
    assert len(e) == 1 and bool(e.is_open[0]) and e.end[0] == -1 and e.end_row[0] == -1
    assert END_REASONS[e.end_reason[0]] == "open" and e.last_row[0] == 3


def test_open_episode_of_one_point_does_not_leak_into_the_next() -> None:
    e = episodes_of([0, 1, 0, 1], [1.2, 1.3, 0.2, 1.1], point=[0, 0, 1, 1])
    assert e.point_idx.tolist() == [0, 1] and e.is_open.tolist() == [True, True]
    assert e.start.tolist() == [0, MIN]


def test_duplicate_timestamp_first_wins() -> None:
    e = episodes_of([0, 1, 1, 2], [1.2, 0.5, 2.0, 0.4])
    assert len(e) == 1 and e.end[0] == MIN and e.peak[0] == 1.2
    # When the first stored row is excluded, the second one still does not count.
    e2 = episodes_of([0, 1, 1], [0.3, 1.5, 1.5], status=[0, CALIBRATING, 0])
    assert len(e2) == 0


def test_lower_limit_peak_is_the_minimum() -> None:
    t = np.array([0, 1, 2, 3], np.int64) * MIN
    v = np.array([19.5, 18.7, 19.0, 20.1])
    exceed, clear, poweroff = classify(v, alarm_lo=20.0, poweroff_lo=19.0)
    e = find_episodes(np.zeros(4, np.int64), t, v, np.zeros(4, np.int64), exceed, clear,
                      poweroff, max_gap_ns=5 * MIN, lower_by_point=np.array([True]))
    assert (e.peak[0], e.peak_ts[0], e.level[0], bool(e.lower[0])) == (18.7, MIN, 2, True)


def test_threshold_change_applies_from_its_effective_time_only() -> None:
    # Alarm 1.0 until minute 2, then 1.5: 1.2 at minute 1 exceeds, at minute 3 it does not.
    p = np.zeros(5, np.int64)
    t = np.array([0, 1, 2, 3, 4], np.int64) * MIN
    v = np.array([0.3, 1.2, 0.3, 1.2, 1.6])
    table = ThresholdTable.from_sets([ThresholdSet(alarm_hi=1.0), ThresholdSet(alarm_hi=1.5)])
    ver = resolve_versions(p, t, np.array([0, 0]), np.array([0, 2 * MIN + 1]))
    assert ver.tolist() == [0, 0, 0, 1, 1]
    exceed, clear, poweroff = classify_versions(v, ver, table)
    e = find_episodes(p, t, v, np.zeros(5, np.int64), exceed, clear, poweroff,
                      max_gap_ns=5 * MIN, version=ver)
    assert e.start.tolist() == [MIN, 4 * MIN] and e.version.tolist() == [0, 1]


def test_unsorted_input_is_refused() -> None:
    z = np.zeros(2, np.int64)
    with pytest.raises(RulesError, match="sorted"):
        find_episodes(z, np.array([2, 1]), np.ones(2), z, np.ones(2, bool), np.zeros(2, bool),
                      np.zeros(2, bool), max_gap_ns=10)


def test_empty_input() -> None:
    z = np.zeros(0, np.int64)
    b = np.zeros(0, bool)
    assert len(find_episodes(z, z, np.zeros(0), z, b, b, b, max_gap_ns=1)) == 0
