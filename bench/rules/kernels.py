"""Benchmark of the hot rule kernels: thresholds + hysteresis episodes + events, readings/s.

Run: ``python -m bench.rules.kernels [--readings N] [--points P] [--runs R]``.

Generates N readings sorted by (point, ts) over P points (30 s period) of realistic
methane: a per-point baseline of 0.2–0.6 %CH4 with noise, occasional spikes over 1.0 and
some over 1.5, calibration runs (status 4) that read high, a few duplicates and outages;
two threshold versions on some points. Times, on one pinned core, the median of R runs of
find_episodes_by_version (thresholds + episodes, fused) → scope_keys/merge_events, and next
to it the machine's ceiling measured in the same run: plain run detection without
hysteresis (a boolean mask, np.diff, flatnonzero), which is the least any such kernel does.
The composed general API (resolve_versions → classify_versions → find_episodes) is timed
too, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bench.rules import median_time, pin_one_core
from rules.episodes import CALIBRATING, find_episodes, find_episodes_by_version
from rules.events import merge_events, scope_keys
from rules.thresholds import ThresholdSet, ThresholdTable, classify_versions, resolve_versions

S = 1_000_000_000
PERIOD = 30 * S
MAX_GAP = 300 * S
GAP = 600 * S
T0 = 1_795_392_000 * S


@dataclass
class Data:
    point: NDArray[np.int64]
    ts: NDArray[np.int64]
    values: NDArray[np.float64]
    status: NDArray[np.int64]
    version_point: NDArray[np.int64]
    version_from: NDArray[np.int64]
    table: ThresholdTable
    point_face: NDArray[np.int64]
    point_mine: NDArray[np.int64]


def generate(n: int, points: int, seed: int = 7) -> Data:
    """Readings sorted by (point, ts); see the module docstring for their shape."""
    rng = np.random.default_rng(seed)
    per = n // points
    n = per * points
    point = np.repeat(np.arange(points, dtype=np.int64), per)
    step = np.full(n, PERIOD, np.int64)
    step[rng.random(n) < 0.0005] = 0  # duplicates (the same reading delivered twice)
    step[rng.random(n) < 0.0002] = 20 * 60 * S  # link outages longer than max_gap
    ts = T0 + np.cumsum(step) - np.repeat(np.cumsum(step)[::per] - step[::per], per)
    baseline = rng.uniform(0.2, 0.6, points)[point]
    values = baseline + rng.normal(0.0, 0.03, n)
    status = np.zeros(n, np.int64)
    # Spikes: a rise to a peak over 1.0 (a third over 1.5) lasting 2–40 readings, then decay.
    n_spikes = n // 2000
    starts = rng.integers(0, n - 60, n_spikes)
    lengths = rng.integers(2, 40, n_spikes)
    peaks = np.where(rng.random(n_spikes) < 0.33, rng.uniform(1.5, 3.5, n_spikes),
                     rng.uniform(1.0, 1.5, n_spikes))
    idx = np.repeat(starts, lengths) + _ranges(lengths)
    shape = np.repeat(peaks, lengths) * (0.8 + 0.4 * rng.random(len(idx)))
    values[idx] = np.maximum(values[idx], shape)
    # Calibration runs: test gas at ~2 %CH4, flagged calibrating (they must not open episodes).
    n_cal = n // 10_000
    cal_starts = rng.integers(0, n - 30, n_cal)
    cal_len = rng.integers(10, 30, n_cal)
    cal = np.repeat(cal_starts, cal_len) + _ranges(cal_len)
    values[cal] = rng.uniform(1.8, 2.2, len(cal))
    status[cal] |= CALIBRATING
    # Thresholds: every point one version from the start; a tenth get a tighter second one.
    second = np.flatnonzero(rng.random(points) < 0.1)
    version_point = np.sort(np.concatenate([np.arange(points), second])).astype(np.int64)
    is_second = np.concatenate(([False], version_point[1:] == version_point[:-1]))
    version_from = np.where(is_second, T0 + per * PERIOD // 2, T0 - S).astype(np.int64)
    sets = [ThresholdSet(alarm_hi=0.8, clear_hi=0.75, poweroff_hi=1.0) if s else
            ThresholdSet(alarm_hi=1.0, clear_hi=0.9, poweroff_hi=1.5) for s in is_second]
    faces = rng.integers(0, points // 4, points)
    faces[rng.random(points) < 0.2] = -1
    return Data(point, ts, values, status, version_point, version_from,
                ThresholdTable.from_sets(sets), faces.astype(np.int64),
                (np.arange(points) // 40).astype(np.int64))


def _ranges(lengths: NDArray[np.int64]) -> NDArray[np.int64]:
    """0..len-1 for each length, concatenated."""
    ends = np.cumsum(lengths)
    return np.arange(ends[-1], dtype=np.int64) - np.repeat(ends - lengths, lengths)


def pipeline(d: Data, stages: dict[str, list[float]]) -> tuple[int, int]:
    """The hot path: fused thresholds + episodes, then events; returns (episodes, events)."""
    t0 = time.perf_counter()
    eps = find_episodes_by_version(
        d.point, d.ts, d.values, d.status, table=d.table, version_point=d.version_point,
        version_from=d.version_from, max_gap_ns=MAX_GAP)
    t1 = time.perf_counter()
    keys = scope_keys("face", d.point_face, d.point_mine)[eps.point_idx]
    events = merge_events(eps, keys, d.point_mine[eps.point_idx], gap_ns=GAP)
    t2 = time.perf_counter()
    for name, a, b in (("find_episodes_by_version", t0, t1), ("merge_events", t1, t2)):
        stages.setdefault(name, []).append(b - a)
    return len(eps), len(events)


def composed(d: Data, stages: dict[str, list[float]]) -> tuple[int, int]:
    """The same through the general API, one step at a time (for comparison)."""
    t0 = time.perf_counter()
    ver = resolve_versions(d.point, d.ts, d.version_point, d.version_from)
    t1 = time.perf_counter()
    exceed, clear, poweroff = classify_versions(d.values, ver, d.table)
    t2 = time.perf_counter()
    eps = find_episodes(d.point, d.ts, d.values, d.status, exceed, clear, poweroff,
                        max_gap_ns=MAX_GAP, version=ver)
    t3 = time.perf_counter()
    keys = scope_keys("face", d.point_face, d.point_mine)[eps.point_idx]
    events = merge_events(eps, keys, d.point_mine[eps.point_idx], gap_ns=GAP)
    t4 = time.perf_counter()
    for name, a, b in (("resolve_versions", t0, t1), ("classify_versions", t1, t2),
                       ("find_episodes", t2, t3), ("merge_events", t3, t4)):
        stages.setdefault(name, []).append(b - a)
    return len(eps), len(events)


def ceiling(d: Data) -> int:
    """Plain run detection, no hysteresis, no status, no gaps: the floor of any such kernel."""
    mask = d.values >= 1.0
    edges = np.diff(mask.view(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return len(starts) + len(ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--points", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pin_one_core()
    d = generate(args.readings, args.points)
    n = len(d.values)
    print(f"readings {n:,}  points {args.points:,}  "
          f"calibrating rows {int(np.count_nonzero(d.status)):,}")
    counts = pipeline(d, {})  # warm-up: page in the arrays once
    assert composed(d, {}) == counts  # the fused and the composed paths agree
    stages: dict[str, list[float]] = {}
    ours = median_time(lambda: pipeline(d, stages), args.runs)
    floor = median_time(lambda: ceiling(d), args.runs)
    general: dict[str, list[float]] = {}
    slow = median_time(lambda: composed(d, general), args.runs)
    print(f"episodes {counts[0]:,}  events {counts[1]:,}   (median of {args.runs} runs)")
    for name, ts in stages.items():
        print(f"  {name:<26} {statistics.median(ts) * 1e3:8.1f} ms")
    print(f"thresholds+episodes+events      {ours * 1e3:8.1f} ms {n / ours / 1e6:7.1f} M readings/s")
    print(f"ceiling: mask+diff+flatnonzero  {floor * 1e3:8.1f} ms {n / floor / 1e6:7.1f} M readings/s")
    print(f"ratio (ceiling time / ours)     {floor / ours:8.2f}")
    print(f"composed general API            {slow * 1e3:8.1f} ms {n / slow / 1e6:7.1f} M readings/s")
    for name, ts in general.items():
        print(f"  {name:<26} {statistics.median(ts) * 1e3:8.1f} ms")

if __name__ == "__main__":
    main()
