"""Point readings: determinism, rates, jitter, levels, status bits, relays, counters."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from minewatch.registry import Registry
from simulators.model import generate
from simulators.params import ModelParams
from simulators.run import RunOptions, render_history
from simulators.world import World
from tests.simulators.conftest import COAL, START, Flat, flatten, ms, run

T0 = f"{COAL}_01MN0001_T0003"  # upper corner of face F11301, D-related to the two below
FEED = f"{COAL}_01KG1011_T0001"
RELAY = f"{COAL}_01KG1009_T0002"
INTAKE = f"{COAL}_01MN0001_T0027"
COAL_OUTPUT = f"{COAL}_01LJ3001_T0043"
SHEARER_ONOFF = f"{COAL}_01KG1004_T0042"


def _bytes(reg: Registry, seed: int, opts: dict[str, object]) -> list[bytes]:
    world = World(reg, seed, START, START + timedelta(hours=2))
    return [m.topic.encode() + b" " + m.payload for m in render_history(world, RunOptions.model_validate(opts))]


def test_same_seed_same_bytes_other_seed_other_bytes(registry: Registry) -> None:
    opts: dict[str, object] = {"items_per_message": 50, "time_format": "mixed", "late_fraction": 0.05}
    a = _bytes(registry, 7, opts)
    assert a == _bytes(registry, 7, opts)
    assert a != _bytes(registry, 8, opts)
    assert len(a) > 100


def test_output_does_not_depend_on_the_window_size(coal: Registry) -> None:
    def arrays(chunk_ms: int) -> tuple[np.ndarray, ...]:
        bs = list(generate(coal, 3, START, START + timedelta(hours=7), chunk_ms=chunk_ms))
        return tuple(np.concatenate([getattr(b, f) for b in bs]) for f in ("point", "ts_ms", "value", "status"))

    # relays and hysteresis carry state across windows: exercise them with a rise across a cut
    one_hour, six_hours = arrays(3_600_000), arrays(6 * 3_600_000)
    for x, y in zip(one_hour, six_hours, strict=True):
        assert np.array_equal(np.sort(x), np.sort(y))
    order1 = np.lexsort((one_hour[0], one_hour[1]))
    order6 = np.lexsort((six_hours[0], six_hours[1]))
    for x, y in zip(one_hour, six_hours, strict=True):
        assert np.array_equal(x[order1], y[order6])


def test_each_point_reports_once_per_period_with_small_jitter(registry: Registry) -> None:
    hours = 5.0
    ws = run(registry, START, hours, spikes_per_day=0)
    flat = flatten(ws, "readings")
    for _, p in registry.iter_points():
        mine = flat.of(p.code)
        expected = hours * 3600 / p.expected_period_s
        assert abs(mine.ts.size - expected) <= 1, p.code
        gaps = np.diff(mine.ts)
        period = p.expected_period_s * 1000
        assert gaps.min() >= period - 500 and gaps.max() <= period + 500, p.code
        assert mine.ts.min() >= ms(START) and mine.ts.max() < ms(START + timedelta(hours=hours))


def test_methane_sits_in_its_band_and_follows_production(coal: Registry) -> None:
    flat = flatten(run(coal, START, 24, spikes_per_day=0), "readings")
    intake, t0 = flat.of(INTAKE), flat.of(T0)
    assert intake.value.min() >= 0.0 and intake.value.max() <= 0.12
    assert t0.value.min() >= 0.25 and t0.value.max() <= 0.8
    assert (t0.status == 0).all()
    local_minute = ((t0.ts + 8 * 3_600_000) // 60_000) % 480  # minute within the 8 h shift
    change = t0.value[(local_minute < 15) | (local_minute > 465)].mean()
    running = t0.value[(local_minute > 90) & (local_minute < 400)].mean()
    assert running > change + 0.1
    assert all(round(v, 2) == v for v in t0.value.tolist())  # a methane sensor shows 0.01 %


def test_default_spikes_rarely_cross_the_alarm_threshold(coal: Registry) -> None:
    week = START + timedelta(days=7)
    flat = _readings(coal, week)
    quiet = _readings(coal, week, ModelParams(spikes_per_day=0))
    methane = np.array(["_01MN0001_" in c for c in flat.code.tolist()])
    alarm_starts = 0
    for code in np.unique(flat.code[methane]).tolist():
        alarm = flat.of(code).status & 1
        alarm_starts += int((np.diff(np.concatenate([[0], alarm])) == 1).sum())
    assert alarm_starts <= 3  # "a couple per mine per week" at most
    # ... but spikes do happen: same seed without spikes differs only at them
    excess = flat.value - quiet.value
    assert np.array_equal(flat.ts, quiet.ts)
    assert (excess >= -1e-9).all()
    spikes = 0
    for code in np.unique(flat.code[methane]).tolist():
        spiking = (excess[flat.code == code] > 0.02).astype(int)
        spikes += int((np.diff(np.concatenate([[0], spiking])) == 1).sum())
    assert 10 <= spikes <= 80  # ~0.5 per methane point per day


def _readings(reg: Registry, end: datetime, params: ModelParams | None = None) -> Flat:
    """Readings only (no personnel): cheaper for week-long runs."""
    bs = list(generate(reg, 1, START, end, params=params))
    code = np.concatenate([np.array(b.codes, dtype=object)[b.point] for b in bs])
    cols = [np.concatenate([getattr(b, f) for b in bs]) for f in ("ts_ms", "value", "status")]
    return Flat(code, cols[0], cols[1], cols[2], np.full(code.size, None, dtype=object))


def test_scripted_rise_reaches_its_level_for_its_duration(coal: Registry) -> None:
    at = START + timedelta(hours=1, minutes=5)
    ev = {
        "at": at.isoformat(),
        "point": T0,
        "kind": "methane_rise",
        "to": 1.8,
        "duration": "6m",
        "ramp": "1m",
    }
    flat = flatten(run(coal, START, 3, [ev]), "readings")
    t0 = flat.of(T0)
    hold = t0.between(at + timedelta(minutes=1), at + timedelta(minutes=7))
    assert hold.value.tolist() == [1.8] * hold.ts.size and hold.ts.size >= 11
    assert ((hold.status & 3) == 3).all()  # alarm + power-off bits
    before = t0.between(START, at)
    after = t0.between(at + timedelta(minutes=9), START + timedelta(hours=3))
    assert before.value.max() < 1.0 and after.value.max() < 1.0
    assert (before.status == 0).all() and (after.status == 0).all()
    above = t0.ts[t0.value >= 1.5]
    first_po, last_po = above.min(), above.max()
    restore = t0.ts[(t0.ts > last_po) & (t0.value < 1.0)].min()
    for code in (FEED, RELAY):
        sw = flat.of(code)
        assert (sw.value[sw.ts < first_po] == 1).all()
        off = sw.ts[sw.value == 0]
        assert off.size and first_po < off.min() <= first_po + 30_000  # within one patrol cycle
        assert off.max() < restore + 30_000
        back = sw.ts[(sw.ts > restore) & (sw.value == 1)].min()
        assert back <= restore + 30_000
        assert (sw.value[sw.ts > back] == 1).all()


def _window(flat: Flat, code: str, at_min: int, len_min: int) -> tuple[Flat, Flat]:
    at = START + timedelta(minutes=at_min)
    p = flat.of(code)
    return p.between(at, at + timedelta(minutes=len_min)), p


def test_calibrate_fault_stuck_silence(coal: Registry) -> None:
    co = f"{COAL}_01MN0004_T0007"
    t1 = f"{COAL}_01MN0001_T0004"
    o2 = f"{COAL}_01MN0012_T0008"
    events = [
        {
            "at": (START + timedelta(minutes=30)).isoformat(),
            "point": T0,
            "kind": "calibrate",
            "to": 2.0,
            "duration": "10m",
        },
        {"at": "+60m", "point": co, "kind": "fault", "duration": "10m", "bits": 128},
        {"at": "+90m", "point": t1, "kind": "stuck", "duration": "30m"},
        {"at": "+150m", "point": o2, "kind": "silence", "duration": "20m"},
    ]
    flat = flatten(run(coal, START, 4, events), "readings")
    cal, t0 = _window(flat, T0, 30, 10)
    assert (cal.status == 4).all() and cal.value.max() == 2.0
    assert (flat.of(FEED).value == 1).all()  # calibration gas does not trip the relay
    assert ((t0.status & 4) != 0).sum() == cal.ts.size
    fault, _ = _window(flat, co, 60, 10)
    assert fault.ts.size == 20 and (fault.status == 128).all()
    stuck, whole = _window(flat, t1, 90, 30)
    assert stuck.ts.size == 60 and np.unique(stuck.value).size == 1
    assert np.unique(whole.between(START, START + timedelta(minutes=90)).value).size > 5
    silent, o2_all = _window(flat, o2, 150, 20)
    assert silent.ts.size == 0 and o2_all.ts.size == 4 * 120 - 40


def test_station_down_silences_its_points_and_reports_state(coal: Registry) -> None:
    station = f"{COAL}S0003"
    events = [
        {"at": "+30m", "station": station, "kind": "station_down", "duration": "15m"},
        {"at": "+60m", "station": station, "kind": "station_down", "duration": "10m", "state": 2},
    ]
    ws = run(coal, START, 2, events)
    flat = flatten(ws, "readings")
    on_station = [p.code for p in coal.mines[0].points if p.station == station]
    for code in on_station:
        lost, _ = _window(flat, code, 30, 15)
        assert lost.ts.size == 0
        fault, _ = _window(flat, code, 60, 10)
        assert fault.ts.size == 20 and ((fault.status & 16) != 0).all()
    states = flatten(ws, "stations").of(station)
    assert (states.between(START + timedelta(minutes=30), START + timedelta(minutes=45)).value == 1).all()
    assert (states.between(START + timedelta(minutes=60), START + timedelta(minutes=70)).value == 2).all()
    assert (states.between(START, START + timedelta(minutes=30)).value == 0).all()
    assert states.ts.size == 120


def test_coal_output_rises_only_while_producing(coal: Registry) -> None:
    halt = START + timedelta(hours=14)
    ev = {"at": halt.isoformat(), "mine": COAL, "kind": "production_halt", "duration": "4h"}
    flat = flatten(run(coal, START, 24, [ev]), "readings")
    out = flat.of(COAL_OUTPUT)
    assert (np.diff(out.value) >= 0).all()
    day_shift = out.between(START + timedelta(hours=1), START + timedelta(hours=6))
    assert day_shift.value[-1] - day_shift.value[0] > 300  # t in 5 h of a running face
    stopped = out.between(halt, halt + timedelta(hours=4))
    assert stopped.value[-1] == stopped.value[0]
    change = out.between(START + timedelta(hours=6, minutes=55), START + timedelta(hours=7, minutes=15))
    assert change.value[-1] == change.value[0]  # 16:00 shift change: nothing produced
    shearer = flat.of(SHEARER_ONOFF)
    assert shearer.between(halt, halt + timedelta(hours=4)).value.max() == 0
    assert day_shift.ts.size and shearer.between(START + timedelta(hours=1), START + timedelta(hours=6)).value.mean() > 0.6
