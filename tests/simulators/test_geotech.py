"""Tailings and slopes: rain raises pond and phreatic line; slopes creep and can accelerate."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.registry import Registry
from simulators.geotech import Rain, rainfall_24h, recent_rain
from simulators.timebase import MS_H
from tests.simulators.conftest import PIT, START, TAILINGS, flatten, ms, run

WATER = f"{TAILINGS}_01MN0029_W0001"
PHREATIC = f"{TAILINGS}_01MN0030_P0001"
GAUGE = f"{TAILINGS}_01MN0031_R0001"
FREEBOARD = f"{TAILINGS}_01MN0033_F0001"
SLOPE = f"{PIT}_01MN0034_S0001"


def _euler(ts: np.ndarray, rains: list[Rain], lagged: bool) -> np.ndarray:
    """Plain-loop reference: step the leaky bucket (and the dam-body lag) minute by minute."""
    tau1, tau2 = 3 * 24.0, 24.0  # hours
    dt = 1 / 60
    bucket = lag = 0.0
    t0 = min(r.start_ms for r in rains)
    out, t, i = [], t0, 0
    order = np.argsort(ts)
    while i < ts.size:
        if t >= ts[order[i]]:
            out.append((order[i], lag if lagged else bucket))
            i += 1
            continue
        rate = sum(r.mm_per_h for r in rains if r.start_ms <= t < r.end_ms)
        bucket += dt * (rate * tau1 - bucket) / tau1  # level tends to rate × τ
        lag += dt * (bucket - lag) / tau2
        t += 60_000
    res = np.zeros(ts.size)
    for j, v in out:
        res[j] = v
    return res


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 72), st.integers(1, 12), st.floats(0.5, 40.0)),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_closed_form_pond_agrees_with_stepping(events: list[tuple[int, int, float]], lagged: bool) -> None:
    base = 1_800_000_000_000
    rains = [Rain(base + s * MS_H, base + (s + d) * MS_H, r) for s, d, r in events]
    ts = base + np.arange(0, 200 * MS_H, 7 * MS_H, dtype=np.int64)
    got = recent_rain(ts, rains, lagged)
    want = _euler(ts, rains, lagged)
    assert np.allclose(got, want, rtol=0.01, atol=0.05 * max(r for _, _, r in events))


def test_the_trailing_24_hours_of_rain() -> None:
    rains = [Rain(0, 3 * MS_H, 10.0)]
    ts = np.array([MS_H, 3 * MS_H, 20 * MS_H, 25 * MS_H, 28 * MS_H], np.int64)
    assert rainfall_24h(ts, rains).tolist() == [10.0, 30.0, 30.0, 20.0, 0.0]


def test_the_gauge_reads_the_rain_since_its_previous_reading(registry: Registry) -> None:
    """rules.md §8: a gauge's reading is the rain since its previous reading (the service sums the
    trailing 24 h): a scripted 30 mm/h × 6 h storm adds up to 180 mm over the gauge's readings, no
    reading holds more than one period of it, and the readings before and after it read 0."""
    pond = Registry(mines=(registry.mine(TAILINGS),))
    rain_at = START + timedelta(hours=12)
    ev = {"at": rain_at.isoformat(), "mine": TAILINGS, "kind": "rainfall", "mm_per_h": 30, "duration": "6h"}
    gauge = flatten(run(pond, START, 48, [ev], rain_events_per_day=0), "readings").of(GAUGE)
    assert abs(gauge.value.sum() - 180.0) < 1e-6
    period_h = np.diff(gauge.ts).max() / MS_H
    assert gauge.value.max() <= 30.0 * period_h + 1e-9
    outside = (gauge.ts <= ms(rain_at)) | (gauge.ts > ms(rain_at + timedelta(hours=6, minutes=30)))
    assert np.all(gauge.value[outside] == 0.0)


def test_rainfall_raises_the_pond_then_it_drains(registry: Registry) -> None:
    pond = Registry(mines=(registry.mine(TAILINGS),))
    rain_at = START + timedelta(hours=12)
    ev = {
        "at": rain_at.isoformat(),
        "mine": TAILINGS,
        "kind": "rainfall",
        "mm_per_h": 30,
        "duration": "6h",
    }
    flat = flatten(run(pond, START, 8 * 24, [ev], rain_events_per_day=0), "readings")
    water, phreatic = flat.of(WATER), flat.of(PHREATIC)
    before = water.between(START, rain_at).value.mean()
    peak_i = int(np.argmax(water.value))
    assert water.value[peak_i] > before + 1.5  # 180 mm of rain: about two warning steps (1 m)
    assert ms(rain_at) < water.ts[peak_i] < ms(rain_at + timedelta(hours=12))
    assert water.value[-1] < water.value[peak_i] - 1.0  # drains over days ...
    assert water.value[-1] > before + 0.05  # ... slowly
    low_i = int(np.argmin(phreatic.value))  # burial depth: shallower is worse
    assert phreatic.value[low_i] < phreatic.between(START, rain_at).value.mean() - 1.0
    assert phreatic.ts[low_i] > water.ts[peak_i] + 6 * MS_H  # lags the pond through the dam
    gauge = flat.of(GAUGE)  # rain since the previous reading; the service sums the trailing 24 h
    csum = np.concatenate([[0.0], np.cumsum(gauge.value)])
    trailing = csum[1:] - csum[np.searchsorted(gauge.ts, gauge.ts - 24 * MS_H, side="right")]
    assert math.isclose(trailing.max(), 180.0, abs_tol=0.1)
    assert flat.of(FREEBOARD).value.min() < 2.5  # freeboard shrinks below blue


def test_slope_creeps_then_accelerates(registry: Registry) -> None:
    pit = Registry(mines=(registry.mine(PIT),))
    acc_at = START + timedelta(days=3)
    ev = {
        "at": acc_at.isoformat(),
        "point": SLOPE,
        "kind": "slope_accelerate",
        "duration": "2d",
        "factor": 50,
    }
    s = flatten(run(pit, START, 6 * 24, [ev]), "readings").of(SLOPE)
    day = (s.ts - ms(START)) // (24 * MS_H)
    daily = np.array([s.value[day == d].mean() for d in range(6)])
    speed = np.diff(daily)  # mm/day between daily means
    creep = speed[:2].mean()
    assert 0.05 < creep < 0.5
    # improved tangent angle: arctan of speed over the constant-velocity speed
    angle = np.degrees(np.arctan(speed / creep))
    assert (np.abs(angle[:2] - 45) < 10).all()
    assert angle[-1] > 85  # speed ~50× the creep rate after the accelerating phase
    assert (np.diff(s.between(acc_at, acc_at + timedelta(days=3)).value) > -1).all()
