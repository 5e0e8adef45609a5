"""Relay readings when some of a relay's sources have no reading in a window (a live run's first,
short window): the simulator crashed with an IndexError there."""

from __future__ import annotations

import numpy as np

from simulators.relays import RELAY_DELAY_MS, Trace, relay_readings


def test_a_source_without_readings_beside_one_with_them_keeps_its_state_before() -> None:
    empty = np.zeros(0, np.int64)
    quiet = (Trace(before_prev=False), empty, np.zeros(0, np.bool_))
    tripped = (Trace(before_prev=False), np.array([1_000], np.int64), np.array([True]))
    ts, value = relay_readings(np.array([5_000], np.int64), [quiet, tripped], 1.0, None)
    # The periodic reading at 5 s shows the tripped source's state 2 s earlier (off = 0), and
    # the change is reported 2 s after the reading that caused it.
    assert ts.tolist() == [1_000 + RELAY_DELAY_MS, 5_000]
    assert value.tolist() == [0.0, 0.0]


def test_no_source_reading_at_all_shows_the_state_before() -> None:
    empty = np.zeros(0, np.int64)
    sources = [(Trace(before_prev=True), empty, np.zeros(0, np.bool_)),
               (Trace(before_prev=False), empty, np.zeros(0, np.bool_))]
    ts, value = relay_readings(np.array([5_000, 35_000], np.int64), sources, 1.0, None)
    assert ts.tolist() == [5_000, 35_000] and value.tolist() == [0.0, 0.0]
