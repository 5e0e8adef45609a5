"""The clock-driven integrity pass: offline, station_fault, power_off_failure and under_reporting
fire with no data arriving at all; it keeps no state (restart-safe) and writes nothing twice.

The clock is injected (`FrozenClock`): nothing here sleeps to let a deadline pass.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import pytest

from minewatch.clock import FrozenClock
from minewatch.timeutil import from_ns
from rules.evaluate import iso
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.rules.db.helpers import MIN, Row, S, insert_readings, ns
from tests.rules.db.test_integrity_worker import CO, CORNER, FACE, HEADING, MINE, POINTS, RELAY, RETURN, STATION_2, insert_states

pytestmark = pytest.mark.integration
PACK = builtin_pack("default")
T0 = ns("2026-11-12T09:00:00+08:00")
PERIOD = 30 * S


def calm(k0: int, k1: int, *, start: int = T0) -> list[Row]:
    """Every point of the mine reporting every 30 s, nothing wrong."""
    rows: list[Row] = []
    for k in range(k0, k1):
        t = start + k * PERIOD
        rows += [
            (FACE, t, 0.3 + 0.01 * (k % 7), 0),
            (RETURN, t, 0.28 + 0.01 * (k % 5), 0),
            (CORNER, t, 0.25 + 0.01 * (k % 3), 0),
            (HEADING, t, 0.2 + 0.01 * (k % 4), 0),
            (RELAY, t, 1.0, 0),
            (CO, t, 5.0 + k % 6, 0),
        ]
    return rows


async def rows_of(dsn: str, rule: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT subject, start_ts, end_ts, state, evidence, updated_at FROM findings WHERE rule = $1 "
                "AND state <> 'superseded' ORDER BY subject, start_ts",
                rule,
            )
        )
    finally:
        await conn.close()


async def clock_pass(dsn: str, clock: FrozenClock) -> bool:
    """One clock-driven pass of a fresh worker (as after a restart)."""
    worker = RuleWorker(dsn, PACK, clock=clock)
    conn = await asyncpg.connect(dsn)
    try:
        return await worker.clock_pass(conn)
    finally:
        await conn.close()


async def feed(dsn: str, rows: list[Row], clock: FrozenClock) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await insert_readings(conn, rows)
    finally:
        await conn.close()
    await RuleWorker(dsn, PACK, clock=clock).run(burst=True)


async def test_silence_of_exactly_three_periods_is_not_offline_one_second_more_is(
    integrity_db: Callable[[], Awaitable[str]],
) -> None:
    dsn = await integrity_db()
    last = T0 + 59 * PERIOD
    clock = FrozenClock(from_ns(last + S))
    await feed(dsn, calm(0, 60), clock)
    assert await rows_of(dsn, "offline") == []
    clock.set(from_ns(last + 3 * PERIOD))
    assert not await clock_pass(dsn, clock) and await rows_of(dsn, "offline") == []
    clock.set(from_ns(last + 3 * PERIOD + S))
    assert await clock_pass(dsn, clock)
    found = await rows_of(dsn, "offline")
    assert {r["subject"] for r in found} == set(POINTS)
    for r in found:
        ev = json.loads(r["evidence"])
        assert (r["start_ts"], r["end_ts"], r["state"]) == (from_ns(last), None, "open")
        assert ev["raised_at"] == iso(last + 3 * PERIOD) and ev["next_reading"] is None and ev["seen_s"] is None
    # Idempotent and restart-safe: another worker's pass at the same clock, and later, writes nothing.
    assert not await clock_pass(dsn, clock)
    clock.set(from_ns(last + 3_600 * S))
    assert not await clock_pass(dsn, clock)
    assert [(r["subject"], r["updated_at"]) for r in await rows_of(dsn, "offline")] == [
        (r["subject"], r["updated_at"]) for r in found
    ]
    # The point comes back: the finding closes at its next reading, the same row.
    await feed(dsn, [(HEADING, last + 3_600 * S, 0.2, 0)], clock)
    back = {r["subject"]: r for r in await rows_of(dsn, "offline")}
    assert back[HEADING]["end_ts"] == from_ns(last + 3_600 * S) and back[HEADING]["state"] == "closed"
    assert json.loads(back[HEADING]["evidence"])["seen_s"] == 3_600


async def test_a_running_worker_raises_offline_for_every_point_of_a_silent_mine_in_time(
    integrity_db: Callable[[], Awaitable[str]],
) -> None:
    """All input stops (no data, no windows): within 3 × period + 10 s of the last reading the
    running worker's clock pass has raised `offline` for every point of the mine."""
    dsn = await integrity_db()
    last = T0 + 9 * PERIOD
    clock = FrozenClock(from_ns(last))
    await feed(dsn, calm(0, 10), clock)
    worker = RuleWorker(dsn, PACK, clock=clock, settings=RulesSettings(poll_s=0.1, clock_s=0.1))
    running = asyncio.create_task(worker.run())
    try:
        clock.set(from_ns(last + 3 * PERIOD + 10 * S))  # the deadline + 10 s, on the injected clock
        deadline = time.monotonic() + 20
        while {r["subject"] for r in await rows_of(dsn, "offline")} != set(POINTS):
            assert time.monotonic() < deadline, await rows_of(dsn, "offline")
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    assert all(r["start_ts"] == from_ns(last) and r["end_ts"] is None for r in await rows_of(dsn, "offline"))


async def test_a_station_that_reports_comm_lost_and_then_nothing_is_a_station_fault(
    integrity_db: Callable[[], Awaitable[str]],
) -> None:
    dsn = await integrity_db()
    clock = FrozenClock(from_ns(T0 + 30 * S))
    conn = await asyncpg.connect(dsn)
    try:
        await insert_states(conn, [(STATION_2, T0 - 60 * S, 0), (STATION_2, T0, 1)])
    finally:
        await conn.close()
    await RuleWorker(dsn, PACK, clock=clock).run(burst=True)
    assert await rows_of(dsn, "station_fault") == []
    clock.set(from_ns(T0 + 90 * S))
    assert not await clock_pass(dsn, clock)
    clock.set(from_ns(T0 + 91 * S))
    assert await clock_pass(dsn, clock)
    [r] = await rows_of(dsn, "station_fault")
    assert (r["subject"], r["start_ts"], r["end_ts"]) == (STATION_2, from_ns(T0), None)
    assert not await clock_pass(dsn, clock)


async def test_a_relay_that_never_answers_is_a_power_off_failure_on_the_clock(integrity_db: Callable[[], Awaitable[str]]) -> None:
    """The face reaches its power-off level and then everything falls silent: no reading says
    the relay opened, none says it did not. The data pass cannot judge yet; the clock can."""
    dsn = await integrity_db()
    rows = calm(0, 20)
    t = T0 + 20 * PERIOD
    rows += [(FACE, t, 1.6, 0), (RELAY, t, 1.0, 0)]
    clock = FrozenClock(from_ns(t + 5 * S))
    await feed(dsn, rows, clock)
    assert await rows_of(dsn, "power_off_failure") == []
    clock.set(from_ns(t + 60 * S))  # the relay may still answer at exactly t + 60 s
    await clock_pass(dsn, clock)
    assert await rows_of(dsn, "power_off_failure") == []
    clock.set(from_ns(t + 61 * S))
    await clock_pass(dsn, clock)
    [r] = await rows_of(dsn, "power_off_failure")
    ev = json.loads(r["evidence"])
    assert (r["subject"], r["start_ts"], r["end_ts"]) == (FACE, from_ns(t + 60 * S), None)
    assert ev["feed"] == RELAY and ev["seen_feed_readings"] == 1 and ev["last_feed_value"] == 1.0
    assert not await clock_pass(dsn, clock)


async def test_under_reporting_is_judged_after_the_days_grace_on_the_clock(integrity_db: Callable[[], Awaitable[str]]) -> None:
    """A day with three exceedances of the face; the mine's YCBJ file reports two of them (one
    by a record overlapping its episode by one second). Nothing is judged before the day's end
    + 2 h; then one `under_reporting` finding lists the third."""
    dsn = await integrity_db()
    day0 = ns("2026-11-12T00:00:00+08:00")
    rows: list[Row] = []
    starts = [ns("2026-11-12T10:00:00+08:00"), ns("2026-11-12T14:00:00+08:00"), ns("2026-11-12T18:00:00+08:00")]
    for s0 in starts:
        rows += [(FACE, s0 + k * PERIOD, 0.3 if k < 10 or k >= 20 else 1.2, 0) for k in range(30)]
    clock = FrozenClock(from_ns(day0 + 24 * 3_600 * S + 2 * 3_600 * S - S))
    await feed(dsn, rows, clock)
    conn = await asyncpg.connect(dsn)
    try:
        face_id = await conn.fetchval("SELECT id FROM points WHERE code = $1", FACE)
        recorded = datetime.now(UTC)
        e0, e1 = starts[0] + 10 * PERIOD, starts[1] + 10 * PERIOD
        await conn.executemany(
            "INSERT INTO reported_abnormal (point_id, abnormal_code, abnormal_type, started_at, ended_at, data_time, "
            "file, line, recorded_at) VALUES ($1, '001', 'over_limit', $2, $3, $4, 'YCBJ.txt', $5, $4)",
            [
                (face_id, from_ns(e0 - 60 * S), from_ns(e0 + 5 * MIN), recorded, 1),
                # overlaps the second episode (from e1 to its clear at e1 + 5 min) by one second
                (face_id, from_ns(e1 + 5 * MIN - S), from_ns(e1 + 8 * MIN), recorded, 2),
            ],
        )
    finally:
        await conn.close()
    await clock_pass(dsn, clock)
    assert await rows_of(dsn, "under_reporting") == []
    clock.set(from_ns(day0 + 26 * 3_600 * S))
    assert await clock_pass(dsn, clock)
    [r] = await rows_of(dsn, "under_reporting")
    ev = json.loads(r["evidence"])
    assert (r["subject"], r["start_ts"], r["end_ts"]) == (MINE, from_ns(day0), from_ns(day0 + 24 * 3_600 * S))
    assert ev["day"] == "2026-11-12" and ev["episodes"] == 3 and ev["reported"] == 2
    assert [(u["point"], u["start"]) for u in ev["unreported"]] == [(FACE, iso(starts[2] + 10 * PERIOD))]
    assert not await clock_pass(dsn, clock)
