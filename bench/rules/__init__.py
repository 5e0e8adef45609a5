"""Benchmarks of the rule engine: kernels on one core, back-fill, latency.

The kernel benchmarks share the two helpers below: time a function (median of runs) and pin the
process to one core, as their targets are stated per core."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], runs: int) -> float:
    """The median wall time of `runs` calls of `fn`, in seconds."""
    times = []
    for _ in range(runs):
        a = time.perf_counter()
        fn()
        times.append(time.perf_counter() - a)
    return statistics.median(times)


def pin_one_core() -> None:
    """Run on one core (the targets are per core); a no-op where the OS cannot pin."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
