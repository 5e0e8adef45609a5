"""Local shift and day boundaries of a mine's zone, as sorted int64 ns UTC instants.

rules.md: shifts, days and weeks are computed in the mine's local time zone (default
Asia/Shanghai); §7: shifts default to 00–08, 08–16, 16–24 local time. A boundary is the
UTC instant of a local wall time, computed explicitly with zoneinfo (a wall time the zone
skips takes the instant after the gap, one it repeats the earlier instant, fold=0).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from rules.calendar import DEFAULT_ZONE
from rules.errors import RulesError
from rules.integrity.common import I64, S

SHIFT_START_HOURS: tuple[int, ...] = (0, 8, 16)  # rules.md §7: shifts 00–08, 08–16, 16–24
DAY_START_HOURS: tuple[int, ...] = (0,)  # a local day starts at local midnight
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(d: datetime) -> int:
    delta = d - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * S + delta.microseconds * 1000


def _local_date(ts_ns: int, zone: ZoneInfo) -> date:
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).astimezone(zone).date()


def local_boundaries(lo_ns: int, hi_ns: int, tz: str = DEFAULT_ZONE,
                     start_hours: tuple[int, ...] = SHIFT_START_HOURS) -> I64:
    """Sorted UTC instants of every local period start (``start_hours`` each local day)
    such that [lo_ns, hi_ns] lies within [first, last): period ``j`` is
    ``[bounds[j], bounds[j + 1])``."""
    if not start_hours or any(not 0 <= h < 24 for h in start_hours):
        raise RulesError(f"period start hours must be in 0..23, got {start_hours}")
    if hi_ns < lo_ns:
        raise RulesError("local_boundaries needs lo_ns <= hi_ns")
    zone = ZoneInfo(tz)
    day = _local_date(lo_ns, zone) - timedelta(days=1)
    last = _local_date(hi_ns, zone) + timedelta(days=2)
    out: list[int] = []
    while day <= last:
        for h in sorted(start_hours):
            wall = datetime(day.year, day.month, day.day, h, tzinfo=zone)
            # Round-trip through UTC: a skipped wall time lands after the gap.
            out.append(_ns(wall.astimezone(UTC)))
        day += timedelta(days=1)
    return np.unique(np.array(out, np.int64))


def period_of(ts: I64, bounds: I64) -> I64:
    """Per instant, the index j of its period [bounds[j], bounds[j + 1])."""
    return (np.searchsorted(bounds, ts, side="right") - 1).astype(np.int64)
