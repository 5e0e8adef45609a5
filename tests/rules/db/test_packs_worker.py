"""Every shipped rule pack through the real worker: orders come from configuration alone.

The same kind of data — methane events on one upper-corner point, arriving event by event
as the ingest writes them, the worker run after each — is judged by the `national_month`
pack (calendar months, local time) and the `ladder` pack (3/6/9-day orders within 2-month
cycles). The `default` pack is the one every other test here runs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from minewatch.timeutil import from_ns, to_ns
from rules.packs import builtin_pack, builtin_packs
from rules.worker import RuleWorker, resolve_pack
from tests.rules.db.helpers import MIN, insert_readings, series

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
A = "149900000001_01MN0001_T0001"  # upper corner of face F1, alarm 1.0 (location-type default)
H = 60 * MIN
D = 24 * H


def local(month: int, day: int, year: int = 2026) -> int:
    """10:00 Shanghai time on that day, as ns."""
    return to_ns(datetime(year, month, day, 10, tzinfo=SHANGHAI))


async def run_events(dsn: str, pack_name: str, starts: list[int]) -> list[asyncpg.Record]:
    """One 3-minute exceedance (1.2 %CH4) at each start, stored and evaluated one by one; the orders."""
    pack = resolve_pack(pack_name)
    conn = await asyncpg.connect(dsn)
    try:
        for t in starts:
            await insert_readings(conn, series(A, t - 10 * MIN, [0.4] * 20 + [1.2] * 6 + [0.4] * 20))
            await RuleWorker(dsn, pack).run(burst=True)
        assert await conn.fetchval("SELECT count(*) FROM exceedance_events") == len(starts)
        return list(await conn.fetch(
            "SELECT o.*, f.evidence, f.subject FROM orders o JOIN findings f ON f.ref_table = 'orders' "
            "AND f.ref_id = o.id AND f.state <> 'superseded' WHERE o.withdrawn_at IS NULL ORDER BY o.start_ts"))
    finally:
        await conn.close()


def test_every_shipped_pack_is_run_through_the_worker_here_or_elsewhere() -> None:
    assert builtin_packs() == ["default", "ladder", "national_month"]
    for name in builtin_packs():
        assert resolve_pack(name) == builtin_pack(name)


async def test_national_month_pack_counts_calendar_months_through_the_worker(
        make_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await make_db()
    # 30 Oct and 2 Nov: three days apart (the default pack's rolling week would order) but
    # in two calendar months: no order. 20 Nov is the second of November: an order of 72 h.
    orders = await run_events(dsn, "national_month", [local(10, 30), local(11, 2), local(11, 20)])
    assert [(o["rule"], o["pack"], o["start_ts"], o["min_end_ts"], o["ladder_step"]) for o in orders] == [
        ("methane_month", "national_month", from_ns(local(11, 20)), from_ns(local(11, 20) + 72 * H), 1)]
    evidence = json.loads(orders[0]["evidence"])
    assert orders[0]["subject"] == "methane_month" and len(evidence["trigger_event_ids"]) == 2


async def test_ladder_pack_escalates_3_6_9_days_within_a_two_month_cycle_through_the_worker(
        make_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await make_db()
    pairs = [(10, 26), (11, 2), (11, 10), (11, 20), (11, 30)]  # Sep–Oct cycle, then four in Nov–Dec
    starts = [t for m, d in pairs for t in (local(m, d), local(m, d) + D)]
    orders = await run_events(dsn, "ladder", starts)
    got = [(o["rule"], o["start_ts"], (to_ns(o["min_end_ts"]) - to_ns(o["start_ts"])) // D, o["ladder_step"])
           for o in orders]
    # Each order starts at the second event of its pair; the first of the next pair lies after
    # the order's minimum end (26 Oct + 1 d + 3 d = 30 Oct; 3 Nov + 3 = 6 Nov; 11 + 6 = 17 Nov;
    # 21 + 9 = 30 Nov 10:00, and 30 Nov 10:00 is outside [start, min_end)).
    assert got == [
        ("methane_ladder", from_ns(local(10, 27)), 3, 1),  # Sep–Oct: first of its cycle
        ("methane_ladder", from_ns(local(11, 3)), 3, 1),  # Nov–Dec: the ladder starts again
        ("methane_ladder", from_ns(local(11, 11)), 6, 2),
        ("methane_ladder", from_ns(local(11, 21)), 9, 3),
        ("methane_ladder", from_ns(local(12, 1)), 9, 4),  # a fourth and later: the last step again
    ]
    assert [json.loads(o["evidence"])["ladder_step"] for o in orders] == [1, 1, 2, 3, 4]
