"""Local time of a mine for the simulators: zone offsets, shifts, production profile."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from minewatch.timeutil import to_ns, zone
from simulators.noise import F64, I64

MS_S = 1_000
MS_MIN = 60_000
MS_H = 3_600_000
MS_DAY = 86_400_000
SHIFT_MS = 8 * MS_H  # rules.md §7: shifts 00–08, 08–16, 16–24 local
SHIFTS_PER_DAY = 3
# Day numbers count local days from this date; any fixed date would do.
DAY_ZERO = date(2024, 1, 1)

# Production inside a shift: nothing while crews change over, full output
# once the face is running. Coal faces need ~40 min to start after the crew
# arrives and stop ~30 min before the end for the hand-over.
_RAMP_UP_FROM = 20 * MS_MIN
_RAMP_UP_LEN = 40 * MS_MIN
_RAMP_DOWN_END = SHIFT_MS - 10 * MS_MIN
_RAMP_DOWN_LEN = 30 * MS_MIN


def offset_ms(ts_ms: I64, tz: str) -> I64:
    """The zone's UTC offset (ms) at each instant; evaluated once per distinct hour."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64)
    zi = zone(tz)
    hours, inverse = np.unique(np.floor_divide(ts, MS_H), return_inverse=True)
    # Offsets change at most once an hour in every real zone; a handful of
    # distinct hours per window keeps this cheap.
    first = datetime.fromtimestamp(int(hours[0]) * 3600, tz=UTC).astimezone(zi).utcoffset()
    last = datetime.fromtimestamp(int(hours[-1]) * 3600 + 3599, tz=UTC).astimezone(zi).utcoffset()
    if first == last and first is not None:
        return np.full(ts.shape, int(first.total_seconds() * 1000), dtype=np.int64)
    per_hour = np.array([_offset_at(int(h) * MS_H, tz) for h in hours], dtype=np.int64)
    return per_hour[inverse.reshape(ts.shape)]


def _offset_at(ms: int, tz: str) -> int:
    off = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone(tz)).utcoffset()
    return int(off.total_seconds() * 1000) if off is not None else 0


def local_ms(ts_ms: I64, tz: str) -> I64:
    """Epoch ms shifted to the local wall clock (so `// MS_DAY` is the local day)."""
    ts = np.asarray(ts_ms, dtype=np.int64)
    return ts + offset_ms(ts, tz)


def _profile(x: F64) -> F64:
    up = (x - _RAMP_UP_FROM) / _RAMP_UP_LEN
    down = (_RAMP_DOWN_END - x) / _RAMP_DOWN_LEN
    return np.clip(np.minimum(up, down), 0.0, 1.0)


# Cumulative production over one shift, per second, for the coal counters.
_GRID = np.arange(0, SHIFT_MS + 1, MS_S, dtype=np.float64)
_CUM = np.concatenate([[0.0], np.cumsum(_profile(_GRID[1:] - MS_S / 2)) * MS_S / MS_H])
SHIFT_OUTPUT_H = float(_CUM[-1])  # full-output hours in one shift


def production(ts_ms: I64, tz: str) -> F64:
    """Production intensity in [0, 1]: 0 at shift change, 1 while the faces run."""
    x = np.mod(local_ms(ts_ms, tz), SHIFT_MS).astype(np.float64)
    return _profile(x)


def production_hours(ts_ms: I64, tz: str) -> tuple[I64, F64]:
    """(local day number, full-output hours since local midnight) at each instant."""
    loc = local_ms(ts_ms, tz)
    day = np.floor_divide(loc, MS_DAY)
    in_day = loc - day * MS_DAY
    shifts = np.floor_divide(in_day, SHIFT_MS)
    in_shift = (in_day - shifts * SHIFT_MS).astype(np.float64)
    done = shifts.astype(np.float64) * SHIFT_OUTPUT_H + np.interp(in_shift, _GRID, _CUM)
    return day - day_number_epoch(), done


def day_number_epoch() -> int:
    """The local-epoch day number of DAY_ZERO (days since 1970-01-01)."""
    return (DAY_ZERO - date(1970, 1, 1)).days


def shift_starts(a_ms: int, b_ms: int, tz: str) -> list[tuple[int, int, int]]:
    """(day number, shift 0-2, start epoch ms) of every shift starting in [a_ms, b_ms)."""
    zi = zone(tz)
    first = datetime.fromtimestamp(a_ms / 1000, tz=UTC).astimezone(zi).date() - timedelta(days=1)
    last = datetime.fromtimestamp(b_ms / 1000, tz=UTC).astimezone(zi).date() + timedelta(days=1)
    out: list[tuple[int, int, int]] = []
    d = first
    while d <= last:
        for s in range(SHIFTS_PER_DAY):
            wall = datetime.combine(d, time(hour=8 * s), tzinfo=zi)
            start = int(wall.timestamp() * 1000)
            if a_ms <= start < b_ms:
                out.append(((d - DAY_ZERO).days, s, start))
        d += timedelta(days=1)
    return out


def as_ms(when: datetime | int) -> int:
    """An aware datetime or int64 ns since the epoch, as epoch ms."""
    if isinstance(when, datetime):
        return to_ns(when) // 1_000_000
    return int(when) // 1_000_000


def windows(start_ms: int, end_ms: int | None, chunk_ms: int) -> Iterator[tuple[int, int]]:
    """[a, b) windows covering the run, cut at multiples of chunk_ms since the epoch."""
    a = start_ms
    while end_ms is None or a < end_ms:
        b = (a // chunk_ms + 1) * chunk_ms
        if end_ms is not None:
            b = min(b, end_ms)
        yield a, b
        a = b
