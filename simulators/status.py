"""Point-status bits (formats.md) and the hysteresis that sets alarm and power-off."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from minewatch.registry import Thresholds
from simulators.noise import F64

ALARM = 1
POWER_OFF = 2
CALIBRATING = 4
OVER_RANGE = 8
STATION_FAULT = 16
NOT_POLLED = 32
PAUSED = 64
SENSOR_FAULT = 128
# Readings carrying these bits say nothing about the gas: they neither raise
# nor clear an alarm (rules.md §1 treats them the same way).
UNTRUSTED = CALIBRATING | STATION_FAULT | SENSOR_FAULT

# per reading: +1 sets the state, -1 clears it, 0 holds it
Events = NDArray[np.int8]


def _side(value: F64, on_hi: float | None, off_hi: float | None, on_lo: float | None, off_lo: float | None) -> Events:
    ev = np.zeros(value.shape, np.int8)
    on = np.zeros(value.shape, np.bool_)
    off = np.ones(value.shape, np.bool_)
    if on_hi is not None:
        on |= value >= on_hi
        off &= value < (off_hi if off_hi is not None else on_hi)
    if on_lo is not None:
        on |= value < on_lo
        off &= value >= (off_lo if off_lo is not None else on_lo)
    if on_hi is None and on_lo is None:
        return ev
    ev[off] = -1
    ev[on] = 1  # on wins where a misconfigured band makes both true
    return ev


def hysteresis_inputs(t: Thresholds, value: F64, status: NDArray[np.int32]) -> tuple[Events, Events]:
    """Set/clear events for the alarm and the power-off state of each reading.

    Alarm sets at ≥ alarm_hi (or < alarm_lo) and clears under clear_hi (at or
    over clear_lo); power-off sets at ≥ poweroff_hi and clears under restore_hi.
    Untrusted readings hold the state.
    """
    alarm = _side(value, t.alarm_hi, t.clear_hi, t.alarm_lo, t.clear_lo)
    power = _side(value, t.poweroff_hi, t.restore_hi, t.poweroff_lo, t.restore_lo)
    untrusted = (status & UNTRUSTED) != 0
    alarm[untrusted] = 0
    power[untrusted] = 0
    return alarm, power


def alarm_bits(events: Events, initial: bool) -> NDArray[np.bool_]:
    """The state after each reading: the last non-zero event so far decides, else `initial`."""
    n = events.size
    idx = np.where(events != 0, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    result: NDArray[np.bool_] = np.where(last >= 0, events[np.maximum(last, 0)] > 0, initial)
    return result
