"""Tailings ponds and slopes: rain, the water and phreatic levels it drives, creeping displacement.

Every quantity is a closed-form function of time over the rain events, so a
window of any length is computed without stepping a state through time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minewatch.registry import Point
from simulators.noise import F64, I64, key, normal, smooth, uniform
from simulators.params import ModelParams
from simulators.timebase import MS_DAY, MS_H

GEOTECH_TYPES = frozenset({"0021", "0029", "0030", "0031", "0032", "0033", "0034"})

# The pond drains with a ~3 day time constant; the phreatic line follows the
# pond through the dam body a further ~1 day behind (a second, cascaded lag).
TAU_POND_MS = 3 * MS_DAY
TAU_PHREATIC_MS = 1 * MS_DAY
# Rain older than this has drained away (e^-13 of its effect left).
LOOKBACK_MS = 40 * MS_DAY
# Level change per mm of "recent rain", in warning steps (|yellow − blue|):
# a 180 mm storm moves a quantity about two steps, natural rain a fraction of one.
STEPS_PER_MM = 0.012
INSTALLED_MS = 1_735_660_800_000  # 2025-01-01 local: displacement measured from here


@dataclass(frozen=True)
class Rain:
    """Rain of constant intensity over [start_ms, end_ms)."""

    start_ms: int
    end_ms: int
    mm_per_h: float


@dataclass(frozen=True)
class Acceleration:
    """A slope or dam point's displacement speeding up to `factor` × its creep rate."""

    start_ms: int
    duration_ms: int
    factor: float


# sensor type -> (base, step, worse) used when a point declares no levels
_DEFAULTS: dict[str, tuple[float, float, str]] = {
    "0029": (1224.5, 1.0, "higher"),
    "0030": (9.5, 1.0, "lower"),
    "0032": (135.0, 10.0, "lower"),
    "0033": (3.25, 0.5, "lower"),
    "0021": (20.0, 20.0, "higher"),
    "0034": (300.0, 150.0, "higher"),
}
_DECIMALS = {"0029": 2, "0030": 2, "0031": 1, "0032": 1, "0033": 2, "0021": 1, "0034": 1}


def decimals(p: Point) -> int:
    return _DECIMALS.get(p.sensor_type, 2)


def natural_rain(seed: int, mine: str, a_ms: int, b_ms: int, params: ModelParams) -> list[Rain]:
    """Unscripted rain events starting in [a_ms, b_ms): 1-6 h at 0.5-4 mm/h."""
    if params.rain_events_per_day <= 0:
        return []
    stream = key(seed, mine, "rain")
    per_day = max(1, math.ceil(params.rain_events_per_day))
    p = params.rain_events_per_day / per_day
    days = np.arange(a_ms // MS_DAY - 1, b_ms // MS_DAY + 1, dtype=np.int64)
    day_of = np.repeat(days, per_day)
    cand = (day_of * 16 + np.tile(np.arange(per_day, dtype=np.int64), days.size)) * 4
    has = uniform(stream, cand) < p
    cand, day_of = cand[has], day_of[has]
    start = day_of * MS_DAY + (uniform(stream, cand + 1) * MS_DAY).astype(np.int64)
    length = (MS_H + uniform(stream, cand + 2) * 5 * MS_H).astype(np.int64)
    rate = 0.5 + 3.5 * uniform(stream, cand + 3)
    return [Rain(int(s), int(s + n), float(round(r, 2))) for s, n, r in zip(start, length, rate, strict=True) if a_ms <= s < b_ms]


def rainfall_between(lo: I64, hi: I64, rains: list[Rain]) -> F64:
    """Rain (mm) fallen in (lo, hi] for each pair of instants."""
    out = np.zeros(hi.shape, dtype=np.float64)
    for r in rains:
        a = np.maximum(lo, r.start_ms)
        b = np.minimum(hi, r.end_ms)
        out += np.maximum(b - a, 0) / MS_H * r.mm_per_h
    return out


def rainfall_24h(ts: I64, rains: list[Rain]) -> F64:
    """Rain (mm) fallen in the 24 h up to each instant: what the service sums from a gauge."""
    return rainfall_between(ts - MS_DAY, ts, rains)


def _step(x: F64, tau1: float, tau2: float | None) -> F64:
    """Unit step response of one first-order lag, or of two in cascade; 0 before the step."""
    x = np.maximum(x, 0.0)
    if tau2 is None:
        return -np.expm1(-x / tau1)
    return 1.0 - (tau1 * np.exp(-x / tau1) - tau2 * np.exp(-x / tau2)) / (tau1 - tau2)


def recent_rain(ts: I64, rains: list[Rain], lagged: bool = False) -> F64:
    """Rain still held in the pond (mm), a leaky bucket; `lagged` adds the dam-body lag."""
    out = np.zeros(ts.shape, dtype=np.float64)
    tau2 = float(TAU_PHREATIC_MS) if lagged else None
    gain_mm = TAU_POND_MS / MS_H  # bucket level for 1 mm/h kept up for ever
    for r in rains:
        x = ts.astype(np.float64)
        s = _step(x - r.start_ms, TAU_POND_MS, tau2) - _step(x - r.end_ms, TAU_POND_MS, tau2)
        out += r.mm_per_h * gain_mm * s
    return out


def _base(p: Point) -> tuple[float, float, str]:
    lv = p.levels
    if lv is not None and lv.blue is not None and lv.yellow is not None and lv.yellow != lv.blue:
        step = abs(lv.yellow - lv.blue)
        base = lv.blue - 1.5 * step if lv.worse == "higher" else lv.blue + 1.5 * step
        return base, step, lv.worse
    return _DEFAULTS.get(p.sensor_type, (1.0, 0.1, "higher"))


def value(p: Point, seed: int, slot: I64, ts: I64, rains: list[Rain], accels: list[Acceleration], *,
          prev_ts: I64 | None = None) -> F64:
    """The natural reading of a geotech point at each instant. A rain gauge (0031) reads the rain
    fallen since its previous reading at `prev_ts` (rules.md §8; the service sums the trailing
    24 h), one period back when not given."""
    if p.sensor_type == "0031":
        if prev_ts is None:
            prev_ts = ts - round(p.expected_period_s * 1000)
        return rainfall_between(prev_ts, ts, rains)
    if p.sensor_type in ("0021", "0034"):
        return displacement(p, seed, slot, ts, accels)
    base, step, worse = _base(p)
    sign = 1.0 if worse == "higher" else -1.0
    rain = recent_rain(ts, rains, lagged=p.sensor_type == "0030")
    wander = 0.05 * smooth(key(seed, p.code, "geo-wander"), ts, 12 * MS_H)
    noise = 0.01 * normal(key(seed, p.code, "geo-noise"), slot)
    out: F64 = base + step * (sign * STEPS_PER_MM * rain + wander + noise)
    return out


def creep_per_day(p: Point, seed: int) -> float:
    """The point's constant creep rate (mm/day): blue reached after ~4-7 years."""
    base, _, _ = _base(p)
    blue = p.levels.blue if p.levels is not None and p.levels.blue is not None else base
    return blue * (0.25 + 0.2 * float(uniform(key(seed, p.code, "creep"), np.zeros(1, np.int64))[0])) / 730.0


def displacement(p: Point, seed: int, slot: I64, ts: I64, accels: list[Acceleration]) -> F64:
    """Cumulative displacement since installation: creep, optional acceleration, noise."""
    v0 = creep_per_day(p, seed) / MS_DAY  # mm per ms
    elapsed = np.maximum(ts - INSTALLED_MS, 0).astype(np.float64)
    out = v0 * elapsed
    for acc in accels:
        out += v0 * accelerated_extra(ts, acc)
    sd = 0.05 if p.sensor_type == "0021" else 0.2
    out += sd * normal(key(seed, p.code, "disp-noise"), slot)
    result: F64 = np.maximum(out, 0.0)
    return result


def accelerated_extra(ts: I64, acc: Acceleration) -> F64:
    """Extra displacement (creep-rate × ms) of an exponential speed-up, then constant speed.

    Speed is v0·e^(x/τ) over the phase, τ = duration / ln(factor), so it ends at
    factor × v0 and stays there; the displacement is the integral of the excess speed.
    """
    tau = acc.duration_ms / math.log(acc.factor)
    x = np.clip(ts - acc.start_ms, 0, acc.duration_ms).astype(np.float64)
    after = np.maximum(ts - acc.start_ms - acc.duration_ms, 0).astype(np.float64)
    result: F64 = tau * np.expm1(x / tau) - x + (acc.factor - 1.0) * after
    return result
