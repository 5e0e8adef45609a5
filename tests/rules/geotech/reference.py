"""Plain-Python loop references of the geotech kernels, written straight from rules.md §8.

Nothing here is vectorized or clever: each function walks the readings the way the rule text
reads, so the property tests can demand that the kernels of `rules.geotech` give the same
answers (exactly, except where a float sum is summed in another order; see the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Thresholds = tuple[float, float, float, float]  # blue, yellow, orange, red; NaN where absent


def usable(point: Sequence[int], ts: Sequence[int], values: Sequence[float], status: Sequence[int],
           exclude_mask: int) -> list[int]:
    """Rows read: the first stored of each (point, ts), no excluded status bit, a real value."""
    out: list[int] = []
    seen: set[tuple[int, int]] = set()
    for i, (p, t, v, s) in enumerate(zip(point, ts, values, status, strict=True)):
        if (p, t) in seen:
            continue
        seen.add((p, t))
        if s & exclude_mask or not math.isfinite(v):
            continue
        out.append(i)
    return out


def level_of(value: float, thresholds: Thresholds, lower_worse: bool) -> int:
    """The highest threshold the reading reaches (at or beyond it, in the worse direction)."""
    level = 0
    for k, th in enumerate(thresholds, start=1):
        if math.isnan(th):
            continue
        if (value <= th) if lower_worse else (value >= th):
            level = k
    return level


@dataclass(frozen=True)
class Step:
    key: int
    ts: int
    level: int
    raised: bool = False


def steps_of(point: Sequence[int], ts: Sequence[int], levels: Sequence[int]) -> list[tuple[Step, int]]:
    """A step (and its row) wherever a point's level differs from its previous reading's."""
    out: list[tuple[Step, int]] = []
    last: dict[int, int] = {}
    for i, (p, t, lv) in enumerate(zip(point, ts, levels, strict=True)):
        if lv != last.get(p, 0):
            out.append((Step(p, t, lv), i))
        last[p] = lv
    return out


@dataclass
class Span:
    key: int
    start: int
    end: int
    peak: int
    first: int
    count: int


def spans(steps: Sequence[Step], at_least: int) -> list[Span]:
    """Each stretch of one key at ``at_least`` or above, from the step that enters it to the
    step that leaves it (end −1 while still in it)."""
    out: list[Span] = []
    cur: Span | None = None
    for i, s in enumerate(steps):
        if cur is not None and s.key != cur.key:
            cur = None  # still open at the end of that key's steps
        if cur is None:
            if s.level >= at_least:
                cur = Span(s.key, s.ts, -1, s.level, i, 1)
                out.append(cur)
        elif s.level >= at_least:
            cur.peak = max(cur.peak, s.level)
            cur.count += 1
        else:
            cur.end = s.ts
            cur = None
    return out


@dataclass(frozen=True)
class RefRung:
    at_least: int
    count: int
    raises_to: int


GB50863 = (RefRung(1, 4, 2), RefRung(2, 3, 3), RefRung(3, 2, 4))


def ladder(steps: Sequence[Step], group_of_key: Sequence[int], rungs: Sequence[RefRung] = GB50863) -> list[Step]:
    """Each group's level at every instant any member changes: the members' levels after all
    changes at that instant, then max(highest member, every rung that holds)."""
    out: list[Step] = []
    for g in sorted(set(group_of_key[s.key] for s in steps)):
        mine = [s for s in steps if group_of_key[s.key] == g]  # input order kept
        state: dict[int, int] = {}
        shown = 0
        for t in sorted(set(s.ts for s in mine)):
            for s in mine:
                if s.ts == t:
                    state[s.key] = s.level
            top = max(state.values(), default=0)
            rung = 0
            for r in rungs:
                if sum(1 for lv in state.values() if lv >= r.at_least) >= r.count:
                    rung = max(rung, r.raises_to)
            level = max(top, rung)
            if level != shown:
                out.append(Step(g, t, level, rung > top))
                shown = level
    return out


def window(point: Sequence[int], ts: Sequence[int], i: int, window_ns: int) -> list[int]:
    """Rows of reading i's point with times in (t_i − W, t_i], up to and including i."""
    return [j for j in range(i + 1) if point[j] == point[i] and ts[i] - window_ns < ts[j] <= ts[i]]


def rainfall(point: Sequence[int], ts: Sequence[int], rain: Sequence[float], window_ns: int,
             units_per_mm: int) -> list[float]:
    """Per reading, the rain of its gauge over (t − W, t], counted in whole units."""
    return [sum(round(rain[j] * units_per_mm) for j in window(point, ts, i, window_ns)) / units_per_mm
            for i in range(len(ts))]


def line_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares (slope, intercept, r²) by two passes: x centred on its mean, y taken from
    its first value then centred (the same sums; a constant y is exactly flat). NaNs when
    undefined; r² NaN for a constant y."""
    n = len(xs)
    if n < 2:
        return math.nan, math.nan, math.nan
    mx = sum(xs) / n
    dys = [y - ys[0] for y in ys]
    mdy = sum(dys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * dy for x, dy in zip(xs, dys, strict=True))
    syy = sum((dy - mdy) ** 2 for dy in dys)
    if sxx <= 0:
        return math.nan, math.nan, math.nan
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else math.nan
    return slope, ys[0] + mdy - slope * mx, r2


def first_of_point(point: Sequence[int], i: int) -> int:
    j = i
    while j > 0 and point[j - 1] == point[i]:
        j -= 1
    return j


def rate(point: Sequence[int], ts: Sequence[int], disp: Sequence[float], window_ns: int,
         unit_ns: int) -> list[float]:
    """Per reading, the least-squares slope of displacement against time (in units) over its window."""
    out = []
    for i in range(len(ts)):
        w = window(point, ts, i, window_ns)
        origin = ts[first_of_point(point, i)]
        out.append(line_fit([(ts[j] - origin) / unit_ns for j in w], [disp[j] for j in w])[0])
    return out


def tangent_ratio(point: Sequence[int], ts: Sequence[int], disp: Sequence[float], v: Sequence[float],
                  window_ns: int, unit_ns: int) -> list[float]:
    """Per reading, ΔT/Δt over its window: T = S / v, from the window's first reading to it."""
    out = []
    for i in range(len(ts)):
        j = window(point, ts, i, window_ns)[0]
        vi = v[point[i]]
        if j == i or not vi > 0:
            out.append(math.nan)
            continue
        d_big_t = (disp[i] - disp[j]) / vi
        d_t = (ts[i] - ts[j]) / unit_ns
        out.append(d_big_t / d_t)
    return out


def forecast(point: Sequence[int], ts: Sequence[int], velocity: Sequence[float], window_ns: int,
             unit_ns: int) -> list[tuple[int, float, float, float]]:
    """Per reading, (failure ts or −1, slope, intercept, r²) of the line through 1/v over its
    window's readings with a positive velocity; the failure is where the line reaches zero."""
    out = []
    for i in range(len(ts)):
        origin = ts[first_of_point(point, i)]
        w = [j for j in window(point, ts, i, window_ns) if math.isfinite(velocity[j]) and velocity[j] > 0]
        slope, intercept, r2 = line_fit([(ts[j] - origin) / unit_ns for j in w], [1 / velocity[j] for j in w])
        failure = -1
        # A zero more than 100 years from the origin is no forecast (the kernel's int64 guard).
        if slope < 0 and abs(-intercept / slope * unit_ns) < 100 * 365 * 86_400 * 10**9:
            failure = origin + round(-intercept / slope * unit_ns)
        out.append((failure, slope, intercept, r2))
    return out
