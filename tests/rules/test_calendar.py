"""Calendar periods and month shifts in local time, against datetime/zoneinfo."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.timeutil import to_ns
from rules.calendar import cycle_id, iso_week_id, month_id, period_ids, shift_months
from rules.errors import RulesError
from tests.rules import reference as ref

S = 1_000_000_000
T0 = 1_735_660_800 * S  # 2024-12-31 16:00 UTC = 2025-01-01 00:00 Asia/Shanghai
SHANGHAI = ZoneInfo("Asia/Shanghai")
ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"]
times = st.lists(st.integers(-400 * 86_400, 800 * 86_400), min_size=1, max_size=40).map(
    lambda xs: np.array(sorted(T0 + x * S for x in xs), np.int64))


@settings(max_examples=200, deadline=None)
@given(times, st.sampled_from(ZONES), st.sampled_from([1, 2, 3, 4, 6, 12]), st.integers(1, 12))
def test_period_ids_agree_with_datetime(ts, tz, months, anchor) -> None:  # type: ignore[no-untyped-def]
    weeks, mons = iso_week_id(ts, tz), month_id(ts, tz)
    cycles = cycle_id(ts, months, tz, anchor)
    assert np.all(np.diff(weeks) >= 0) and np.all(np.diff(mons) >= 0)
    for i in range(len(ts) - 1):
        a, b = int(ts[i]), int(ts[i + 1])
        assert (weeks[i] == weeks[i + 1]) == (ref.iso_week(a, tz) == ref.iso_week(b, tz))
        assert (mons[i] == mons[i + 1]) == (ref.month(a, tz) == ref.month(b, tz))
    assert cycles.tolist() == [ref.cycle(int(t), tz, months, anchor) for t in ts]


@settings(max_examples=200, deadline=None)
@given(times, st.integers(-13, 13))
def test_shift_months_agrees_with_datetime(ts, months) -> None:  # type: ignore[no-untyped-def]
    got = shift_months(ts, months, "Asia/Shanghai")
    assert got.tolist() == [ref.minus_months(int(t), -months, "Asia/Shanghai") for t in ts]


def test_iso_week_turns_on_monday_midnight_local() -> None:
    sunday = to_ns(datetime(2026, 11, 22, 23, 59, tzinfo=SHANGHAI))
    monday = to_ns(datetime(2026, 11, 23, 0, 1, tzinfo=SHANGHAI))
    assert datetime(2026, 11, 22).isoweekday() == 7
    ids = iso_week_id(np.array([sunday, monday]), "Asia/Shanghai")
    assert ids[1] == ids[0] + 1
    # In UTC both instants are Sunday afternoon: one week.
    assert iso_week_id(np.array([sunday, monday]), "UTC").tolist() == [ids[0], ids[0]]


def test_month_end_clipping() -> None:
    mar31 = to_ns(datetime(2025, 3, 31, 10, 0, tzinfo=SHANGHAI))
    feb28 = to_ns(datetime(2025, 2, 28, 10, 0, tzinfo=SHANGHAI))
    assert shift_months(np.array([mar31]), -1, "Asia/Shanghai").tolist() == [feb28]


def test_period_ids_dispatch() -> None:
    ts = np.array([T0], np.int64)
    assert period_ids(ts, "month", "Asia/Shanghai").tolist() == [(2025 - 1970) * 12]
    assert period_ids(ts, "cycle", "Asia/Shanghai", months=2).tolist() == [(2025 - 1970) * 6]


def test_cycle_length_must_divide_the_year() -> None:
    with pytest.raises(RulesError, match="allowed: 1, 2, 3, 4, 6, 12"):
        cycle_id(np.array([T0]), 5, "Asia/Shanghai")
