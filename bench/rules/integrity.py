"""Benchmark of the monitoring-integrity kernels (rules.md §6 and the §4 power-off check),
readings/s over one synthetic day of many mines, next to a same-run ceiling.

Run: ``python -m bench.rules.integrity [--mines 200] [--points 300] [--runs 3]``.

Per mine, one local day (2026-11-23, Asia/Shanghai) of ``--points`` points at a 30 s
period (2 880 readings a point, so 200 × 300 points ≈ 173 M readings), sorted by (point,
ts) as the loader hands them to the rules: 40 % analog methane points (baseline 0.2–0.6
%CH4, noise at the sensors' 0.01 resolution, exceedance spikes), the rest other analog
points, 10 relay points (1009) answering power-off; a few 10–20 min outages, one methane
sensor frozen for 3 h, calibration runs of 10–40 min, 15 stations with FZSS rows every
30 s and one comm. loss, 10 configured pairs, and YCBJ records for two thirds of the
episodes. Mines are generated and evaluated one at a time (memory stays at one mine's
arrays), as the back-fill evaluates them.

Timed per mine, on one pinned core, the median of ``--runs`` runs of: `offline_spans`,
`station_fault_spans`, `flagged_station_states` + `station_fault_spans`, `stuck_runs`,
`shift_calibration`, `calibration_in_episodes`, `implausible_spans`, `power_off_triggers` +
`power_off_response`, `under_reported`. Episodes are an input (the methane rules compute
them in the same back-fill) and are not timed. The ceiling, measured in the same run on the
same arrays: one plain pass that any of these kernels at least makes — ``np.diff`` of the
times and of the values and ``np.flatnonzero`` of the changes. Also timed: the clock-driven
offline pass over 60 000 points with no new rows (issue 14: ≤ 1 s of CPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.rules import pin_one_core
from rules.episodes import CALIBRATING, STATION_FAULT, find_episodes
from rules.integrity.calibration import calibration_in_episodes, shift_calibration
from rules.integrity.pairs import implausible_spans
from rules.integrity.relation import power_off_response, power_off_triggers
from rules.integrity.silence import flagged_station_states, offline_spans, station_fault_spans
from rules.integrity.stuck import stuck_runs
from rules.integrity.under_reporting import UnderReportingParams, under_reported
from rules.thresholds import classify

S = 1_000_000_000
PERIOD = 30 * S
DAY_START = 1_795_363_200 * S  # 2026-11-23 00:00 Asia/Shanghai (16:00 UTC the day before)
PER_POINT = 86_400 * S // PERIOD
N_RELAYS = 10
N_STATIONS = 15
N_PAIRS = 10
I64 = NDArray[np.int64]


@dataclass
class Mine:
    point: I64
    ts: I64
    values: NDArray[np.float64]
    status: I64
    n_points: int
    methane: NDArray[np.bool_]
    analog: NDArray[np.bool_]
    face: I64
    station: I64
    st_station: I64
    st_ts: I64
    st_state: I64
    up: I64
    down: I64
    rel_point: I64
    rel_feed: I64
    poweroff: NDArray[np.bool_]
    ep_point: I64
    ep_start: I64
    ep_end: I64
    ep_first: I64
    ep_last: I64
    rec_point: I64
    rec_start: I64
    rec_end: I64
    rec_code: NDArray[np.str_]


def _ranges(lengths: I64) -> I64:
    ends = np.cumsum(lengths)
    return np.arange(int(ends[-1]), dtype=np.int64) - np.repeat(ends - lengths, lengths)


def generate(points: int, seed: int) -> Mine:
    """One mine's day; see the module docstring."""
    rng = np.random.default_rng(seed)
    n = points * PER_POINT
    point = np.repeat(np.arange(points, dtype=np.int64), PER_POINT)
    k = np.tile(np.arange(PER_POINT, dtype=np.int64), points)
    ts = DAY_START + k * PERIOD + rng.integers(0, 1000, n) * 1_000_000  # sub-second jitter
    n_feed = N_RELAYS
    sensors = points - n_feed
    methane = np.zeros(points, np.bool_)
    methane[: int(sensors * 0.4)] = True
    analog = np.arange(points) < sensors
    base = np.where(methane, rng.uniform(0.2, 0.6, points), rng.uniform(1.0, 20.0, points))[point]
    values = np.round(base + rng.normal(0.0, 0.03, n), 2)
    status = np.zeros(n, np.int64)
    # Exceedance spikes on methane points; a third of them reach power-off level.
    mrows = int(sensors * 0.4) * PER_POINT
    n_spikes = 12
    sp = rng.integers(0, mrows - 60, n_spikes)
    ln = rng.integers(4, 40, n_spikes)
    idx = np.repeat(sp, ln) + _ranges(ln)
    peaks = np.where(rng.random(n_spikes) < 0.33, 1.8, 1.2)
    values[idx] = np.maximum(values[idx], np.repeat(peaks, ln))
    # Calibration runs of 10–40 min (20–80 readings) on a few points.
    cs = rng.integers(0, sensors * PER_POINT - 100, 6)
    cl = rng.integers(20, 80, 6)
    cal = np.repeat(cs, cl) + _ranges(cl)
    values[cal], status[cal] = 2.0, status[cal] | CALIBRATING
    # One methane sensor frozen at 0.12 for 3 h.
    frozen = int(rng.integers(0, int(sensors * 0.4))) * PER_POINT + 1000
    values[frozen: frozen + 360] = 0.12
    # Relays: 1 (on), 0 (off) for a while after a power-off-level spike of their point.
    relay_rows = point >= sensors
    values[relay_rows] = 1.0
    # Station 3's points carry bit 16 for 20 min.
    station = (np.arange(points) % N_STATIONS).astype(np.int64)
    s3 = (station[point] == 3) & (k >= 1200) & (k < 1240)
    status[s3] |= STATION_FAULT
    # Outages: a few points drop 10–20 min of rows.
    drop = np.zeros(n, np.bool_)
    for p in rng.integers(0, points, 4):
        a = int(rng.integers(0, PER_POINT - 40))
        drop[p * PER_POINT + a: p * PER_POINT + a + int(rng.integers(20, 40))] = True
    keep = ~drop
    point, ts, values, status = point[keep], ts[keep], values[keep], status[keep]
    exceed, clear, poweroff = classify(values, alarm_hi=1.0, poweroff_hi=1.5)
    is_m = methane[point]
    exceed &= is_m
    poweroff &= is_m
    clear |= ~is_m
    eps = find_episodes(point, ts, values, status, exceed, clear, poweroff, max_gap_ns=300 * S)
    # Every methane point has a power-off relation to one of the relays; two of three relays
    # open 10 s after their point reaches power-off level and close 5 min later.
    n_methane = int(sensors * 0.4)
    rel_point = np.arange(n_methane, dtype=np.int64)
    rel_feed = (sensors + rel_point % N_RELAYS).astype(np.int64)
    _, trig = power_off_triggers(point, ts, status, poweroff, episode_first_row=eps.first_row,
                                 episode_last_row=eps.last_row)
    for j in np.flatnonzero(trig >= 0):
        if j % 3 == 2:
            continue
        feed = rel_feed[eps.point_idx[j]]
        t0 = trig[j]
        values[(point == feed) & (ts >= t0 + 10 * S) & (ts < t0 + 300 * S)] = 0.0
    # A neighbour on the same face calibrates during the first episode.
    if len(eps):
        q = eps.point_idx[0] ^ 1
        end = eps.end[0] if eps.end[0] >= 0 else eps.start[0] + 600 * S
        status[(point == q) & (ts >= eps.start[0]) & (ts < end)] |= CALIBRATING
    # FZSS rows: every station every 30 s, state 0; station 5 loses communication for 15 min.
    st_station = np.repeat(np.arange(N_STATIONS, dtype=np.int64), PER_POINT)
    st_ts = DAY_START + np.tile(np.arange(PER_POINT, dtype=np.int64), N_STATIONS) * PERIOD
    st_state = np.zeros(len(st_ts), np.int64)
    st_state[5 * PER_POINT + 600: 5 * PER_POINT + 630] = 1
    # YCBJ records for two of every three episodes, slightly offset.
    rec = np.flatnonzero(np.arange(len(eps)) % 3 != 2)
    ends = np.where(eps.end[rec] < 0, -1, eps.end[rec])
    face = (np.arange(points) // 12).astype(np.int64)
    return Mine(point, ts, values, status, points, methane, analog, face, station,
                st_station, st_ts, st_state,
                up=np.arange(0, 2 * N_PAIRS, 2, dtype=np.int64), down=np.arange(1, 2 * N_PAIRS, 2, dtype=np.int64),
                rel_point=rel_point, rel_feed=rel_feed,
                poweroff=poweroff, ep_point=eps.point_idx, ep_start=eps.start, ep_end=eps.end,
                ep_first=eps.first_row, ep_last=eps.last_row,
                rec_point=eps.point_idx[rec], rec_start=eps.start[rec] - 5 * S, rec_end=ends,
                rec_code=np.full(len(rec), "001"))


def kernels(m: Mine, now: int, stages: dict[str, float]) -> int:
    """Every §6 kernel over one mine at ``now`` (the end of its day; under-reporting is judged
    once the day's grace has passed); returns how many findings (spans, runs, rows) they made."""
    found = 0

    def timed(name: str, fn: Callable[[], int]) -> None:
        nonlocal found
        a = time.perf_counter()
        found += fn()
        stages[name] = stages.get(name, 0.0) + time.perf_counter() - a

    timed("offline_spans", lambda: len(offline_spans(m.point, m.ts, n_points=m.n_points, now_ns=now)))
    timed("station_fault_spans (FZSS)", lambda: len(station_fault_spans(
        m.st_station, m.st_ts, m.st_state, n_stations=N_STATIONS, now_ns=now)))

    def flagged() -> int:
        s, t, state = flagged_station_states(m.point, m.ts, m.status, m.station, n_stations=N_STATIONS)
        return len(station_fault_spans(s, t, state, n_stations=N_STATIONS, now_ns=now))

    timed("station_fault (bit 16)", flagged)
    timed("stuck_runs", lambda: len(stuck_runs(m.point, m.ts, m.values, m.status, point_mine=np.zeros(m.n_points, np.int64),
                                                analog=m.analog, methane=m.methane)))
    timed("shift_calibration", lambda: len(shift_calibration(m.point, m.ts, m.status, now_ns=now)))
    timed("calibration_in_episodes", lambda: len(calibration_in_episodes(
        m.point, m.ts, m.status, point_face=m.face, episode_point=m.ep_point, episode_start=m.ep_start,
        episode_end=m.ep_end)))
    timed("implausible_spans", lambda: len(implausible_spans(m.point, m.ts, m.values, m.status, upstream=m.up,
                                                              downstream=m.down, n_points=m.n_points)))

    def power() -> int:
        _, t = power_off_triggers(m.point, m.ts, m.status, m.poweroff, episode_first_row=m.ep_first,
                                  episode_last_row=m.ep_last)
        return len(power_off_response(m.point, m.ts, m.values, m.status, trigger_point=m.ep_point, trigger_ts=t,
                                      relation_point=m.rel_point, relation_feed=m.rel_feed, now_ns=now).failures())

    timed("power_off (triggers+response)", power)
    timed("under_reported", lambda: len(under_reported(
        m.ep_point, m.ep_start, m.ep_end, point_mine=np.zeros(m.n_points, np.int64), record_point=m.rec_point,
        record_start=m.rec_start, record_end=m.rec_end, record_code=m.rec_code,
        now_ns=now + UnderReportingParams().grace_ns)))
    return found


def ceiling(m: Mine) -> int:
    """One plain pass over the same arrays: np.diff of times and values, flatnonzero of changes."""
    gaps = np.flatnonzero(np.diff(m.ts) > 3 * PERIOD)
    changes = np.flatnonzero(np.diff(m.values) != 0)
    return len(gaps) + len(changes)


def clock_pass(points: int, runs: int) -> tuple[float, float]:
    """The clock-driven offline pass over `points` points with no rows: (wall s, CPU s), medians."""
    rng = np.random.default_rng(1)
    last = DAY_START + rng.integers(0, 86_400, points) * S
    z = np.zeros(0, np.int64)
    wall, cpu = [], []
    for _ in range(runs):
        a, c = time.perf_counter(), time.process_time()
        offline_spans(z, z, n_points=points, now_ns=DAY_START + 86_400 * S, last_seen_ns=last)
        wall.append(time.perf_counter() - a)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mines", type=int, default=200)
    parser.add_argument("--points", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pin_one_core()
    now = DAY_START + 86_400 * S  # the end of the day (under_reported: plus its 2 h grace)
    ours_total = floor_total = gen_total = 0.0
    readings = findings = 0
    stages: dict[str, list[float]] = {}
    for i in range(args.mines):
        a = time.perf_counter()
        m = generate(args.points, seed=1000 + i)
        gen_total += time.perf_counter() - a
        readings += len(m.ts)
        kernels(m, now, {})  # warm-up: page in the arrays once
        mine_runs, floor_runs = [], []
        per_stage: list[dict[str, float]] = []
        for _ in range(args.runs):
            st: dict[str, float] = {}
            a = time.perf_counter()
            findings_now = kernels(m, now, st)
            mine_runs.append(time.perf_counter() - a)
            per_stage.append(st)
            a = time.perf_counter()
            ceiling(m)
            floor_runs.append(time.perf_counter() - a)
        findings += findings_now
        ours_total += statistics.median(mine_runs)
        floor_total += statistics.median(floor_runs)
        for name in per_stage[0]:
            stages.setdefault(name, []).append(statistics.median(s[name] for s in per_stage))
    print(f"mines {args.mines}  points/mine {args.points}  readings {readings:,}  findings {findings:,}"
          f"   (per mine: median of {args.runs} runs, summed; generation {gen_total:.1f} s untimed)")
    for name, ts in stages.items():
        total = sum(ts)
        print(f"  {name:<30} {total:8.2f} s {readings / total / 1e6:8.1f} M readings/s")
    print(f"integrity kernels, all            {ours_total:8.2f} s {readings / ours_total / 1e6:8.1f} M readings/s")
    print(f"ceiling: diff+flatnonzero (t, v)  {floor_total:8.2f} s {readings / floor_total / 1e6:8.1f} M readings/s")
    print(f"ratio (ceiling time / ours)       {floor_total / ours_total:8.3f}")
    wall, cpu = clock_pass(60_000, args.runs)
    print(f"clock-driven offline pass, 60 000 points, no rows: {wall * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms CPU")


if __name__ == "__main__":
    main()
