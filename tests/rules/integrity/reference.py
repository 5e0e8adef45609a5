"""Plain-Python loop references of the integrity kernels, written straight from rules.md §4
and §6 and the module docstrings of `rules.integrity`.

Nothing here is vectorized or clever: each function walks the readings one at a time, so
the property tests can demand that the kernels give exactly the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

INF = math.inf


def by_point(point: Sequence[int], *cols: Sequence[object]) -> dict[int, list[tuple[object, ...]]]:
    """Rows grouped per point in order, duplicates of (point, ts) dropped (the first counts).
    The first column after the point must be the time."""
    out: dict[int, list[tuple[object, ...]]] = {}
    for i, p in enumerate(point):
        row = tuple(c[i] for c in cols)
        rows = out.setdefault(p, [])
        if rows and rows[-1][0] == row[0]:
            continue
        rows.append(row)
    return out


def is_considered(status: int, value: float, mask: int) -> bool:
    return (status & mask) == 0 and not math.isnan(value)


# -- offline / station fault --------------------------------------------------------------


def offline(point: list[int], ts: list[int], n_points: int, now: int, period: list[int],
            last_seen: list[int], k: int) -> list[tuple[int, int, int, int]]:
    """(point, start, end, raised_at) of every silence longer than k × period."""
    rows = by_point(point, ts)
    out = []
    for p in range(n_points):
        limit = k * period[p]
        prev = last_seen[p] if last_seen[p] >= 0 else None
        for (t,) in rows.get(p, []):
            if prev is not None and t - prev > limit:
                out.append((p, prev, t, prev + limit))
            prev = t
        if prev is not None and now - prev > limit:
            out.append((p, prev, -1, prev + limit))
    return out


def station_faults(station: list[int], ts: list[int], state: list[int], n_stations: int, now: int,
                   period: list[int], k: int, faulty: tuple[int, ...], good: tuple[int, ...]
                   ) -> list[tuple[int, int, int, int]]:
    rows = by_point(station, ts, state)
    out = []
    for s in range(n_stations):
        limit = k * period[s]
        start = None
        for t, st in rows.get(s, []):
            if start is None and st in faulty:
                start = t
            elif start is not None and st in good:
                if t - start > limit:
                    out.append((s, start, t, start + limit))
                start = None
        if start is not None and now - start > limit:
            out.append((s, start, -1, start + limit))
    return out


def flagged_states(point: list[int], ts: list[int], status: list[int], point_station: list[int],
                   n_stations: int, bit: int) -> list[tuple[int, int, int]]:
    """(station, ts, state) after every instant at which a point of the station turned
    flagged or unflagged (a point's first reading turns it from unflagged)."""
    rows = by_point(point, ts, status)
    out = []
    for s in range(n_stations):
        members = [p for p, ps in enumerate(point_station) if ps == s]
        events = sorted((t, p, st) for p in members for t, st in rows.get(p, []))
        latest: dict[int, bool] = {}
        turned = False
        for i, (t, p, st) in enumerate(events):
            now = bool(st & bit)
            turned = turned or now != latest.get(p, False)
            latest[p] = now
            if i + 1 < len(events) and events[i + 1][0] == t:
                continue
            if turned:
                out.append((s, t, 2 if all(latest.get(m, False) for m in members) else 0))
            turned = False
    return out


# -- stuck --------------------------------------------------------------------------------


def stuck(point: list[int], ts: list[int], values: list[float], status: list[int],
          point_mine: list[int], analog: list[bool], methane: list[bool], min_duration: int,
          mask: int) -> list[tuple[int, int, int, int, float, int, int]]:
    """(point, start, last, end, value, n, witness) of every stuck run."""
    rows = by_point(point, ts, values, status)
    cons = {p: [(t, v) for t, v, st in r if is_considered(st, v, mask)]
            for p, r in rows.items()}
    # Times at which each point changed value.
    changes = {p: [c[i][0] for i in range(1, len(c)) if c[i][1] != c[i - 1][1]] for p, c in cons.items()}
    out = []
    for p in sorted(cons):
        c = cons[p]
        i = 0
        while i < len(c):
            j = i
            while j + 1 < len(c) and c[j + 1][1] == c[i][1]:
                j += 1
            start, last = c[i][0], c[j][0]
            if methane[p] and last - start >= min_duration:
                witnesses = [q for q in sorted(cons) if q != p and analog[q]
                             and point_mine[q] == point_mine[p]
                             and any(start <= t <= last for t in changes[q])]
                if witnesses:
                    end = c[j + 1][0] if j + 1 < len(c) else -1
                    out.append((p, start, last, end, c[i][1], j - i + 1, witnesses[0]))
            i = j + 1
    return out


# -- calibration --------------------------------------------------------------------------


def local_starts(lo: int, hi: int, tz: str, hours: tuple[int, ...]) -> list[int]:
    """UTC ns of every local period start from the day before lo to two days after hi."""
    zone = ZoneInfo(tz)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def day_of(ns: int) -> datetime:
        return (epoch + timedelta(microseconds=ns // 1000)).astimezone(zone)

    d = day_of(lo).date() - timedelta(days=1)
    out = set()
    while d <= day_of(hi).date() + timedelta(days=2):
        for h in hours:
            wall = datetime(d.year, d.month, d.day, h, tzinfo=zone).astimezone(UTC)
            delta = wall - epoch
            out.add((delta.days * 86_400 + delta.seconds) * 10**9)
        d += timedelta(days=1)
    return sorted(out)


def cal_intervals(point: list[int], ts: list[int], status: list[int], now: int, cap: int,
                  bit: int) -> list[tuple[int, int, int]]:
    rows = by_point(point, ts, status)
    out = []
    for p in sorted(rows):
        r = rows[p]
        for i, (t, st) in enumerate(r):
            if st & bit:
                nxt = r[i + 1][0] if i + 1 < len(r) else INF
                end = min(nxt, t + cap, now)
                if end > t:
                    out.append((p, t, int(end)))
    return out


def shift_calibration(point: list[int], ts: list[int], status: list[int], now: int, cap: int, bit: int,
                      tz: str, hours: tuple[int, ...], limit: int | None
                      ) -> list[tuple[int, int, int, int, int, int, bool]]:
    """(point, shift_start, shift_end, start, end, total, is_open) per (point, shift)."""
    iv = cal_intervals(point, ts, status, now, cap, bit)
    if not iv:
        return []
    bounds = local_starts(min(a for _, a, _ in iv), max(b for _, _, b in iv), tz, hours)
    acc: dict[tuple[int, int], list[int]] = {}
    for p, a, b in iv:
        for j in range(len(bounds) - 1):
            s, e = max(a, bounds[j]), min(b, bounds[j + 1])
            if e > s:
                g = acc.setdefault((p, j), [s, e, 0])
                g[1] = e
                g[2] += e - s
    out = []
    for (p, j), (s, e, total) in sorted(acc.items()):
        if limit is None or total > limit:
            out.append((p, bounds[j], bounds[j + 1], s, e, total, e == now))
    return out


def calibration_in_episodes(point: list[int], ts: list[int], status: list[int], point_face: list[int],
                            ep_point: list[int], ep_start: list[int], ep_end: list[int], bit: int
                            ) -> list[tuple[int, int, int, int, int, int]]:
    """(point, episode, episode_point, first, last, n) per (calibrating point, episode)."""
    rows = by_point(point, ts, status)
    acc: dict[tuple[int, int], list[int]] = {}
    for p in sorted(rows):
        f = point_face[p]
        if f < 0:
            continue
        for t, st in rows[p]:
            if not st & bit:
                continue
            for e in range(len(ep_point)):
                end = INF if ep_end[e] < 0 else ep_end[e]
                if ep_point[e] != p and point_face[ep_point[e]] == f and ep_start[e] <= t < end:
                    g = acc.setdefault((p, e), [t, t, 0])
                    g[1] = t
                    g[2] += 1
    return [(p, e, ep_point[e], a, b, n) for (p, e), (a, b, n) in sorted(acc.items())]


# -- pairs --------------------------------------------------------------------------------


def asof(points: dict[int, list[tuple[int, float]]], p: int, t: int, max_age: int) -> float:
    best = None
    for rt, v in points.get(p, []):
        if rt <= t:
            best = (rt, v)
    if best is None or t - best[0] > max_age:
        return math.nan
    return best[1]


def implausible(point: list[int], ts: list[int], values: list[float], status: list[int],
                up: list[int], down: list[int], period: list[int], max_periods: int, diff: float,
                min_duration: int, mask: int) -> list[tuple[int, int, int, int, float, int, int]]:
    """(pair, start, end, last, worst, worst_ts, n_times) per qualifying span."""
    rows = by_point(point, ts, values, status)
    cons = {p: [(t, v) for t, v, st in r if is_considered(st, v, mask)]
            for p, r in rows.items()}
    out = []
    for k, (u, d) in enumerate(zip(up, down, strict=True)):
        times = sorted({t for t, _ in cons.get(u, [])} | {t for t, _ in cons.get(d, [])})
        marks = []
        for t in times:
            uv = asof(cons, u, t, max_periods * period[u])
            dv = asof(cons, d, t, max_periods * period[d])
            marks.append((t, dv < uv - diff, uv - dv))
        i = 0
        while i < len(marks):
            if not marks[i][1]:
                i += 1
                continue
            j = i
            while j + 1 < len(marks) and marks[j + 1][1]:
                j += 1
            end = marks[j + 1][0] if j + 1 < len(marks) else -1
            dur = (end if end >= 0 else marks[j][0]) - marks[i][0]
            if dur >= min_duration:
                worst = max(m[2] for m in marks[i:j + 1])
                worst_ts = next(m[0] for m in marks[i:j + 1] if m[2] == worst)
                out.append((k, marks[i][0], end, marks[j][0], worst, worst_ts, j - i + 1))
            i = j + 1
    return out


# -- power-off response -------------------------------------------------------------------


def triggers(point: list[int], ts: list[int], status: list[int], poweroff: list[bool],
             first_row: list[int], last_row: list[int], mask: int) -> list[tuple[int, int]]:
    out = []
    for a, b in zip(first_row, last_row, strict=True):
        found = (-1, -1)
        for i in range(a, b + 1):
            dup = i > 0 and point[i - 1] == point[i] and ts[i - 1] == ts[i]
            if not dup and not status[i] & mask and poweroff[i]:
                found = (i, ts[i])
                break
        out.append(found)
    return out


def power_off(point: list[int], ts: list[int], values: list[float], status: list[int],
              trig_point: list[int], trig_ts: list[int], rel_point: list[int], rel_feed: list[int],
              now: int, window: int, off_value: float, mask: int
              ) -> list[tuple[int, int, int, int, bool, int, int, int, float]]:
    """(trigger, relation, feed, answered_at, failed, start, end, n_feed, last_value)."""
    rows = by_point(point, ts, values, status)
    out = []
    for i, (p, t) in enumerate(zip(trig_point, trig_ts, strict=True)):
        if t < 0 or not t + window < now:
            continue
        for k in range(len(rel_point)):
            if rel_point[k] != p:
                continue
            f = rel_feed[k]
            feed = [(rt, v) for rt, v, st in rows.get(f, []) if not st & mask]
            first_off = next((rt for rt, v in feed if rt >= t and v == off_value), -1)
            answered = first_off >= 0 and first_off <= t + window
            inside = [v for rt, v in feed if t <= rt <= t + window]
            out.append((i, k, f, first_off if answered else -1, not answered,
                        -1 if answered else t + window, -1 if answered else first_off,
                        len(inside), inside[-1] if inside else math.nan))
    return out


# -- under-reporting ----------------------------------------------------------------------


def under_reported(ep_point: list[int], ep_start: list[int], ep_end: list[int], point_mine: list[int],
                   rec_point: list[int], rec_start: list[int], rec_end: list[int], rec_code: list[str],
                   now: int, codes: tuple[str, ...], grace: int, tz: str
                   ) -> tuple[list[bool], list[tuple[int, int, int, list[int]]]]:
    """(covered per episode, [(mine, day_start, day_end, unreported episodes by start)])."""
    covered = []
    for p, s, e in zip(ep_point, ep_start, ep_end, strict=True):
        end = INF if e < 0 else e
        covered.append(any(
            rp == p and code in codes and rs <= end and s <= (INF if re < 0 else re)
            for rp, rs, re, code in zip(rec_point, rec_start, rec_end, rec_code, strict=True)))
    groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    for i, s in enumerate(ep_start):
        bounds = local_starts(s, s, tz, (0,))
        j = max(k for k, b in enumerate(bounds) if b <= s)
        day_start, day_end = bounds[j], bounds[j + 1]
        if day_end + grace <= now and not covered[i]:
            groups.setdefault((point_mine[ep_point[i]], day_start, day_end), []).append((s, i))
    return covered, [(m, a, b, [i for _, i in sorted(v)]) for (m, a, b), v in sorted(groups.items())]
