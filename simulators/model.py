"""The generation core for points: per mine and window, every reading with its status bits.

Values are closed-form functions of (seed, point, time) (see `noise`), so any
window is computed directly; only the status-bit hysteresis and the power-off
relays carry state from one window to the next, which is why a `MineModel`
must be asked for its windows in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from minewatch.registry import Mine, Point, Registry, Thresholds
from simulators import geotech, signals
from simulators.noise import F64, I64, key, uniform
from simulators.params import ModelParams
from simulators.relays import POWER_SWITCHES, Trace, relay_readings
from simulators.scenario import (
    Calibrate,
    Fault,
    MethaneRise,
    ProductionHalt,
    Rainfall,
    Scenario,
    Silence,
    SlopeAccelerate,
    StationDown,
    Stuck,
)
from simulators.status import (
    ALARM,
    CALIBRATING,
    OVER_RANGE,
    POWER_OFF,
    STATION_FAULT,
    alarm_bits,
    hysteresis_inputs,
)
from simulators.timebase import MS_DAY, MS_H, as_ms, production, windows

DEFAULT_CHUNK_MS = 6 * MS_H  # large enough that numpy's per-call cost vanishes, small for memory
MAX_JITTER_MS = 250


@dataclass(frozen=True, slots=True)
class ReadingBatch:
    """One mine's readings in one window, sorted by (ts, point); `point` indexes `codes`."""

    mine: str
    codes: tuple[str, ...]
    point: NDArray[np.int32]
    ts_ms: I64
    value: F64
    status: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.ts_ms.size)


def _role(p: Point) -> str:
    if p.sensor_type in geotech.GEOTECH_TYPES:
        return "geotech"
    if p.value_type == "MN":
        return "methane" if p.sensor_type in signals.METHANE_TYPES else "analog"
    if p.value_type == "LJ":
        return "cumulative"
    if p.value_type == "KG":
        return "equipment" if p.sensor_type == "1004" else "switch"
    return "state"


@dataclass
class _Plan:
    """What the model knows about one point, and the state it carries between windows."""

    index: int
    point: Point
    role: str
    period_ms: int
    phase_ms: int
    jitter_ms: int
    jitter_key: int
    decimals: int
    thresholds: Thresholds
    events: list[object] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)  # power-off sources of a relay/feed
    alarm_on: bool = False
    power_on: bool = False
    trace: Trace = field(default_factory=Trace)  # power-off history, when a relay depends on it


class MineModel:
    """Generates one mine's readings window by window (windows must come in time order)."""

    def __init__(
        self,
        mine: Mine,
        seed: int,
        start_ms: int,
        end_ms: int | None,
        scenario: Scenario | None = None,
        params: ModelParams | None = None,
    ) -> None:
        self.mine = mine
        self.seed = seed
        self.start_ms = start_ms
        self.end_ms = end_ms
        scenario = scenario or Scenario()
        self.params = scenario.params(params)
        self.codes = tuple(p.code for p in mine.points)
        idx = {c: i for i, c in enumerate(self.codes)}
        self.plans = [self._plan(i, p) for i, p in enumerate(mine.points)]
        for src in self.plans:
            for rel in src.point.relations:
                tgt = self.plans[idx[rel.target]]
                if rel.kind == "D" and tgt.point.sensor_type in POWER_SWITCHES:
                    tgt.sources.append(src.index)
        self.sources = sorted({s for p in self.plans for s in p.sources})
        self.source_set = frozenset(self.sources)
        stations = {s.code for s in mine.stations}
        mines_events = [e for e in scenario.events if getattr(e, "mine", None) == mine.code]
        self.halts = [(e.start_ms(start_ms), e.end_ms(start_ms)) for e in mines_events if isinstance(e, ProductionHalt)]
        self.scripted_rain = [
            geotech.Rain(e.start_ms(start_ms), e.end_ms(start_ms), e.mm_per_h) for e in mines_events if isinstance(e, Rainfall)
        ]
        self.station_down: dict[str, list[StationDown]] = {}
        for e in scenario.events:
            if isinstance(e, StationDown) and e.station in stations:
                self.station_down.setdefault(e.station, []).append(e)
            point = getattr(e, "point", None)
            if point in idx:
                self.plans[idx[point]].events.append(e)
            elif isinstance(e, SlopeAccelerate) and point is None and e.mine == mine.code:
                for plan in self.plans:
                    if plan.point.sensor_type in geotech.GEOTECH_TYPES:
                        plan.events.append(e)
        # relays are computed after their sources, in a second pass
        self.order = [p for p in self.plans if not p.sources] + [p for p in self.plans if p.sources]

    def _plan(self, i: int, p: Point) -> _Plan:
        period = max(1, round(p.expected_period_s * 1000))
        role = _role(p)
        dec = geotech.decimals(p) if role == "geotech" else signals.decimals(p)
        return _Plan(
            index=i,
            point=p,
            role=role,
            period_ms=period,
            phase_ms=int(uniform(key(self.seed, p.code, "phase"), np.zeros(1, np.int64))[0] * period),
            jitter_ms=min(MAX_JITTER_MS, period // 4),
            jitter_key=key(self.seed, p.code, "jitter"),
            decimals=dec,
            thresholds=p.effective_thresholds(),
        )

    # -- time ---------------------------------------------------------------------------

    def _slots(self, plan: _Plan, a: int, b: int) -> tuple[I64, I64]:
        k0 = -((plan.phase_ms - a) // plan.period_ms)  # ceil((a - phase) / period)
        k1 = -((plan.phase_ms - b) // plan.period_ms)
        slot = np.arange(k0, k1, dtype=np.int64)
        return slot, self._ts(plan, slot)

    def _ts(self, plan: _Plan, slot: I64) -> I64:
        jit = np.rint((uniform(plan.jitter_key, slot) - 0.5) * 2 * plan.jitter_ms).astype(np.int64)
        ts = slot * plan.period_ms + plan.phase_ms + jit
        hi = self.end_ms - 1 if self.end_ms is not None else np.iinfo(np.int64).max
        out: I64 = np.clip(ts, self.start_ms, hi)
        return out

    def production(self, ts: I64) -> F64:
        prod = production(ts, self.mine.timezone)
        for h0, h1 in self.halts:
            prod = np.where((ts >= h0) & (ts < h1), 0.0, prod)
        return prod

    def rains(self, a: int, b: int) -> list[geotech.Rain]:
        natural = geotech.natural_rain(self.seed, self.mine.code, a - geotech.LOOKBACK_MS, b, self.params)
        return natural + [r for r in self.scripted_rain if r.start_ms < b]

    # -- values -------------------------------------------------------------------------

    def natural(self, plan: _Plan, slot: I64, ts: I64) -> F64:
        """The unscripted value of a non-relay point at the given slots."""
        p, seed = plan.point, self.seed
        if plan.role == "methane":
            return signals.methane(p, seed, slot, ts, self.production(ts), self.params)
        if plan.role == "analog":
            return signals.analog(p, seed, slot, ts, self.production(ts))
        if plan.role == "geotech":
            accels = [
                geotech.Acceleration(e.start_ms(self.start_ms), e.duration, e.factor)
                for e in plan.events
                if isinstance(e, SlopeAccelerate)
            ]
            # A rain gauge reports the rain since its previous reading (rules.md §8): the previous
            # slot's own time, jitter included, so consecutive readings add up to the rain fallen.
            prev = self._ts(plan, slot - 1)
            lo = int(min(ts.min(), prev.min(), (ts - MS_DAY).min())) if ts.size else 0
            hi = int(ts.max()) + 1 if ts.size else 0
            return geotech.value(p, seed, slot, ts, self.rains(lo, hi), accels, prev_ts=prev)
        if plan.role == "cumulative":
            return signals.cumulative(p, seed, ts, self.mine.timezone, self.halts)
        if plan.role == "equipment":
            return signals.equipment(p, seed, ts, self.production(ts))
        return np.full(ts.shape, signals.switch_normal(p) if plan.role == "switch" else 0.0)

    def window(self, a: int, b: int) -> ReadingBatch:
        """Every reading whose nominal time falls in [a, b)."""
        parts: list[tuple[int, I64, F64, NDArray[np.int32]]] = []
        none = (np.zeros(0, np.int64), np.zeros(0, np.bool_))
        current: dict[int, tuple[I64, NDArray[np.bool_]]] = {}
        for plan in self.order:
            slot, ts = self._slots(plan, a, b)
            if plan.sources:
                sources = [(self.plans[s].trace, *current.get(s, none)) for s in plan.sources]
                normal = signals.switch_normal(plan.point)
                ts, value = relay_readings(ts, sources, normal, self.end_ms)
            else:
                value = self.natural(plan, slot, ts)
            ts, value, status = self._script(plan, ts, value)
            if plan.role in ("methane", "analog"):
                status, po = self._bits(plan, value, status)
                if plan.index in self.source_set:
                    current[plan.index] = (ts, po)
            parts.append((plan.index, ts, value, status))
        for s in self.sources:
            self.plans[s].trace.roll(*current.get(s, none))
        return self._batch(parts)

    def _batch(self, parts: list[tuple[int, I64, F64, NDArray[np.int32]]]) -> ReadingBatch:
        if not parts:
            z = np.zeros(0, np.int64)
            return ReadingBatch(
                self.mine.code,
                self.codes,
                z.astype(np.int32),
                z,
                z.astype(float),
                z.astype(np.int32),
            )
        point = np.concatenate([np.full(t.size, i, np.int32) for i, t, _, _ in parts])
        ts = np.concatenate([t for _, t, _, _ in parts])
        value = np.concatenate([v for _, _, v, _ in parts])
        status = np.concatenate([s for _, _, _, s in parts])
        order = np.lexsort((point, ts))
        return ReadingBatch(self.mine.code, self.codes, point[order], ts[order], value[order], status[order])

    def _script(self, plan: _Plan, ts: I64, value: F64) -> tuple[I64, F64, NDArray[np.int32]]:
        """Scenario events on this point and its station; then rounding and range checks."""
        status = np.zeros(ts.shape, np.int32)
        keep = np.ones(ts.shape, np.bool_)
        s0 = self.start_ms
        for e in plan.events:
            if isinstance(e, MethaneRise):
                hold0, hold1 = e.hold_ms(s0)
                value = signals.ramp_to(value, ts, e.start_ms(s0), hold0, hold1, e.ramp, e.to)
            elif isinstance(e, Calibrate):
                start, end = e.start_ms(s0), e.end_ms(s0)
                status[(ts >= start) & (ts < end)] |= CALIBRATING
                if e.to is not None:
                    ramp = min(e.ramp, e.duration // 2)
                    value = signals.ramp_to(value, ts, start, start + ramp, end - ramp, ramp, e.to)
            elif isinstance(e, Fault):
                status[(ts >= e.start_ms(s0)) & (ts < e.end_ms(s0))] |= e.bits
            elif isinstance(e, Stuck):
                inside = (ts >= e.start_ms(s0)) & (ts < e.end_ms(s0))
                if inside.any():
                    value = np.where(inside, self._frozen(plan, e.start_ms(s0)), value)
            elif isinstance(e, Silence):
                keep &= ~((ts >= e.start_ms(s0)) & (ts < e.end_ms(s0)))
        for e in self.station_down.get(plan.point.station, []):
            inside = (ts >= e.start_ms(s0)) & (ts < e.end_ms(s0))
            if e.state == 2:
                status[inside] |= STATION_FAULT
            else:  # comm lost / unknown: nothing reaches the centre
                keep &= ~inside
        value = np.round(value, plan.decimals)
        p = plan.point
        if p.value_type == "MN" and p.range_high is not None:
            status[value > p.range_high] |= OVER_RANGE
            value = np.minimum(value, p.range_high)
        if p.value_type == "MN" and p.range_low is not None:
            status[value < p.range_low] |= OVER_RANGE
            value = np.maximum(value, p.range_low)
        return ts[keep], value[keep], status[keep]

    def _frozen(self, plan: _Plan, at: int) -> float:
        """The natural value at the point's last slot before `at` (what a stuck sensor keeps)."""
        if plan.sources:
            return signals.switch_normal(plan.point)
        slot = np.array([-((plan.phase_ms - at) // plan.period_ms) - 1], np.int64)
        return float(self.natural(plan, slot, self._ts(plan, slot))[0])

    def _bits(self, plan: _Plan, value: F64, status: NDArray[np.int32]) -> tuple[NDArray[np.int32], NDArray[np.bool_]]:
        """Alarm (1) and power-off (2) bits by the thresholds, with hysteresis across windows."""
        alarm, power = hysteresis_inputs(plan.thresholds, value, status)
        a_state = alarm_bits(alarm, plan.alarm_on)
        p_state = alarm_bits(power, plan.power_on)
        if a_state.size:
            plan.alarm_on, plan.power_on = bool(a_state[-1]), bool(p_state[-1])
        out = status | np.where(a_state, ALARM, 0).astype(np.int32) | np.where(p_state, POWER_OFF, 0).astype(np.int32)
        return out, p_state


def generate(
    registry: Registry,
    seed: int,
    start: datetime | int,
    end: datetime | int | None,
    scenario: Scenario | None = None,
    *,
    params: ModelParams | None = None,
    chunk_ms: int = DEFAULT_CHUNK_MS,
) -> Iterator[ReadingBatch]:
    """Per-mine reading batches of the whole registry, window by window, deterministic in `seed`.

    `start` / `end` are aware datetimes or int64 ns; `end=None` runs for ever.
    """
    s, e = as_ms(start), (as_ms(end) if end is not None else None)
    models = [MineModel(m, seed, s, e, scenario, params) for m in registry.mines]
    for a, b in windows(s, e, chunk_ms):
        for model in models:
            batch = model.window(a, b)
            if len(batch):
                yield batch
