"""Thresholds: classification against the loop reference, version resolution, defaults."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.errors import RulesError
from rules.thresholds import (
    ThresholdSet,
    ThresholdTable,
    classify,
    classify_versions,
    resolve_versions,
)
from tests.rules import reference as ref
from tests.rules.strategies import LOWER_SETS, LOWER_VALUES, UPPER_SETS, UPPER_VALUES, series

NAN = math.nan
SETS = [ThresholdSet(), *UPPER_SETS, *LOWER_SETS,
        ThresholdSet(alarm_hi=1.0, clear_hi=0.8, alarm_lo=0.5, clear_lo=0.6, poweroff_lo=0.2)]
VALUES = [*UPPER_VALUES, *LOWER_VALUES, 0.5, 0.55, 0.6, 0.2, 0.19]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(VALUES), st.sampled_from(SETS)), max_size=60))
def test_classify_matches_reference(rows: list[tuple[float, ThresholdSet]]) -> None:
    values = np.array([v for v, _ in rows], np.float64)
    cols = {k: np.array([getattr(s, k) for _, s in rows], np.float64)
            for k in ("alarm_hi", "clear_hi", "poweroff_hi", "alarm_lo", "clear_lo", "poweroff_lo")}
    exceed, clear, poweroff = classify(values, **cols)
    expected = [ref.classify_row(v, s.alarm_hi, s.clear_hi, s.poweroff_hi, s.alarm_lo,
                                 s.clear_lo, s.poweroff_lo) for v, s in rows]
    assert exceed.tolist() == [e[0] for e in expected]
    assert clear.tolist() == [e[1] for e in expected]
    assert poweroff.tolist() == [e[2] for e in expected]

    # The version-table path gives the same answer as the per-row path.
    table = ThresholdTable.from_sets([s for _, s in rows])
    ver = np.arange(len(rows), dtype=np.int64)
    got = classify_versions(values, ver, table)
    assert [a.tolist() for a in got] == [exceed.tolist(), clear.tolist(), poweroff.tolist()]


@settings(max_examples=200, deadline=None)
@given(series(), st.randoms(use_true_random=False))
def test_resolve_versions_matches_reference(s, rnd) -> None:  # type: ignore[no-untyped-def]
    expected = ref.resolve_versions(s.point.tolist(), s.ts.tolist(), s.version_point.tolist(),
                                    s.version_from.tolist())
    got = resolve_versions(s.point, s.ts, s.version_point, s.version_from)
    assert got.tolist() == expected
    # Unsorted readings take the other path and must agree too.
    perm = np.array(rnd.sample(range(len(s.point)), len(s.point)), dtype=np.int64)
    got_shuffled = resolve_versions(s.point[perm], s.ts[perm], s.version_point, s.version_from)
    assert got_shuffled.tolist() == [expected[i] for i in perm.tolist()]


def test_no_version_yet_never_exceeds() -> None:
    table = ThresholdTable.from_sets([ThresholdSet(alarm_hi=1.0)])
    exceed, clear, _ = classify_versions(np.array([5.0, 5.0]), np.array([-1, 0]), table)
    assert exceed.tolist() == [False, True]
    assert clear.tolist() == [True, False]


def test_resolve_versions_before_first_and_at_effective_time() -> None:
    got = resolve_versions(
        np.array([0, 0, 0, 1, 2]), np.array([5, 10, 20, 10, 10]),
        np.array([0, 0, 2]), np.array([10, 20, 11]),
    )
    # Before the first version: none; at its effective time: it applies; point 1: none.
    assert got.tolist() == [-1, 0, 1, -1, -1]


def test_versions_must_be_sorted() -> None:
    with pytest.raises(RulesError, match="sorted"):
        resolve_versions(np.array([0]), np.array([0]), np.array([1, 0]), np.array([0, 0]))


def test_hysteresis_band_is_neither() -> None:
    exceed, clear, _ = classify(np.array([1.0, 0.9, 0.8, 0.79]), alarm_hi=1.0, clear_hi=0.8)
    assert exceed.tolist() == [True, False, False, False]
    assert clear.tolist() == [False, False, False, True]


def test_lower_side_is_strict_below_alarm() -> None:
    exceed, clear, poweroff = classify(np.array([20.0, 19.99, 19.0, 18.9]),
                                       alarm_lo=20.0, poweroff_lo=19.0)
    assert exceed.tolist() == [False, True, True, True]
    assert clear.tolist() == [True, False, False, False]
    assert poweroff.tolist() == [False, False, False, True]


def test_clear_above_alarm_is_rejected() -> None:
    with pytest.raises(RulesError, match=r"clear_hi=1\.2 must be at or below alarm_hi=1\.0"):
        ThresholdSet(alarm_hi=1.0, clear_hi=1.2)
    with pytest.raises(RulesError, match="clear_lo"):
        ThresholdSet(alarm_lo=20.0, clear_lo=19.0)


def test_table_rows_pads_missing_version_with_nan() -> None:
    table = ThresholdTable.from_sets([ThresholdSet(alarm_hi=1.0, clear_hi=0.8)])
    rows = table.rows(np.array([0, -1]))
    assert rows["alarm_hi"][0] == 1.0 and math.isnan(rows["alarm_hi"][1])
    assert table.lower.tolist() == [False]


def test_table_rejects_clear_beyond_alarm() -> None:
    nan = np.array([NAN])
    with pytest.raises(RulesError, match="clear threshold lies beyond"):
        ThresholdTable(np.array([1.0]), np.array([1.2]), nan, nan, nan, nan, nan, nan)


def test_version_index_out_of_range_is_refused() -> None:
    table = ThresholdTable.from_sets([ThresholdSet(alarm_hi=1.0)])
    for bad in ([-2], [1]):
        with pytest.raises(RulesError, match=r"version indices must lie in \[-1, 1\)"):
            classify_versions(np.array([1.0]), np.array(bad, np.int64), table)
