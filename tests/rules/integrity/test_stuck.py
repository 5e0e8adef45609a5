"""Equal-value runs (stuck): the kernel against the loop reference, and the named edge case of
a run of 1 h 59 min versus 2 h, with the mine's other points moving or flat."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.errors import RulesError
from rules.integrity.common import CONSIDERED_EXCLUDE_MASK
from rules.integrity.stuck import StuckParams, StuckRuns, stuck_runs
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import MIN, T0, Rows, rows

S = 1_000_000_000
H = 60 * MIN


def as_rows(r: StuckRuns) -> list[tuple[object, ...]]:
    return list(zip(r.point_idx.tolist(), r.start.tolist(), r.last.tolist(), r.end.tolist(),
                    r.value.tolist(), r.n_readings.tolist(), r.witness.tolist(), strict=True))


@settings(max_examples=150, deadline=None)
@given(rows(max_points=5, values=[0.12, 0.12, 0.12, 0.3, 0.5, math.nan]), st.data())
def test_stuck_matches_reference(r: Rows, data: st.DataObject) -> None:
    n = r.n_points
    mine = data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    analog = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    methane = [a and data.draw(st.booleans()) for a in analog]
    min_dur = data.draw(st.sampled_from([1, 30 * S, 60 * S, 5 * MIN, 30 * MIN, 2 * H]))
    mask = data.draw(st.sampled_from([CONSIDERED_EXCLUDE_MASK, 0]))
    got = stuck_runs(r.point, r.ts, r.values, r.status, point_mine=np.array(mine), analog=np.array(analog),
                     methane=np.array(methane), params=StuckParams(min_duration_ns=min_dur, exclude_mask=mask))
    assert as_rows(got) == ref.stuck(*r.lists(), mine, analog, methane, min_dur, mask)


def mine_of_two(run_minutes: int, other_moves: bool) -> StuckRuns:
    """Point 0 (methane) reads 0.12 every 30 s for `run_minutes`, then 0.30; point 1 (another
    analog point of the mine) alternates 0.40 / 0.41 or stays at 0.40."""
    t0 = np.arange(0, run_minutes * 60 + 1, 30) * S + T0
    t0 = np.append(t0, t0[-1] + 30 * S)
    v0 = np.append(np.full(len(t0) - 1, 0.12), 0.30)
    t1 = np.arange(0, 3 * 3600, 30) * S + T0
    v1 = np.where(np.arange(len(t1)) % 2 == 1, 0.41, 0.40) if other_moves else np.full(len(t1), 0.40)
    p = np.concatenate((np.zeros(len(t0), np.int64), np.ones(len(t1), np.int64)))
    return stuck_runs(p, np.concatenate((t0, t1)), np.concatenate((v0, v1)), np.zeros(len(p), np.int64),
                      point_mine=np.array([7, 7]), analog=np.array([True, True]), methane=np.array([True, False]))


def test_stuck_run_of_1h59_is_not_a_finding() -> None:
    assert len(mine_of_two(119, other_moves=True)) == 0


def test_stuck_run_of_2h_is_a_finding() -> None:
    got = mine_of_two(120, other_moves=True)
    assert as_rows(got) == [(0, T0, T0 + 2 * H, T0 + 2 * H + 30 * S, 0.12, 241, 1)]


def test_stuck_run_of_2h_in_a_flat_mine_is_not_a_finding() -> None:
    assert len(mine_of_two(120, other_moves=False)) == 0
    assert len(mine_of_two(119, other_moves=False)) == 0


def test_stuck_run_still_going_is_open_and_ignores_excluded_rows() -> None:
    # 0.12 for 2 h with a calibrating row (2.0, status 4) in the middle: still one run, open.
    t = np.arange(0, 2 * 3600 + 1, 600) * S + T0
    v = np.full(len(t), 0.12)
    status = np.zeros(len(t), np.int64)
    v[3], status[3] = 2.0, 4
    p = np.concatenate((np.zeros(len(t), np.int64), [1, 1]))
    got = stuck_runs(p, np.concatenate((t, [T0, T0 + 3600 * S])), np.concatenate((v, [0.2, 0.3])),
                     np.concatenate((status, [0, 0])), point_mine=np.array([0, 0]),
                     analog=np.array([True, True]), methane=np.array([True, True]))
    assert as_rows(got) == [(0, T0, T0 + 2 * H, -1, 0.12, 12, 1)] and got.is_open.tolist() == [True]


def test_a_run_needs_a_positive_duration() -> None:
    z = np.zeros(0, np.int64)
    with pytest.raises(RulesError, match="positive"):
        stuck_runs(z, z, np.zeros(0), z, point_mine=z, analog=np.zeros(0, bool), methane=np.zeros(0, bool),
                   params=StuckParams(min_duration_ns=0))
