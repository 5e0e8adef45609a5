"""Point levels, their step function and spans: kernels against the loop reference, and the
named edge cases (a reading exactly at a threshold in both directions; a level that falls and
rises again within one span)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.errors import RulesError
from rules.geotech import BLUE, NONE, ORANGE, RED, YELLOW
from rules.geotech.levels import LevelTable, point_levels
from rules.geotech.steps import Steps, level_steps, spans
from rules.geotech.windows import usable_rows
from tests.rules.geotech import reference as ref
from tests.rules.geotech.strategies import MIN, T0, GeoSeries, geo_series

NAN = math.nan


def table_of(s: GeoSeries) -> LevelTable:
    return LevelTable.from_rows([(*(None if math.isnan(v) else v for v in th), lw)  # type: ignore[misc]
                                 for th, lw in zip(s.thresholds, s.lower_worse, strict=True)])


def kernel_steps(s: GeoSeries, mask: int) -> tuple[list[tuple[int, int, int, int]], Steps]:
    keep = usable_rows(s.point, s.ts, s.values, s.status, exclude_mask=mask)
    p, t, v = s.point[keep], s.ts[keep], s.values[keep]
    steps = level_steps(p, t, point_levels(p, v, table_of(s)))
    rows = keep[steps.row].tolist()
    return list(zip(steps.key.tolist(), steps.ts.tolist(), steps.level.tolist(), rows, strict=True)), steps


def reference_steps(s: GeoSeries, mask: int) -> list[tuple[int, int, int, int]]:
    keep = ref.usable(s.point.tolist(), s.ts.tolist(), s.values.tolist(), s.status.tolist(), mask)
    levels = [ref.level_of(float(s.values[i]), s.thresholds[s.point[i]], s.lower_worse[s.point[i]]) for i in keep]
    found = ref.steps_of([int(s.point[i]) for i in keep], [int(s.ts[i]) for i in keep], levels)
    return [(st_.key, st_.ts, st_.level, keep[row]) for st_, row in found]


@settings(max_examples=300, deadline=None)
@given(geo_series(), st.sampled_from([DEFAULT_EXCLUDE_MASK, 0]))
def test_levels_steps_and_spans_match_reference(s: GeoSeries, mask: int) -> None:
    got, steps = kernel_steps(s, mask)
    assert got == reference_steps(s, mask)
    for at_least in (BLUE, ORANGE):
        sp = spans(steps, at_least)
        expected = ref.spans([ref.Step(k, t, lv) for k, t, lv, _ in got], at_least)
        assert list(zip(sp.key.tolist(), sp.start.tolist(), sp.end.tolist(), sp.peak.tolist(),
                        sp.first.tolist(), sp.count.tolist(), strict=True)) == \
            [(e.key, e.start, e.end, e.peak, e.first, e.count) for e in expected]


@settings(max_examples=100, deadline=None)
@given(geo_series(), st.integers(0, 40))
def test_later_readings_never_change_earlier_steps(s: GeoSeries, cut_min: int) -> None:
    # Streaming equals back-fill: what is known up to T is the back-fill's answer up to T.
    cut = T0 + cut_min * 30 * MIN
    early = s.ts <= cut
    part = GeoSeries(s.point[early], s.ts[early], s.values[early], s.status[early], s.thresholds, s.lower_worse)
    full, _ = kernel_steps(s, DEFAULT_EXCLUDE_MASK)
    early_steps, _ = kernel_steps(part, DEFAULT_EXCLUDE_MASK)
    # Rows are positions in different arrays; the steps are compared by (point, ts, level).
    assert [x[:3] for x in early_steps] == [x[:3] for x in full if x[1] <= cut]


def levels_of(values: list[float], blue: float | None, yellow: float | None, orange: float | None,
              red: float | None, lower_worse: bool) -> list[int]:
    table = LevelTable.from_rows([(blue, yellow, orange, red, lower_worse)])
    return point_levels(np.zeros(len(values), np.int64), np.array(values), table).tolist()


def test_a_reading_exactly_at_a_threshold_is_at_that_level_higher_is_worse() -> None:
    # Reservoir water level, m: blue 100, yellow 101, orange 102, red 103.
    assert levels_of([99.99, 100.0, 100.5, 101.0, 102.0, 103.0, 103.01], 100, 101, 102, 103, False) == \
        [NONE, BLUE, BLUE, YELLOW, ORANGE, RED, RED]


def test_a_reading_exactly_at_a_threshold_is_at_that_level_lower_is_worse() -> None:
    # Safety freeboard, m: blue 1.5, yellow 1.2, orange 1.0, red 0.7 (lower is worse).
    assert levels_of([1.51, 1.5, 1.3, 1.2, 1.0, 0.7, 0.69], 1.5, 1.2, 1.0, 0.7, True) == \
        [NONE, BLUE, BLUE, YELLOW, ORANGE, RED, RED]


def test_absent_levels_are_never_reached() -> None:
    # Rainfall: only yellow (50 mm) configured; 80 mm is yellow, not anything higher.
    assert levels_of([49.9, 50.0, 80.0], None, 50.0, None, None, False) == [NONE, YELLOW, YELLOW]


def test_a_level_that_falls_and_rises_again_is_one_span() -> None:
    # Beach length (lower is worse): blue 80, yellow 70, orange 60, red 50 m; one reading an hour.
    values = [90.0, 75.0, 58.0, 72.0, 49.0, 79.0, 85.0, 78.0]
    t = T0 + np.arange(len(values), dtype=np.int64) * 60 * MIN
    table = LevelTable.from_rows([(80.0, 70.0, 60.0, 50.0, True)])
    lv = point_levels(np.zeros(len(values), np.int64), np.array(values), table)
    assert lv.tolist() == [NONE, BLUE, ORANGE, BLUE, RED, BLUE, NONE, BLUE]
    steps = level_steps(np.zeros(len(values), np.int64), t, lv)
    # Every reading changes the level here, so each is a step.
    assert steps.level.tolist() == [BLUE, ORANGE, BLUE, RED, BLUE, NONE, BLUE]
    assert steps.row.tolist() == [1, 2, 3, 4, 5, 6, 7]
    sp = spans(steps)
    # One span from 1 h to 6 h (orange, back to blue, up to red, back to blue: one case whose
    # level is the highest reached), then a second one still open from 7 h.
    assert sp.start.tolist() == [T0 + 60 * MIN, T0 + 7 * 60 * MIN]
    assert sp.end.tolist() == [T0 + 6 * 60 * MIN, -1]
    assert sp.peak.tolist() == [RED, BLUE]
    assert sp.count.tolist() == [5, 1]
    assert steps.level_at(0, T0 + 3 * 60 * MIN + 1) == BLUE and steps.level_at(0, T0) == NONE


def test_silence_holds_the_level() -> None:
    # A gap of days neither ends nor lowers a level: only a reading below does.
    t = np.array([0, 1, 5000], np.int64) * MIN + T0
    steps = level_steps(np.zeros(3, np.int64), t, np.array([ORANGE, ORANGE, NONE], np.int8))
    assert steps.ts.tolist() == [T0, T0 + 5000 * MIN] and steps.level.tolist() == [ORANGE, NONE]


def test_duplicates_and_nan_are_dropped_first_stored_wins() -> None:
    p = np.zeros(4, np.int64)
    t = np.array([0, 1, 1, 2], np.int64) * MIN
    assert usable_rows(p, t, np.array([1.0, 2.0, 9.0, NAN])).tolist() == [0, 1]
    # The first stored row is the reading even when it is excluded: the repeat does not count.
    assert usable_rows(p, t, np.array([1.0, 2.0, 9.0, 3.0]), np.array([0, 4, 0, 0])).tolist() == [0, 3]


def test_unsorted_or_repeated_input_is_refused() -> None:
    with pytest.raises(RulesError, match="sorted"):
        level_steps(np.zeros(2, np.int64), np.array([2, 1]), np.zeros(2, np.int8))
    with pytest.raises(RulesError, match="usable_rows"):
        level_steps(np.zeros(2, np.int64), np.array([1, 1]), np.zeros(2, np.int8))
    with pytest.raises(RulesError, match="level table"):
        point_levels(np.array([3]), np.array([1.0]), LevelTable.from_rows([(1.0, 2.0, 3.0, 4.0, False)]))


def test_empty() -> None:
    z = np.zeros(0, np.int64)
    assert len(level_steps(z, z, np.zeros(0, np.int8))) == 0
    assert len(spans(Steps.empty())) == 0
