"""Natural (unscripted) signals of underground points: gas, environment, equipment and counters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minewatch.registry import Point
from simulators.noise import F64, I64, key, normal, smooth, uniform
from simulators.params import ModelParams
from simulators.timebase import MS_H, MS_MIN, SHIFT_OUTPUT_H, SHIFTS_PER_DAY, production_hours

METHANE_TYPES = ("0001", "0011", "0043")

# Methane band (%CH4) a point wanders in, by location type: bottom while the
# face is idle, top at full production. Intake air is nearly clean; the upper
# corner (T0) collects gas from the goaf and is the highest.
METHANE_BANDS: dict[str, tuple[float, float]] = {
    "T0": (0.30, 0.70),
    "T1": (0.20, 0.50),
    "T2": (0.25, 0.55),
    "shearer": (0.20, 0.55),
    "heading": (0.15, 0.45),
    "heading_return": (0.15, 0.40),
    "return_middle": (0.20, 0.50),
    "main_return": (0.15, 0.35),
    "intake": (0.02, 0.08),
    "face_intake": (0.02, 0.08),
    "chamber": (0.02, 0.08),
    "other": (0.05, 0.30),
}


@dataclass(frozen=True)
class Band:
    """Where an analog quantity lives: band bottom/top, weight of production, noise, digits."""

    lo: float
    hi: float
    production: float  # weight of production in [−1, 1]: O2 drops a little while the faces run
    sd: float
    decimals: int


ANALOG_BANDS: dict[str, Band] = {
    "0002": Band(1.5, 3.5, 0.1, 0.05, 2),  # wind speed m/s
    "0003": Band(18.0, 26.0, 0.4, 0.1, 1),  # temperature ℃
    "0004": Band(1.0, 8.0, 0.6, 0.4, 0),  # CO ppm (alarm 24)
    "0005": Band(600.0, 1400.0, 0.0, 10.0, 0),  # wind pressure Pa
    "0006": Band(1.5, 3.0, 0.2, 0.02, 2),  # negative pressure kPa
    "0009": Band(0.0, 2.0, 0.5, 0.1, 1),  # H2S ppm
    "0012": Band(20.4, 20.9, -0.5, 0.03, 1),  # O2 % (alarm below 20)
    "0013": Band(0.05, 0.35, 0.5, 0.01, 2),  # CO2 % (alarm 0.5)
    "0014": Band(1.0, 15.0, 0.8, 0.5, 1),  # dust mg/m3
    "0018": Band(75.0, 95.0, 0.0, 0.5, 0),  # humidity %RH
    "0019": Band(800.0, 1500.0, 0.0, 5.0, 0),  # air volume m3/min
    "0020": Band(0.0, 5.0, 0.0, 0.05, 1),  # roof separation mm
    "0022": Band(15.0, 40.0, 0.0, 0.5, 1),  # pipe methane %
}

# Spikes are looked for in windows of this length; a spike lasts at most 10 min,
# so only the previous window's spike can spill into the current one.
_SPIKE_WINDOW = MS_H
_SPIKE_MAX = 10 * MS_MIN


def methane_band(p: Point) -> tuple[float, float]:
    return METHANE_BANDS.get(p.location_type, METHANE_BANDS["other"])


def analog_band(p: Point) -> Band:
    """The band of a non-methane analog point; unknown types sit low in their declared range."""
    band = ANALOG_BANDS.get(p.sensor_type)
    if band is not None:
        return band
    lo = p.range_low if p.range_low is not None else 0.0
    hi = p.range_high if p.range_high is not None else 1.0
    span = hi - lo
    return Band(lo + 0.2 * span, lo + 0.4 * span, 0.2, 0.005 * span, 2)


def decimals(p: Point) -> int:
    """Digits a real sensor of this type shows (methane 0.01 %CH4, CO 1 ppm, ...)."""
    if p.value_type != "MN":
        return 1 if p.value_type == "LJ" else 0
    if p.sensor_type in METHANE_TYPES:
        return 2
    return analog_band(p).decimals


def methane(p: Point, seed: int, slot: I64, ts: I64, prod: F64, params: ModelParams) -> F64:
    """Methane: band position follows production, wanders, has sensor noise and rare spikes."""
    lo, hi = methane_band(p)
    level = (
        0.2
        + 0.55 * prod
        + 0.2 * smooth(key(seed, p.code, "ch4-fast"), ts, 20 * MS_MIN)
        + 0.1 * smooth(key(seed, p.code, "ch4-slow"), ts, 6 * MS_H)
    )
    value = lo + (hi - lo) * np.clip(level, 0.0, 1.1)
    value += (0.03 * (hi - lo) + 0.003) * normal(key(seed, p.code, "ch4-noise"), slot)
    alarm = p.effective_thresholds().alarm_hi
    if params.spikes_per_day > 0 and alarm is not None and alarm > lo:
        value += spikes(key(seed, p.code, "ch4-spike"), ts, params, alarm - lo)
    return np.maximum(value, 0.0)


def spikes(stream: int, ts: I64, params: ModelParams, headroom: float) -> F64:
    """Sum of the random spikes active at each instant (triangular: fast rise, slower decay)."""
    p_window = min(1.0, params.spikes_per_day * _SPIKE_WINDOW / (24 * MS_H))
    w_now = np.floor_divide(ts, _SPIKE_WINDOW)
    out = np.zeros(ts.shape, dtype=np.float64)
    for w in (w_now, w_now - 1):
        has = uniform(stream, w * 4) < p_window
        onset = w * _SPIKE_WINDOW + (uniform(stream, w * 4 + 1) * (_SPIKE_WINDOW - _SPIKE_MAX)).astype(np.int64)
        length = 2 * MS_MIN + uniform(stream, w * 4 + 2) * 8 * MS_MIN
        height = -params.spike_scale * np.log1p(-uniform(stream, w * 4 + 3)) * headroom
        x = (ts - onset) / length
        shape = np.where(x < 1 / 3, 3.0 * x, 1.5 * (1.0 - x))
        out += np.where(has & (x >= 0) & (x < 1), shape * height, 0.0)
    return out


def analog(p: Point, seed: int, slot: I64, ts: I64, prod: F64) -> F64:
    """A non-methane analog quantity inside its band."""
    b = analog_band(p)
    pos = (
        0.5
        + b.production * (prod - 0.5)
        + 0.25 * smooth(key(seed, p.code, "an-fast"), ts, 30 * MS_MIN)
        + 0.15 * smooth(key(seed, p.code, "an-slow"), ts, 12 * MS_H)
    )
    value = b.lo + (b.hi - b.lo) * np.clip(pos, 0.0, 1.0)
    value += b.sd * normal(key(seed, p.code, "an-noise"), slot)
    return np.maximum(value, 0.0) if b.lo >= 0 else value


def equipment(p: Point, seed: int, ts: I64, prod: F64) -> F64:
    """Shearer / conveyor on-off: runs while the face produces, with occasional stops."""
    stops = smooth(key(seed, p.code, "eq-stop"), ts, 30 * MS_MIN) < -0.75
    return np.where((prod > 0.25) & ~stops, 1.0, 0.0)


def switch_normal(p: Point) -> float:
    """The value a switch point shows in normal operation (air door closed 0, others on 1)."""
    return 0.0 if p.sensor_type == "1002" else 1.0


def cumulative(p: Point, seed: int, ts: I64, tz: str, halts: list[tuple[int, int]]) -> F64:
    """A cumulative counter; coal output (3001) rises only while the faces produce."""
    if p.sensor_type != "3001":
        rate = 20.0 + 40.0 * float(uniform(key(seed, p.code, "lj-rate"), np.zeros(1, np.int64))[0])
        return rate * np.maximum(ts - _COUNTER_ZERO_MS, 0) / MS_H
    out = _coal(p, seed, ts, tz)
    for h0, h1 in halts:
        inside = ts > h0
        if inside.any():
            clipped = np.clip(ts[inside], h0, h1)
            out[inside] -= _coal(p, seed, clipped, tz) - _coal(p, seed, np.full(1, h0, np.int64), tz)[0]
    return out


_COUNTER_ZERO_MS = 1_704_038_400_000  # 2024-01-01 local: where the counters were last reset


def _coal(p: Point, seed: int, ts: I64, tz: str) -> F64:
    # tonnes/h at full output, and a day-to-day factor of 0.8-1.2
    rate = 150.0 + 200.0 * float(uniform(key(seed, p.code, "coal-rate"), np.zeros(1, np.int64))[0])
    day, done = production_hours(ts, tz)
    day = np.maximum(day, 0)
    if day.size == 0:
        return np.zeros(0, dtype=np.float64)
    days = np.arange(int(day.max()) + 1, dtype=np.int64)
    factor = 0.8 + 0.4 * uniform(key(seed, p.code, "coal-day"), days)
    before = np.concatenate([[0.0], np.cumsum(factor)])[day] * SHIFTS_PER_DAY * SHIFT_OUTPUT_H
    result: F64 = rate * (before + factor[day] * done)
    return result


def ramp_to(value: F64, ts: I64, start: int, hold0: int, hold1: int, ramp: int, to: float) -> F64:
    """Blend towards `to`: linear up over [start, hold0), `to` over [hold0, hold1], down after."""
    t = ts.astype(np.float64)
    if ramp <= 0:
        w = ((ts >= start) & (ts <= hold1)).astype(np.float64)
    else:
        up = (t - start) / ramp
        down = (hold1 + ramp - t) / ramp
        w = np.clip(np.minimum(up, down), 0.0, 1.0)
        w[(ts >= hold0) & (ts <= hold1)] = 1.0
    out: F64 = value + (to - value) * w
    return out
