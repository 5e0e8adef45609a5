"""The pure parts of the DB side (no IO): the binary COPY parser against a struct loop, span
planning, episode bounds, events from rows, diffs and successors."""

from __future__ import annotations

import itertools
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.errors import RulesError
from rules.evaluate import (
    EpisodeRow,
    build_events,
    diff_rows,
    frequent_runs,
    plan_spans,
    start_bounds,
    successor,
)
from rules.inputs import MinePoints
from rules.load import PG_EPOCH_US, _index_sorted, parse_binary_readings
from rules.packs import builtin_pack, parse_pack

S = 1_000_000_000
MIN = 60 * S
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)

rows_strategy = st.lists(st.tuples(
    st.integers(1, 2**31 - 1), st.integers(-(2**62) // 1000, 2**62 // 1000),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**15), 2**15 - 1)), max_size=60)


def encode_loop(rows: list[tuple[int, int, float, int]]) -> bytes:
    """The plain-loop reference: the PostgreSQL binary COPY format, row by row."""
    out = bytearray(HEADER)
    for pid, us, value, status in rows:
        out += struct.pack(">hiiiqidih", 4, 4, pid, 8, us, 8, value, 2, status)
    return bytes(out + b"\xff\xff")


@settings(max_examples=200, deadline=None)
@given(rows_strategy)
def test_binary_copy_parser_matches_a_struct_loop(rows: list[tuple[int, int, float, int]]) -> None:
    point, ts, value, status = parse_binary_readings(encode_loop(rows))
    assert point.tolist() == [r[0] for r in rows]
    assert ts.tolist() == [(r[1] + PG_EPOCH_US) * 1000 for r in rows]
    assert [(a == b) or (math.isnan(a) and math.isnan(b)) for a, b in zip(value.tolist(), [r[2] for r in rows],
                                                                           strict=True)] == [True] * len(rows)
    assert status.tolist() == [r[3] for r in rows]


def test_binary_copy_parser_refuses_what_is_not_its_layout() -> None:
    good = encode_loop([(1, 0, 1.0, 0)])
    with pytest.raises(RulesError, match="not a PostgreSQL binary COPY"):
        parse_binary_readings(b"COPY" + good[4:])
    with pytest.raises(RulesError, match="row layout"):
        parse_binary_readings(good[:-3] + b"\xff\xff")
    with pytest.raises(RulesError, match="field layout"):  # a NULL status: length -1, shorter row
        parse_binary_readings(HEADER + struct.pack(">hiiiqidih", 5, 4, 1, 8, 0, 8, 1.0, 2, 0) + b"\xff\xff")


@settings(deadline=None)  # a shared 2-core machine: no wall-clock deadline
@given(st.lists(st.integers(0, 6), max_size=50))
def test_point_index_of_sorted_ids(raw: list[int]) -> None:
    ids = np.array([3, 8, 9, 20, 21, 40, 41], np.int64)
    point_id = np.sort(ids[np.array(raw, np.int64)]).astype(np.int32) if raw else np.zeros(0, np.int32)
    assert _index_sorted(ids, point_id).tolist() == [int(np.flatnonzero(ids == p)[0]) for p in point_id.tolist()]


US = 1_000  # stored times are whole microseconds
windows_strategy = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3_000)).map(
    lambda w: (w[0] * US, (w[0] + w[1]) * US)), min_size=1, max_size=30)


@settings(deadline=None)  # thousands of one-tick pieces are slow to check on a loaded machine
@given(windows_strategy, st.integers(0, 2_000), st.integers(1, 5_000))
def test_plan_spans_cover_every_window_in_bounded_pieces(windows: list[tuple[int, int]], slack_us: int,
                                                         piece_us: int) -> None:
    slack, piece = slack_us * US, piece_us * US
    spans = plan_spans(windows, slack_ns=slack, piece_ns=piece)
    assert all(a <= b for a, b in spans) and all(b - a <= piece for a, b in spans)
    assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(spans)), "in time order, disjoint"
    # Every window is inside the union of the spans: join spans that touch (the next starts
    # one stored tick after the last ends) and find the window inside one of the runs.
    runs: list[list[int]] = []
    for a, b in spans:
        if runs and a <= runs[-1][1] + US:
            runs[-1][1] = max(runs[-1][1], b)
        else:
            runs.append([a, b])
    for lo, hi in windows:
        assert any(a <= lo and hi <= b for a, b in runs), (lo, hi, runs)
    # Windows closer than the slack are evaluated as one group (the plain-loop reference); the
    # spans tile the groups exactly: nothing outside them, nothing twice.
    groups: list[list[int]] = []
    for lo, hi in sorted(windows):
        if groups and lo <= groups[-1][1] + slack:
            groups[-1][1] = max(groups[-1][1], hi)
        else:
            groups.append([lo, hi])
    assert all(any(g[0] <= a and b <= g[1] for g in groups) for a, b in spans)
    assert sum(b - a + US for a, b in spans) == sum(b - a + US for a, b in groups)


POINTS = MinePoints(mine_id=1, mine_code="M", timezone="Asia/Shanghai", ids=np.array([10, 11, 12, 13], np.int64),
                    codes=("P10", "P11", "P12", "P13"), gases=("methane", "methane", "methane", "co"),
                    face_codes=("F1", "F1", None, "F1"), max_gap_ns=np.full(4, 5 * MIN, np.int64))
THR = (1.0, 1.0, 1.5, 1.0, None, None, None, None)


def ep(point: int, start: int, end: int | None, peak: float = 1.2) -> EpisodeRow:
    return EpisodeRow(point, start, end, None if end is None else "cleared", peak, start, "alarm", 0, THR)


def test_start_bounds_reach_back_to_episodes_running_at_the_window() -> None:
    lo = 100 * MIN
    stored = [
        ep(10, 90 * MIN, None),  # open: recomputed from its start
        ep(11, 80 * MIN, 96 * MIN),  # ended by a gap 4 min before: a late reading could bridge it
        ep(12, 50 * MIN, 60 * MIN),  # long over: stays
        ep(13, 99 * MIN, 101 * MIN),  # running at lo
    ]
    assert start_bounds(lo, stored, POINTS).tolist() == [90 * MIN, 80 * MIN, lo, 99 * MIN]


def test_events_merge_by_face_and_gas_and_keep_faceless_points_apart() -> None:
    pack = builtin_pack("default")
    eps = [ep(10, 0, 5 * MIN), ep(11, 12 * MIN, 14 * MIN, 1.6),  # same face, 7 min apart: one event
           ep(12, 1 * MIN, 2 * MIN),  # no face: its own scope
           ep(13, 3 * MIN, 4 * MIN, 30.0)]  # CO on F1: a separate event (the gas is part of the identity)
    events = sorted(build_events(eps, POINTS, pack), key=lambda e: (e.gas, e.scope_key))
    assert [(e.gas, e.scope, e.scope_key, e.start, e.end, e.peak, e.tier) for e in events] == [
        ("co", "face", "F1", 3 * MIN, 4 * MIN, 30.0, None),
        ("methane", "face", "F1", 0, 14 * MIN, 1.6, "county"),
        ("methane", "point", "P12", 1 * MIN, 2 * MIN, 1.2, "county"),
    ]
    assert events[1].episodes == ((10, 0), (11, 12 * MIN))
    mine_wide = parse_pack({"name": "m", "events": {"scope": "mine"}}, "test")
    assert {(e.gas, e.scope_key) for e in build_events(eps, POINTS, mine_wide)} == {("co", "M"), ("methane", "M")}


def test_frequent_runs_are_consecutive_events_over_the_count() -> None:
    pack = builtin_pack("default")  # >= 3 methane events in a rolling 30 days
    d = 86_400 * S
    starts = np.array([0, 1 * d, 2 * d, 3 * d, 40 * d, 80 * d, 81 * d, 82 * d], np.int64)
    assert frequent_runs(pack, starts, "Asia/Shanghai") == [(2, 3), (7, 7)]


def test_diff_and_successor() -> None:
    d = diff_rows([("a", 1), ("b", 2), ("c", 3)], [("a", 1), ("b", 5), ("d", 4)], key=lambda r: r[0])
    assert (d.inserted, d.updated, d.deleted, d.unchanged) == ([("d", 4)], [(("b", 2), ("b", 5))], [("c", 3)], [("a", 1)])
    candidates = [((10, 20.0), "x"), ((5, 12.0), "y"), ((30, math.inf), "z")]
    assert successor((11, 11.0), candidates) == "y"  # the earliest one covering it
    assert successor((25, 26.0), candidates) is None
    assert successor((100, 200.0), candidates) == "z"  # an open event reaches for ever
