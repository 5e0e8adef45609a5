"""Silence spans (offline, station_fault): the kernels against the loop references, and the
named edge case of silence exactly 3 × period versus 3 × period + 1 s."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.errors import RulesError
from rules.integrity.silence import (
    SilenceParams,
    SilenceSpans,
    flagged_station_states,
    offline_spans,
    station_fault_spans,
)
from tests.rules.integrity import reference as ref
from tests.rules.integrity.strategies import PERIOD, T0, Rows, rows

S = 1_000_000_000


def spans(s: SilenceSpans) -> list[tuple[int, int, int, int]]:
    return list(zip(s.subject.tolist(), s.start.tolist(), s.end.tolist(), s.raised_at.tolist(), strict=True))


@settings(max_examples=150, deadline=None)
@given(rows(), st.data())
def test_offline_matches_reference(r: Rows, data: st.DataObject) -> None:
    periods = data.draw(st.lists(st.sampled_from([PERIOD, 10 * S, 60 * S]), min_size=r.n_points,
                                 max_size=r.n_points))
    # Each point's last reading before these rows: none, or some time before its first row.
    seen = data.draw(st.lists(st.sampled_from([-1, 0, 90 * S, 90 * S + 1, 3600 * S]),
                              min_size=r.n_points, max_size=r.n_points))
    firsts = {p: t for p, t in reversed(list(zip(r.point.tolist(), r.ts.tolist(), strict=True)))}
    last_seen = [-1 if s < 0 else firsts.get(p, T0) - s - 1 for p, s in enumerate(seen)]
    end = int(r.ts.max()) if len(r.ts) else T0
    now = end + data.draw(st.sampled_from([-S, 0, 90 * S, 90 * S + 1, 300 * S]))
    k = data.draw(st.sampled_from([1, 3]))
    got = offline_spans(r.point, r.ts, n_points=r.n_points, now_ns=now, period_ns=np.array(periods),
                        last_seen_ns=np.array(last_seen), params=SilenceParams(multiplier=k))
    assert spans(got) == ref.offline(r.point.tolist(), r.ts.tolist(), r.n_points, now, periods, last_seen, k)


@settings(max_examples=150, deadline=None)
@given(rows(statuses=[0, 1, 2, 9, 0, 0]), st.sampled_from([0, 60 * S, 91 * S]))
def test_station_fault_matches_reference(r: Rows, after: int) -> None:
    # The generator's status doubles as the FZSS run state here.
    now = (int(r.ts.max()) if len(r.ts) else T0) + after
    got = station_fault_spans(r.point, r.ts, r.status, n_stations=r.n_points, now_ns=now)
    p = SilenceParams()
    assert spans(got) == ref.station_faults(r.point.tolist(), r.ts.tolist(), r.status.tolist(), r.n_points,
                                            now, [PERIOD] * r.n_points, 3, p.faulty_states, p.good_states)


@settings(max_examples=150, deadline=None)
@given(rows(statuses=[0, 16, 16, 20, 1]), st.data())
def test_flagged_station_states_match_reference(r: Rows, data: st.DataObject) -> None:
    stations = data.draw(st.lists(st.integers(-1, 1), min_size=r.n_points, max_size=r.n_points))
    s, t, state = flagged_station_states(r.point, r.ts, r.status, np.array(stations), n_stations=2)
    expected = ref.flagged_states(r.point.tolist(), r.ts.tolist(), r.status.tolist(), stations, 2, 16)
    assert list(zip(s.tolist(), t.tolist(), state.tolist(), strict=True)) == expected


def one_point(times_s: list[int], now_s: int) -> SilenceSpans:
    t = np.array(times_s, np.int64) * S + T0
    return offline_spans(np.zeros(len(t), np.int64), t, n_points=1, now_ns=T0 + now_s * S)


def test_silence_of_exactly_three_periods_is_not_offline() -> None:
    assert len(one_point([0, 90, 120], now_s=150)) == 0


def test_silence_of_three_periods_and_one_second_is_offline() -> None:
    got = one_point([0, 91, 121], now_s=150)
    assert spans(got) == [(0, T0, T0 + 91 * S, T0 + 90 * S)]
    assert got.limit_ns.tolist() == [90 * S] and got.seen_ns.tolist() == [91 * S]


def test_open_silence_fires_on_the_clock_alone() -> None:
    # No rows at all in this pass: the clock-driven evaluation with the last reading known.
    z = np.zeros(0, np.int64)
    last = np.array([T0, T0 + 50 * S, -1], np.int64)
    at_limit = offline_spans(z, z, n_points=3, now_ns=T0 + 90 * S, last_seen_ns=last)
    assert len(at_limit) == 0
    got = offline_spans(z, z, n_points=3, now_ns=T0 + 91 * S, last_seen_ns=last)
    assert spans(got) == [(0, T0, -1, T0 + 90 * S)] and got.is_open.tolist() == [True]
    assert got.seen_ns.tolist() == [91 * S]


def test_station_fault_runs_from_first_faulty_to_first_good() -> None:
    t = T0 + np.array([0, 30, 60, 90, 120, 200], np.int64) * S
    state = np.array([0, 1, 9, 2, 9, 0])
    got = station_fault_spans(np.zeros(6, np.int64), t, state, n_stations=1, now_ns=T0 + 1000 * S)
    assert spans(got) == [(0, T0 + 30 * S, T0 + 200 * S, T0 + 120 * S)]
    # Exactly 3 × period of fault is not a finding.
    short = station_fault_spans(np.zeros(2, np.int64), T0 + np.array([0, 90]) * S, np.array([1, 0]),
                                n_stations=1, now_ns=T0 + 1000 * S)
    assert len(short) == 0


def test_all_points_flagged_makes_a_station_fault() -> None:
    # Points 0 and 1 on station 0; the station is faulty from 60 s (both flagged) to 150 s.
    p = np.array([0, 0, 0, 0, 1, 1, 1], np.int64)
    t = T0 + np.array([0, 60, 120, 150, 30, 60, 120], np.int64) * S
    status = np.array([16, 16, 16, 0, 0, 16, 16])
    s, ts, state = flagged_station_states(p, t, status, np.array([0, 0]), n_stations=1)
    # Rows only where a point turns: point 0 flagged at 0 s (point 1 not yet), point 1 at
    # 60 s (both: fault), point 0 back at 150 s (good).
    assert list(zip(ts.tolist(), state.tolist(), strict=True)) == [
        (T0, 0), (T0 + 60 * S, 2), (T0 + 150 * S, 0)]
    got = station_fault_spans(s, ts, state, n_stations=1, now_ns=T0 + 1000 * S)
    assert spans(got) == []  # 90 s: exactly the limit
    got = station_fault_spans(s, ts, state, n_stations=1, now_ns=T0, period_ns=29 * S)
    assert spans(got) == [(0, T0 + 60 * S, T0 + 150 * S, T0 + 147 * S)]


def test_unsorted_input_is_refused() -> None:
    with pytest.raises(RulesError, match="sorted"):
        offline_spans(np.zeros(2, np.int64), np.array([2, 1]), n_points=1, now_ns=0)
