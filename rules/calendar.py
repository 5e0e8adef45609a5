"""Calendar periods in a mine's local time: ISO weeks, months, N-month cycles, month shifts.

Counting rules that speak of "a week" or "a month" mean the mine's wall clock (rules.md:
shifts, days and weeks are computed in the mine's local zone, default Asia/Shanghai), so
period ids are computed from local wall time, not UTC. Ids are int64, increase with time,
and are equal exactly for instants in the same period:

- ``iso_week``: weeks starting Monday 00:00 local; id = floor((local days since
  1970-01-01 + 3) / 7) (1970-01-01 was a Thursday, so the id steps on Mondays);
- ``month``: (year - 1970) * 12 + month - 1 of the local date;
- ``cycle``: blocks of ``months`` calendar months starting at ``anchor_month`` (1 = January):
  floor((month id - (anchor_month - 1)) / months), so 2-month cycles with anchor 1 are
  Jan–Feb, Mar–Apr, ... ``months`` must divide the year (1, 2, 3, 4, 6, 12), so that
  every year has the same cycles whatever the epoch.

pandas does the zone conversion (vectorized over tz transitions); the rest is integer math.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from rules.errors import RulesError

I64 = NDArray[np.int64]
PeriodKind = Literal["iso_week", "month", "cycle"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("iso_week", "month", "cycle")
DEFAULT_ZONE = "Asia/Shanghai"
NS_PER_DAY = 86_400 * 1_000_000_000
CYCLE_MONTHS = (1, 2, 3, 4, 6, 12)


def local_wall_ns(ts: I64, tz: str = DEFAULT_ZONE) -> I64:
    """Local wall-clock time of UTC instants, as ns since 1970-01-01 00:00 wall time."""
    utc = pd.DatetimeIndex(np.asarray(ts, dtype=np.int64).view("datetime64[ns]"), tz="UTC")
    wall = utc.tz_convert(tz).tz_localize(None)
    return np.asarray(wall.to_numpy(dtype="datetime64[ns]")).view(np.int64)


def iso_week_id(ts: I64, tz: str = DEFAULT_ZONE) -> I64:
    """ISO week (Monday 00:00 local) of each instant as a running week number."""
    days = local_wall_ns(ts, tz) // NS_PER_DAY
    return (days + 3) // 7


def month_id(ts: I64, tz: str = DEFAULT_ZONE) -> I64:
    """Local calendar month of each instant as months since 1970-01."""
    wall = local_wall_ns(ts, tz).view("datetime64[ns]")
    return wall.astype("datetime64[M]").astype(np.int64)


def cycle_id(ts: I64, months: int, tz: str = DEFAULT_ZONE, anchor_month: int = 1) -> I64:
    """The ``months``-long cycle (starting at ``anchor_month``) each instant falls in."""
    if months not in CYCLE_MONTHS:
        allowed = ", ".join(map(str, CYCLE_MONTHS))
        raise RulesError(
            f"cycle length {months} months does not divide the year; allowed: {allowed}"
        )
    if not 1 <= anchor_month <= 12:
        raise RulesError(f"anchor_month must be in 1..12, got {anchor_month}")
    return (month_id(ts, tz) - (anchor_month - 1)) // months


def period_ids(
    ts: I64, kind: PeriodKind, tz: str = DEFAULT_ZONE, *, months: int = 1, anchor_month: int = 1
) -> I64:
    """Period id per instant for a calendar window kind."""
    if kind == "iso_week":
        return iso_week_id(ts, tz)
    if kind == "month":
        return month_id(ts, tz)
    if kind == "cycle":
        return cycle_id(ts, months, tz, anchor_month)
    raise RulesError(f"unknown calendar period {kind!r}; allowed: {', '.join(PERIOD_KINDS)}")


def shift_months(ts: I64, months: int, tz: str = DEFAULT_ZONE) -> I64:
    """The same local wall time ``months`` calendar months later (earlier when negative).

    A day that the target month lacks is clipped to its last day (31 Mar − 1 month = 28/29
    Feb), as pandas' DateOffset does. A wall time that the zone skips moves forward; one it
    repeats takes the earlier instant. Used for rolling windows measured in months.
    """
    wall = local_wall_ns(ts, tz)
    month = wall.view("datetime64[ns]").astype("datetime64[M]")
    into_month = wall - month.astype("datetime64[ns]").view(np.int64)
    day, time_of_day = np.divmod(into_month, NS_PER_DAY)
    target = month + np.timedelta64(months, "M")
    month_days = ((target + np.timedelta64(1, "M")).astype("datetime64[D]")
                  - target.astype("datetime64[D]")).astype(np.int64)
    shifted = (target.astype("datetime64[ns]").view(np.int64)
               + np.minimum(day, month_days - 1) * NS_PER_DAY + time_of_day)
    naive = pd.DatetimeIndex(shifted.view("datetime64[ns]"))
    aware = naive.tz_localize(
        tz, ambiguous=np.ones(len(naive), dtype=np.bool_), nonexistent="shift_forward"
    )
    return np.asarray(aware.tz_convert("UTC").tz_localize(None).to_numpy(
        dtype="datetime64[ns]")).view(np.int64)
