"""Benchmark of the personnel kernels: presence + head counts + the §7 rules (+ the §4 check), reads/s.

Run: ``python -m bench.rules.personnel [--reads N] [--cards C] [--areas A] [--runs R]``.

Generates N card reads sorted by (card, ts) over C cards and A areas (two of them shafts, a
tenth restricted, the rest split over faces): each card is read about every minute (50–70 s)
where it is; about every hour it moves to another underground area; after about 8 h of reads
it is read at a shaft twice (it leaves) and is silent for 16 h before its next shift. A few
reads are repeated (the same read delivered twice) and a few are seen at two stations at one
instant. Roles: one card in 20 is a leader, one in 50 a visitor. One shutdown order covers
the middle tenth of the time; 20 power-off readings fall on random faces.

Times (wall and this process's CPU time), on one pinned core, the median of R runs of the hot path — find_presence →
head_counts (per area, per mine) → over_capacity (areas, mine) → no_leader (local shifts
from the zone) → overtime → restricted_visits → card_breaches → work_continued — and next to
it two same-run ceilings over the same arrays: a change scan (neighbour compare + flatnonzero
over (card, area), the least any presence kernel does) and a head-count sweep over the raw
reads (a stable argsort by time and a cumsum of ±1), the naive way to count heads.
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
from rules.personnel.capacity import over_capacity
from rules.personnel.evacuation import work_continued
from rules.personnel.leader import LEADER, VISITOR, WORKER, no_leader
from rules.personnel.overtime import overtime
from rules.personnel.presence import area_counts, find_presence, mine_counts
from rules.personnel.restricted import restricted_visits
from rules.personnel.seal import card_breaches
from rules.personnel.shifts import shift_bounds

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN
T0 = 1_795_392_000 * S  # 2026-11-23 08:00 Asia/Shanghai
ZONE = "Asia/Shanghai"


@dataclass
class Data:
    card: NDArray[np.int64]
    ts: NDArray[np.int64]
    area: NDArray[np.int64]
    shaft: NDArray[np.bool_]
    restricted: NDArray[np.bool_]
    area_face: NDArray[np.int64]
    area_limit: NDArray[np.int64]
    mine_limit: int
    role: NDArray[np.int64]
    order_start: NDArray[np.int64]
    order_end: NDArray[np.int64]
    trigger_time: NDArray[np.int64]
    trigger_face: NDArray[np.int64]
    now: int


def generate(n: int, cards: int, areas: int, seed: int = 11) -> Data:
    """Reads sorted by (card, ts); see the module docstring for their shape."""
    rng = np.random.default_rng(seed)
    per = n // cards
    n = per * cards
    card = np.repeat(np.arange(cards, dtype=np.int64), per)
    pos = np.tile(np.arange(per, dtype=np.int64), cards)
    # A shift is 480 reads, then two shaft reads; cards start their rotation at random offsets.
    phase = (pos + np.repeat(rng.integers(0, 482, cards), per)) % 482
    # Most cards end the data above ground (their last two reads at a shaft); one in five is
    # still down at now, some of them past their shift.
    at_shaft = (phase >= 480) | ((pos >= per - 2) & np.repeat(rng.random(cards) < 0.8, per))
    step = rng.integers(50, 71, n).astype(np.int64) * S
    step[phase == 0] = 16 * HOUR  # above ground between shifts
    step[rng.random(n) < 0.0005] = 0  # the same read delivered twice, or two stations at once
    step[pos == 0] = 0
    ts = T0 + np.cumsum(step) - np.repeat(np.cumsum(step)[::per], per) + np.repeat(
        rng.integers(0, 8 * HOUR, cards), per)
    # Underground area: a new one about every 60 reads, carried forward until the next move.
    moves = (rng.random(n) < 1 / 60) | (phase == 0) | (pos == 0)
    picked = np.where(moves, rng.integers(2, areas, n), 0)
    last_move = np.maximum.accumulate(np.where(moves, np.arange(n), 0))
    area = np.where(at_shaft, rng.integers(0, 2, n), picked[last_move]).astype(np.int64)
    shaft = np.zeros(areas, np.bool_)
    shaft[:2] = True
    restricted = np.zeros(areas, np.bool_)
    restricted[2 + rng.choice(areas - 2, max(1, areas // 10), replace=False)] = True
    area_face = np.where(shaft | restricted, -1, np.arange(areas) % 8).astype(np.int64)
    # Limits so that some areas are over now and then: about their mean head count.
    per_area = max(1, cards // 3 // max(1, areas - 2))
    area_limit = np.where(shaft, -1, per_area).astype(np.int64)
    role = np.where(rng.random(cards) < 0.05, LEADER, np.where(rng.random(cards) < 0.02, VISITOR, WORKER))
    span = int(ts.max() - ts.min())
    start = int(ts.min())
    return Data(
        card, ts.astype(np.int64), area, shaft, restricted, area_face, area_limit, cards // 3,
        role.astype(np.int64),
        np.array([start + span * 45 // 100], np.int64), np.array([start + span * 55 // 100], np.int64),
        np.sort(rng.integers(start, start + span, 20)).astype(np.int64), rng.integers(0, 8, 20).astype(np.int64),
        int(ts.max()) + MIN,
    )


def pipeline(d: Data, stages: dict[str, list[float]]) -> dict[str, int]:
    """The hot path; returns how many findings each rule made."""
    marks = [time.perf_counter()]

    def lap() -> None:
        marks.append(time.perf_counter())

    presence, stays = find_presence(d.card, d.ts, d.area, shaft=d.shaft, now_ns=d.now)
    lap()
    by_area = area_counts(presence)
    by_mine = mine_counts(stays)
    lap()
    crowded = over_capacity(by_area, d.area_limit, now_ns=d.now)
    crowded_mine = over_capacity(by_mine, np.array([d.mine_limit]), now_ns=d.now)
    lap()
    ss, se = shift_bounds(int(d.ts.min()), d.now, ZONE)
    leaderless = no_leader(stays, d.role, ss, se, now_ns=d.now)
    lap()
    late = overtime(stays, shift_ns=8 * HOUR, now_ns=d.now)
    lap()
    visits = restricted_visits(presence, d.restricted)
    lap()
    breaches = card_breaches(stays, d.order_start, d.order_end)
    lap()
    left = work_continued(presence, d.area_face, d.trigger_time, d.trigger_face, now_ns=d.now)
    lap()
    names = ("find_presence", "head_counts", "over_capacity", "shifts+no_leader", "overtime",
             "restricted_visits", "card_breaches", "work_continued")
    for name, a, b in zip(names, marks[:-1], marks[1:], strict=True):
        stages.setdefault(name, []).append(b - a)
    return {"intervals": len(presence), "stays": len(stays), "over_capacity": len(crowded) + len(crowded_mine),
            "no_leader": len(leaderless), "overtime": len(late), "restricted_area": len(visits),
            "seal_breach": len(breaches), "work_continued": len(left)}


def change_scan(d: Data) -> int:
    """Neighbour compare + flatnonzero over (card, area): the least a presence kernel does."""
    change = (d.card[1:] != d.card[:-1]) | (d.area[1:] != d.area[:-1])
    return len(np.flatnonzero(change))


def sweep(d: Data) -> int:
    """A naive head count over the raw reads: stable argsort by time, cumsum of ±1."""
    order = np.argsort(d.ts, kind="stable")
    delta = np.where(d.shaft[d.area[order]], -1, 1)
    return int(np.cumsum(delta)[-1])


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process over `runs` calls. On a shared
    machine the wall time also counts the time other processes held the core; the CPU time
    does not (cache and memory-bandwidth contention remain in both)."""
    wall, cpu = [], []
    for _ in range(runs):
        a, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - a)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reads", type=int, default=10_000_000)
    parser.add_argument("--cards", type=int, default=1_500)
    parser.add_argument("--areas", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    pin_one_core()
    d = generate(args.reads, args.cards, args.areas)
    n = len(d.ts)
    days = (int(d.ts.max()) - int(d.ts.min())) / (24 * HOUR)
    print(f"reads {n:,}  cards {args.cards:,}  areas {args.areas}  days {days:.1f}")
    counts = pipeline(d, {})  # warm-up: page in the arrays once
    stages: dict[str, list[float]] = {}
    ours, ours_cpu = median_time(lambda: pipeline(d, stages), args.runs)
    scan, scan_cpu = median_time(lambda: change_scan(d), args.runs)
    naive, naive_cpu = median_time(lambda: sweep(d), args.runs)
    print("  ".join(f"{k} {v:,}" for k, v in counts.items()) + f"   (median of {args.runs} runs)")
    for name, ts in stages.items():
        print(f"  {name:<22} {statistics.median(ts) * 1e3:8.1f} ms wall")
    print(f"{'':38}{'wall':>20}{'cpu':>22}")
    for label, w, c in (("presence + §7 (+§4) kernels", ours, ours_cpu),
                        ("ceiling: change scan (cmp+flatnonzero)", scan, scan_cpu),
                        ("naive sweep: argsort+cumsum", naive, naive_cpu)):
        print(f"{label:<38} {w * 1e3:8.1f} ms {n / w / 1e6:7.1f} M/s {c * 1e3:8.1f} ms {n / c / 1e6:7.1f} M/s")
    print(f"ratio (change-scan time / ours)        {scan / ours:8.2f} wall {scan_cpu / ours_cpu:8.2f} cpu")


if __name__ == "__main__":
    main()
