"""As-of pair joins (implausible_pair): the kernel against the loop reference, and the named
edge case of a pair gap held 29 versus 30 min."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.integrity.common import CONSIDERED_EXCLUDE_MASK
from rules.integrity.pairs import PairParams, PairSpans, asof_join, implausible_spans
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import MIN, PERIOD, T0, Rows, rows

S = 1_000_000_000


def as_rows(s: PairSpans) -> list[tuple[object, ...]]:
    return list(zip(s.pair.tolist(), s.start.tolist(), s.end.tolist(), s.last.tolist(), s.worst.tolist(),
                    s.worst_ts.tolist(), s.n_times.tolist(), strict=True))


@settings(max_examples=150, deadline=None)
@given(rows(max_points=4, values=[0.1, 0.2, 0.5, 0.5, 0.8, 1.0, math.nan],
            steps=[0, 10 * S, PERIOD, PERIOD, 2 * PERIOD, 2 * PERIOD + 1, 5 * MIN], start_spread=3 * MIN),
       st.data())
def test_implausible_spans_match_reference(r: Rows, data: st.DataObject) -> None:
    n = r.n_points
    n_pairs = data.draw(st.integers(0, 4))
    up = data.draw(st.lists(st.integers(0, n - 1), min_size=n_pairs, max_size=n_pairs))
    down = data.draw(st.lists(st.integers(0, n - 1), min_size=n_pairs, max_size=n_pairs))
    periods = data.draw(st.lists(st.sampled_from([10 * S, PERIOD]), min_size=n, max_size=n))
    diff = data.draw(st.sampled_from([0.3, 0.0, -1.0]))
    min_dur = data.draw(st.sampled_from([0, PERIOD, 2 * MIN, 30 * MIN]))
    mask = data.draw(st.sampled_from([CONSIDERED_EXCLUDE_MASK, 0]))
    params = PairParams(min_difference=diff, min_duration_ns=min_dur, exclude_mask=mask)
    got = implausible_spans(r.point, r.ts, r.values, r.status, upstream=np.array(up, np.int64),
                            downstream=np.array(down, np.int64), n_points=n, period_ns=np.array(periods),
                            params=params)
    assert as_rows(got) == ref.implausible(*r.lists(), up, down, periods, 2, diff, min_dur, mask)


@settings(max_examples=150, deadline=None)
@given(rows(max_points=3, values=[0.1, 0.5, math.nan], steps=[0, 20 * S, PERIOD, 2 * PERIOD + 1]))
def test_asof_join_matches_reference(r: Rows) -> None:
    up, down = np.array([0, 1], np.int64), np.array([r.n_points - 1, 0], np.int64)
    j = asof_join(r.point, r.ts, r.values, r.status, upstream=up, downstream=down, n_points=r.n_points)
    p, t, v, st_ = r.lists()
    cons = {q: [(a, b) for a, b, s in rr if ref.is_considered(s, b, CONSIDERED_EXCLUDE_MASK)]
            for q, rr in ref.by_point(p, t, v, st_).items()}
    expected = []
    for k, (u, d) in enumerate(zip(up.tolist(), down.tolist(), strict=True)):
        for time in sorted({a for a, _ in cons.get(u, [])} | {a for a, _ in cons.get(d, [])}):
            expected.append((k, time, ref.asof(cons, u, time, 2 * PERIOD), ref.asof(cons, d, time, 2 * PERIOD)))
    got = list(zip(j.pair.tolist(), j.ts.tolist(), j.up.tolist(), j.down.tolist(), strict=True))
    assert [tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in row) for row in got] == \
        [tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in row) for row in expected]


def face_and_return(low_minutes: float, total_minutes: int = 60) -> PairSpans:
    """Face (point 0) at 0.8 every 30 s; its return airway (point 1) at 0.3 (0.5 below) for
    the first `low_minutes`, then 0.8 like the face."""
    t = np.arange(0, total_minutes * 60, 30) * S + T0
    up = np.full(len(t), 0.8)
    down = np.where(t < T0 + int(low_minutes * MIN), 0.3, 0.8)
    p = np.repeat(np.array([0, 1], np.int64), len(t))
    return implausible_spans(p, np.concatenate((t, t)), np.concatenate((up, down)), np.zeros(2 * len(t), np.int64),
                             upstream=np.array([0]), downstream=np.array([1]), n_points=2)


def test_pair_gap_of_29_min_is_not_a_finding() -> None:
    assert len(face_and_return(29)) == 0


def test_pair_gap_of_30_min_is_a_finding() -> None:
    got = face_and_return(30)
    assert as_rows(got) == [(0, T0, T0 + 30 * MIN, T0 + 30 * MIN - 30 * S, 0.5, T0, 60)]


def test_pair_gap_still_holding_counts_what_the_data_show() -> None:
    # Low from the start to the end of the data (last join at 29:30): not yet 30 min.
    assert len(face_and_return(60, total_minutes=30)) == 0
    got = face_and_return(60, total_minutes=31)  # last join at 30:30
    assert got.is_open.tolist() == [True] and got.last.tolist() == [T0 + 30 * MIN + 30 * S]


def test_a_stale_side_breaks_the_span() -> None:
    # The return airway stops reporting after 20 min: its value is too old 2 periods later,
    # so the condition stops holding at the first face reading where it is too old.
    t = np.arange(0, 60 * 60, 30) * S + T0
    td = t[t < T0 + 20 * MIN]
    p = np.concatenate((np.zeros(len(t), np.int64), np.ones(len(td), np.int64)))
    got = implausible_spans(p, np.concatenate((t, td)), np.concatenate((np.full(len(t), 0.8), np.full(len(td), 0.3))),
                            np.zeros(len(p), np.int64), upstream=np.array([0]), downstream=np.array([1]),
                            n_points=2, params=PairParams(min_duration_ns=10 * MIN))
    # The last return reading is at 19:30: at 20:30 it is 60 s old (2 periods, still fresh),
    # at 21:00 it is 90 s old.
    assert got.end.tolist() == [T0 + 21 * MIN]
