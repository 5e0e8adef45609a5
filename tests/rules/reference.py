"""Plain-Python loop references of the rule kernels, written straight from the rule text.

Nothing here is clever or fast: each function walks the data the way rules.md and the
module docstrings describe it, so the property tests can demand that the vectorized kernels
give exactly the same answers.
"""

from __future__ import annotations

import calendar as stdcal
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# -- thresholds ---------------------------------------------------------------------------


def classify_row(
    v: float, a_hi: float, c_hi: float, p_hi: float, a_lo: float, c_lo: float, p_lo: float
) -> tuple[bool, bool, bool]:
    """(exceed, clear, poweroff) of one reading."""
    if math.isnan(v):
        return False, False, False
    has_hi, has_lo = not math.isnan(a_hi), not math.isnan(a_lo)
    exceed = (has_hi and v >= a_hi) or (has_lo and v < a_lo)
    clear_hi = a_hi if math.isnan(c_hi) else c_hi
    clear_lo = a_lo if math.isnan(c_lo) else c_lo
    back_hi = (not has_hi) or v < clear_hi
    back_lo = (not has_lo) or v >= clear_lo
    clear = (not exceed) and back_hi and back_lo
    poweroff = (not math.isnan(p_hi) and v >= p_hi) or (not math.isnan(p_lo) and v < p_lo)
    return exceed, clear, poweroff


def resolve_versions(
    point: list[int], ts: list[int], version_point: list[int], version_from: list[int]
) -> list[int]:
    """Per reading, the index of its point's last version with from <= ts, else -1."""
    out = []
    for p, t in zip(point, ts, strict=True):
        found = -1
        for j, (vp, vf) in enumerate(zip(version_point, version_from, strict=True)):
            if vp == p and vf <= t:
                found = j
        out.append(found)
    return out


# -- episodes -----------------------------------------------------------------------------


@dataclass
class Episode:
    point: int
    start: int
    first_row: int
    version: int
    lower: bool
    peak: float
    peak_ts: int
    poweroff: bool
    last_row: int
    end: int = -1
    end_row: int = -1
    reason: str = "open"


def episodes(
    point: list[int],
    ts: list[int],
    values: list[float],
    status: list[int],
    exceed: list[bool],
    clear: list[bool],
    poweroff: list[bool],
    max_gap: list[int],
    version: list[int],
    lower_by_point: list[bool],
    exclude_mask: int,
) -> list[Episode]:
    """Episodes of readings sorted by (point, ts), walked one reading at a time."""
    done: list[Episode] = []
    cur: Episode | None = None
    point_now: int | None = None
    last_valid: int | None = None  # row index of the point's last valid reading
    prev_key: tuple[int, int] | None = None
    for i in range(len(point)):
        key = (point[i], ts[i])
        duplicate = key == prev_key
        prev_key = key
        if duplicate or status[i] & exclude_mask:
            continue
        if point[i] != point_now:
            if cur is not None:
                done.append(cur)  # still open at the end of that point's data
            cur, point_now, last_valid = None, point[i], None
        if last_valid is not None and ts[i] - ts[last_valid] > max_gap[i] and cur is not None:
            cur.end, cur.end_row, cur.reason = ts[last_valid], last_valid, "gap"
            done.append(cur)
            cur = None
        if cur is None:
            if exceed[i]:
                low = lower_by_point[point[i]]
                cur = Episode(point[i], ts[i], i, version[i], low, values[i], ts[i],
                              poweroff[i], i)
        elif exceed[i] or not clear[i]:
            v = values[i]
            if (v < cur.peak) if cur.lower else (v > cur.peak):
                cur.peak, cur.peak_ts = v, ts[i]
            cur.poweroff = cur.poweroff or poweroff[i]
            cur.last_row = i
        else:
            cur.end, cur.end_row, cur.reason = ts[i], i, "cleared"
            done.append(cur)
            cur = None
        last_valid = i
    if cur is not None:
        done.append(cur)
    return done


# -- events -------------------------------------------------------------------------------


@dataclass
class Event:
    scope: int
    mine: int
    start: int
    reach: float  # latest end so far, inf while open
    members: list[int] = field(default_factory=list)


def events(
    starts: list[int], ends: list[int], is_open: list[bool], scope: list[int], mine: list[int],
    gap: int,
) -> list[Event]:
    """Episodes merged per scope: a new event when one starts more than `gap` after the
    latest end so far of the current event."""
    order = sorted(range(len(starts)), key=lambda e: (scope[e], starts[e], e))
    out: list[Event] = []
    for e in order:
        end = math.inf if is_open[e] else ends[e]
        cur = out[-1] if out else None
        if cur is not None and cur.scope == scope[e] and starts[e] <= cur.reach + gap:
            cur.members.append(e)
            cur.reach = max(cur.reach, end)
        else:
            out.append(Event(scope[e], mine[e], starts[e], end, [e]))
    return out


# -- calendar -----------------------------------------------------------------------------


def local(ts_ns: int, tz: str) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ts_ns // 1000)).astimezone(
        ZoneInfo(tz))


def iso_week(ts_ns: int, tz: str) -> tuple[int, int]:
    year, week, _ = local(ts_ns, tz).isocalendar()
    return year, week


def month(ts_ns: int, tz: str) -> tuple[int, int]:
    d = local(ts_ns, tz)
    return d.year, d.month


def cycle(ts_ns: int, tz: str, months: int, anchor_month: int) -> int:
    year, mon = month(ts_ns, tz)
    return ((year - 1970) * 12 + mon - 1 - (anchor_month - 1)) // months


def minus_months(ts_ns: int, months: int, tz: str) -> int:
    """The same local wall time `months` earlier, day clipped to the month's length."""
    d = local(ts_ns, tz)
    index = d.year * 12 + d.month - 1 - months
    year, mon = divmod(index, 12)
    day = min(d.day, stdcal.monthrange(year, mon + 1)[1])
    shifted = d.replace(year=year, month=mon + 1, day=day, fold=0)
    delta = shifted.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + ts_ns % 1000


# -- orders -------------------------------------------------------------------------------


@dataclass
class Order:
    start: int
    min_end: int
    step: int
    clause: int
    triggers: list[int]
    attached: list[int] = field(default_factory=list)


def orders(
    times: list[int],
    clauses: list[tuple[object, int]],
    in_window: object,
    durations: list[int],
    cycles: list[int] | None,
) -> list[Order]:
    """Scan findings in time order; `in_window(clause, j, i)` says whether finding j lies in
    the window of finding i for that clause."""
    test = in_window
    assert callable(test)
    out: list[Order] = []
    used = [False] * len(times)  # triggered or attached: never counted again
    for i, t in enumerate(times):
        holder = next((o for o in out if o.start <= t < o.min_end), None)
        if holder is not None:
            holder.attached.append(i)
            used[i] = True
            continue
        for c, (clause, need) in enumerate(clauses):
            members = [j for j in range(i + 1) if not used[j] and test(clause, j, i)]
            if len(members) >= need:
                # The k-th order of the cycle the completing finding lies in.
                same_cycle = [o for o in out if cycles and cycles[o.triggers[-1]] == cycles[i]]
                step = 1 + len(same_cycle)
                duration = durations[min(step, len(durations)) - 1]
                out.append(Order(t, t + duration, step, c, members))
                for j in members:
                    used[j] = True
                break
    return out
