"""Status bits: the vectorized hysteresis against a plain loop, and the threshold sides."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.registry import Thresholds
from simulators.status import CALIBRATING, alarm_bits, hysteresis_inputs


def _reference(events: list[int], initial: bool) -> list[bool]:
    state, out = initial, []
    for e in events:
        if e > 0:
            state = True
        elif e < 0:
            state = False
        out.append(state)
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), max_size=200), st.booleans())
def test_alarm_bits_agree_with_a_plain_loop(events: list[int], initial: bool) -> None:
    got = alarm_bits(np.array(events, np.int8), initial)
    assert got.tolist() == _reference(events, initial)


def _states(t: Thresholds, values: list[float], status: list[int] | None = None) -> tuple[list[bool], list[bool]]:
    v = np.array(values)
    s = np.array(status or [0] * len(values), np.int32)
    a, p = hysteresis_inputs(t, v, s)
    return alarm_bits(a, False).tolist(), alarm_bits(p, False).tolist()


def test_methane_alarm_and_power_off_with_hysteresis() -> None:
    t = Thresholds(alarm_hi=1.0, clear_hi=1.0, poweroff_hi=1.5, restore_hi=1.0)
    alarm, power = _states(t, [0.5, 1.0, 1.6, 1.2, 0.99, 1.49])
    assert alarm == [False, True, True, True, False, True]
    assert power == [False, False, True, True, False, False]


def test_lower_side_oxygen() -> None:
    t = Thresholds(alarm_lo=20.0, clear_lo=20.0)
    alarm, power = _states(t, [20.5, 19.9, 19.5, 20.0])
    assert alarm == [False, True, True, False]
    assert power == [False] * 4


def test_calibrating_readings_hold_the_state() -> None:
    t = Thresholds(alarm_hi=1.0, clear_hi=1.0, poweroff_hi=1.5, restore_hi=1.0)
    alarm, power = _states(t, [0.5, 2.0, 2.0, 0.5], [0, CALIBRATING, CALIBRATING, 0])
    assert alarm == [False] * 4 and power == [False] * 4
