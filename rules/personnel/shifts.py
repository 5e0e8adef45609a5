"""Local shifts: the UTC bounds of a mine's shifts, computed from its zone's wall clock.

rules.md: shifts are local to the mine's zone (default Asia/Shanghai) and default to 00–08,
08–16, 16–24. A shift is given by its local start (minutes of the day); it ends where the next
one starts, so a shift starting at 22:00 crosses local midnight and ends at 06:00 the next day
when the next start is 06:00. Each local date's start times are turned into instants with
zoneinfo (a wall time that a DST change skips takes the offset before the change, PEP 495
fold=0; a wall time it repeats takes the earlier instant); the result is int64 ns UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.params import DEFAULT_PARAMS

I64 = NDArray[np.int64]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def shift_bounds(from_ns: int, to_ns: int, tz: str,
                 starts_min: tuple[int, ...] = DEFAULT_PARAMS.shift_starts_min) -> tuple[I64, I64]:
    """(start, end) in ns UTC of every shift that overlaps [from_ns, to_ns), sorted."""
    if to_ns < from_ns:
        raise RulesError(f"shift range ends before it starts: {from_ns} > {to_ns}")
    zone = ZoneInfo(tz)
    first = _local_date(from_ns, zone) - timedelta(days=1)
    last = _local_date(to_ns, zone) + timedelta(days=1)
    instants: list[int] = []
    day = first
    while day <= last:
        for minute in starts_min:
            wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
            instants.append(_ns(wall))
        day += timedelta(days=1)
    # A DST change can make two wall starts one instant; each instant bounds one shift.
    bounds = np.unique(np.array(instants, dtype=np.int64))
    start, end = bounds[:-1], bounds[1:]
    keep = (end > from_ns) & (start < max(to_ns, from_ns + 1))
    return start[keep], end[keep]


def _local_date(ns: int, zone: ZoneInfo) -> date:
    return (_EPOCH + timedelta(microseconds=ns // 1000)).astimezone(zone).date()


def _ns(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
