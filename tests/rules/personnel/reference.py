"""Plain-Python loop references of the personnel kernels, written straight from rules.md §7 and §4.

Nothing here is vectorized or clever: reads are walked one at a time per card in arrival order
(sorted per card by time, stably), head counts are counted interval by interval at every
boundary, spans are grown segment by segment. The property tests demand that the kernels give
exactly these answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

INF = float("inf")


@dataclass
class Interval:
    card: int
    area: int
    start: int
    end: int = -1  # -1 while open
    stay: int = -1


@dataclass
class Stay:
    card: int
    start: int
    end: int = -1


def presence(reads: list[tuple[int, int, int]], shaft: list[bool], now: int) -> tuple[list[Interval], list[Stay]]:
    """(card, ts, area) reads in arrival order → intervals and stays, both by (card, start)."""
    by_card: dict[int, list[tuple[int, int]]] = {}
    for card, ts, area in reads:
        if ts <= now:  # not seen yet otherwise
            by_card.setdefault(card, []).append((ts, area))
    intervals: list[Interval] = []
    stays: list[Stay] = []
    for card in sorted(by_card):
        seen: set[int] = set()
        here: Interval | None = None
        stay: Stay | None = None
        for ts, area in sorted(by_card[card], key=lambda r: r[0]):  # stable: first stored first
            if ts in seen:
                continue  # the same card and time count once
            seen.add(ts)
            if shaft[area]:
                if here is not None and stay is not None:
                    here.end = ts  # leaves the mine
                    stay.end = ts
                    here = stay = None
                continue
            if here is None or stay is None:
                stay = Stay(card, ts)  # enters the mine
                stays.append(stay)
            elif here.area == area:
                continue  # still there
            else:
                here.end = ts  # moves
            here = Interval(card, area, ts, stay=len(stays) - 1)
            intervals.append(here)
    return intervals, stays


def covers(start: int, end: int, t: int) -> bool:
    return start <= t and (end == -1 or end > t)


def head_counts(items: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """(key, start, end) intervals → (key, time, count) steps where the count changes."""
    out = []
    for key in sorted({k for k, _, _ in items}):
        mine = [(s, e) for k, s, e in items if k == key]
        times = sorted({s for s, _ in mine} | {e for _, e in mine if e != -1})
        before = 0
        for t in times:
            n = sum(1 for s, e in mine if covers(s, e, t))
            if n != before:
                out.append((key, t, n))
            before = n
    return out


@dataclass
class Span:
    key: int
    start: int
    end: int = -1
    major_start: int = -1
    peak: int = 0
    peak_ts: int = 0
    limit: int = 0


def over_capacity(steps: list[tuple[int, int, int]], limits: list[int], now: int, min_ns: int,
                  major_pct: int) -> list[Span]:
    """Walk each key's steps segment by segment, growing spans over the limit."""
    out = []
    for key in sorted({k for k, _, _ in steps}):
        lim = limits[key]
        mine = [(t, c) for k, t, c in steps if k == key]
        span: Span | None = None
        major_from: int | None = None
        for i, (t, c) in enumerate(mine):
            until = mine[i + 1][0] if i + 1 < len(mine) else None  # None: still running at now
            over = lim >= 0 and c > lim
            major = lim >= 0 and c * 100 > lim * (100 + major_pct)
            if over:
                if span is None:
                    span = Span(key, t, peak=c, peak_ts=t, limit=lim)
                elif c > span.peak:
                    span.peak, span.peak_ts = c, t
            if major and major_from is None:
                major_from = t
            if not major and major_from is not None:
                if span is not None and span.major_start == -1 and t - major_from >= min_ns:
                    span.major_start = major_from
                major_from = None
            if not over and span is not None:
                span.end = t
                if t - span.start >= min_ns:
                    out.append(span)
                span = None
            if until is None and span is not None:
                if major_from is not None and span.major_start == -1 and now - major_from >= min_ns:
                    span.major_start = major_from
                if now - span.start >= min_ns:
                    out.append(span)  # open
    return out


def no_leader(stays: list[Stay], roles: list[int], shifts: list[tuple[int, int]], now: int, travel: int,
              min_span: int) -> list[tuple[int, int, int]]:
    """(shift, start, end) spans: elementary segments between all boundaries, merged."""
    counted = [s for s in stays if roles[s.card] in (0, 1)]
    windows = [(s + travel, e - travel) for s, e in shifts]
    marks = sorted({now} | {s.start for s in counted} | {s.end for s in counted if s.end != -1}
                   | {w for pair in windows for w in pair})
    marks = [m for m in marks if m <= now]

    def state(t: int) -> tuple[bool, int]:
        workers = sum(1 for s in counted if roles[s.card] == 0 and covers(s.start, s.end, t))
        leaders = sum(1 for s in counted if roles[s.card] == 1 and covers(s.start, s.end, t))
        win = next((i for i, (a, b) in enumerate(windows) if a <= t < b), -1)
        return win >= 0 and workers > 0 and leaders == 0, win

    out = []
    run: tuple[int, int] | None = None  # (shift, start)
    for m in marks:
        cond, win = state(m)
        if run is not None and (not cond or win != run[0]):
            if m - run[1] >= min_span:
                out.append((run[0], run[1], m))
            run = None
        if cond and run is None:
            run = (win, m)
    if run is not None and now - run[1] >= min_span:
        out.append((run[0], run[1], -1))
    return out


def overtime(stays: list[Stay], limit: int, now: int) -> list[tuple[int, int, int, int]]:
    """(card, stay, start, end) of stays strictly longer than the limit."""
    out = []
    for i, s in enumerate(stays):
        lasted = (now if s.end == -1 else s.end) - s.start
        if lasted > limit:
            out.append((s.card, i, s.start + limit, s.end))
    return out


def restricted(intervals: list[Interval], flags: list[bool]) -> list[tuple[int, int, int, int, int]]:
    return [(iv.card, iv.area, i, iv.start, iv.end) for i, iv in enumerate(intervals) if flags[iv.area]]


def covering_order(t: int, orders: list[tuple[int, int]]) -> int:
    """The order covering t reaching furthest, earliest started among equals, else -1."""
    best = -1
    for i, (s, e) in enumerate(orders):
        if covers(s, e, t):
            reach = INF if e == -1 else e
            if best == -1:
                best = i
                continue
            b_reach = INF if orders[best][1] == -1 else orders[best][1]
            if reach > b_reach or (reach == b_reach and s < orders[best][0]):
                best = i
    return best


def card_breaches(stays: list[Stay], orders: list[tuple[int, int]]) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i, s in enumerate(stays):
        o = covering_order(s.start, orders)
        if o >= 0:
            out.append((s.card, i, o, s.start, s.end))
    return out


def signal_breaches(spans: list[tuple[int, int, int]], orders: list[tuple[int, int]]) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i, (point, s, e) in enumerate(spans):
        o = covering_order(s, orders)
        if o >= 0:
            out.append((point, i, o, s, e))
    return out


def signal_spans(readings: list[tuple[int, int, float, bool]], splits: Sequence[int] = ()) -> list[tuple[int, int, int, int, bool]]:
    """(point, start, end, first index, truncated) by walking each point's readings in order;
    readings are (point, ts, value, counter), sorted by (point, ts). A counter's run is cut at
    its first reading at or after each split instant."""
    out: list[tuple[int, int, int, int, bool]] = []
    open_: list[int | bool] | None = None  # [point, start, first index, truncated]
    prev: tuple[int, int, float] | None = None  # (point, ts, value) of the last reading kept
    seen = 0  # readings kept of the current point
    for i, (point, ts, value, counter) in enumerate(readings):
        if prev is not None and prev[0] == point and prev[1] == ts:
            continue  # the same time again counts once
        if prev is None or prev[0] != point:
            if open_ is not None:
                out.append((int(open_[0]), int(open_[1]), -1, int(open_[2]), bool(open_[3])))
                open_ = None
            seen = 0
        producing = (seen > 0 and prev is not None and value > prev[2]) if counter else value != 0
        crossed = (counter and seen > 0 and prev is not None
                   and any(prev[1] < s <= ts for s in splits))
        if open_ is not None and (not producing or crossed):
            out.append((int(open_[0]), int(open_[1]), ts, int(open_[2]), bool(open_[3])))
            open_ = None
        if producing and open_ is None:
            open_ = [point, ts, i, seen == (1 if counter else 0) and not crossed]
        prev = (point, ts, value)
        seen += 1
    if open_ is not None:
        out.append((int(open_[0]), int(open_[1]), -1, int(open_[2]), bool(open_[3])))
    return out


def work_continued(intervals: list[Interval], area_face: list[int], triggers: list[tuple[int, int]], now: int,
                   evacuate: int) -> list[tuple[int, int, int, int, list[tuple[int, int, int]]]]:
    """(first trigger, face, start, end, [(card, area at t + D, left)]) per finding, by (face, start)."""
    single = []
    for i, (t, face) in enumerate(triggers):
        due = t + evacuate
        if face < 0 or now < due:
            continue
        at_t = {iv.card for iv in intervals if area_face[iv.area] == face and covers(iv.start, iv.end, t)}
        listed = []
        for card in sorted(at_t):
            mine = [iv for iv in intervals if iv.card == card]
            for j, iv in enumerate(mine):
                if area_face[iv.area] == face and covers(iv.start, iv.end, due):
                    left = iv.end
                    k = j
                    # Moving to another area of the same face is not leaving.
                    while (left != -1 and k + 1 < len(mine) and mine[k + 1].start == left
                           and area_face[mine[k + 1].area] == face):
                        k += 1
                        left = mine[k].end
                    listed.append((card, iv.area, left))
        if listed:
            single.append((face, due, i, listed))
    # One finding per maximal span of a face: spans that overlap or touch are one.
    out: list[tuple[int, int, int, int, list[tuple[int, int, int]]]] = []
    reach = 0.0
    for face, due, i, listed in sorted(single, key=lambda x: (x[0], x[1], x[2])):
        end = INF if any(left == -1 for _, _, left in listed) else max(left for _, _, left in listed)
        if out and out[-1][1] == face and due <= reach:
            first, _, start, _, before = out[-1]
            cards = {c: (c, a, lf) for c, a, lf in before}
            cards.update({c: (c, a, lf) for c, a, lf in listed})  # the later trigger's row wins
            merged = [cards[c] for c in sorted(cards)]
            out[-1] = (first, face, start, -1, merged)
            reach = max(reach, end)
        else:
            out.append((i, face, due, -1, listed))
            reach = end
    result = []
    for first, face, start, _, listed in out:
        end = -1 if any(left == -1 for _, _, left in listed) else max(left for _, _, left in listed)
        result.append((first, face, start, end, listed))
    return result


def shift_of(t: int, tz: str, starts_min: tuple[int, ...]) -> tuple[int, int]:
    """(start, end) of the shift holding t, for a zone with one fixed offset: wall arithmetic."""
    zone = ZoneInfo(tz)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    offset = (epoch + timedelta(microseconds=t // 1000)).astimezone(zone).utcoffset()
    assert offset is not None
    off = int(offset.total_seconds()) * 10**9
    day, into = divmod(t + off, 86_400 * 10**9)
    minute = into // (60 * 10**9)
    marks = [(day - 1) * 1440 + m for m in starts_min] + [day * 1440 + m for m in starts_min] + [
        (day + 1) * 1440 + m for m in starts_min]
    here = day * 1440 + minute
    i = max(k for k, m in enumerate(marks) if m <= here)
    return marks[i] * 60 * 10**9 - off, marks[i + 1] * 60 * 10**9 - off
