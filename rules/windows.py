"""Where a counting window is: per finding, the bounds of the window that ends at it.

Findings of one mine are sorted by start time (int64 ns). For finding ``i`` the window is the
index range ``[start[i], end[i])`` with ``end[i] = i + 1``: the findings up to and including
``i`` (in scan order) that lie in its window. Bounds come from `np.searchsorted`; what is
computed over a window (a count, the countable findings of `rules.orders`) is separate.

- rolling, duration W: the findings at times in ``(t_i - W, t_i]``. A finding exactly W
  after another is *not* in the same window (7 d − 1 s apart: both in; 7 d: not; 7 d + 1 s:
  not). Rolling W may also be whole local calendar months (``(t_i - M months, t_i]``).
- calendar: the findings with the same period id (`rules.calendar`) as ``t_i``.

The "frequent exceedance" flag (rules.md §5: >= 3 events in 30 days) is a count over the
same bounds: `counts(...) >= n`, or `count_before(...)` for "as of now".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rules.calendar import DEFAULT_ZONE, PeriodKind, period_ids, shift_months
from rules.errors import RulesError

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]


def _sorted(times: I64, what: str) -> I64:
    t = np.asarray(times, dtype=np.int64)
    if len(t) > 1 and bool(np.any(t[1:] < t[:-1])):
        raise RulesError(f"{what} must be sorted ascending")
    return t


def rolling_bounds(times: I64, window_ns: int) -> tuple[I64, I64]:
    """Window bounds per finding for a rolling duration: findings in (t - W, t]."""
    if window_ns <= 0:
        raise RulesError(f"a rolling window must be positive, got {window_ns} ns")
    t = _sorted(times, "finding times")
    start = np.searchsorted(t, t - window_ns, side="right").astype(np.int64)
    return start, np.arange(1, len(t) + 1, dtype=np.int64)


def rolling_month_bounds(times: I64, months: int, tz: str = DEFAULT_ZONE) -> tuple[I64, I64]:
    """Window bounds for a rolling window of whole local months: findings in (t - M mo, t]."""
    if months <= 0:
        raise RulesError(f"a rolling window must be positive, got {months} months")
    t = _sorted(times, "finding times")
    start = np.searchsorted(t, shift_months(t, -months, tz), side="right").astype(np.int64)
    return start, np.arange(1, len(t) + 1, dtype=np.int64)


def period_bounds(period: I64) -> tuple[I64, I64]:
    """Window bounds for calendar windows, from a nondecreasing period id per finding."""
    pid = _sorted(period, "period ids")
    start = np.searchsorted(pid, pid, side="left").astype(np.int64)
    return start, np.arange(1, len(pid) + 1, dtype=np.int64)


def calendar_bounds(
    times: I64, kind: PeriodKind, tz: str = DEFAULT_ZONE, *, months: int = 1, anchor_month: int = 1
) -> tuple[I64, I64]:
    """Window bounds for a calendar window (ISO week, month, N-month cycle) in zone ``tz``."""
    t = _sorted(times, "finding times")
    return period_bounds(period_ids(t, kind, tz, months=months, anchor_month=anchor_month))


def counts(start: I64, end: I64) -> I64:
    """How many findings each window holds."""
    return np.asarray(end, dtype=np.int64) - np.asarray(start, dtype=np.int64)


def frequent(start: I64, end: I64, n: int) -> Bools:
    """Per finding: its window holds at least ``n`` findings (the frequent-exceedance flag)."""
    return counts(start, end) >= n


def count_before(times: I64, now: int, window_ns: int) -> int:
    """How many findings lie in the rolling window (now - W, now] that ends at ``now``."""
    t = _sorted(times, "finding times")
    lo = np.searchsorted(t, now - window_ns, side="right")
    hi = np.searchsorted(t, now, side="right")
    return int(hi - lo)
