"""The hourly rollup: readings_1h_parts() equals aggregating `readings`, before, during and after refreshes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from minewatch.db import rollup, timeseries
from minewatch.db.rollup import HOUR, floor_hour

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

# Whole hours back from the real clock (the fixture's partitions are kept around today).
NOW = floor_hour(datetime.now(UTC)) + timedelta(minutes=17, seconds=30)
START = floor_hour(NOW) - timedelta(hours=30)
POINTS = (11, 12, 13)

_RAW = ("SELECT date_bin('1 hour', ts, timestamptz '2000-01-01') AS bucket, min(value) AS min, max(value) AS max, "
        "sum(value) AS sum, count(*) AS n, (array_agg(value ORDER BY ts DESC))[1] AS last FROM readings "
        "WHERE point_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1")
_PARTS = "SELECT bucket, min, max, sum, n, last FROM readings_1h_parts($1, $2, $3) ORDER BY bucket"


@pytest_asyncio.fixture(loop_scope="function")
async def conn(fresh_db: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(fresh_db)
    try:
        if await timeseries.current_backend(c) != "plain":
            pytest.skip("the refresher and its log exist on plain PostgreSQL only")
        # As migrated at NOW (the migration starts the state at the real clock's hour, which
        # may have turned since NOW was taken at import).
        await c.execute("UPDATE readings_1h_state SET lo = $1, hi = $1", floor_hour(NOW))
        yield c
    finally:
        await c.close()


async def insert(conn: asyncpg.Connection, rows: list[tuple[int, datetime, float]]) -> None:
    keeper = timeseries.PartitionKeeper("plain")
    await keeper.ensure_range(conn, "readings", min(r[1] for r in rows), max(r[1] for r in rows))
    await conn.copy_records_to_table("readings", records=[(p, t, v, 0) for p, t, v in rows],
                                     columns=["point_id", "ts", "value", "status"])


def series(start: datetime, end: datetime, *, every_s: int = 30, points: tuple[int, ...] = POINTS,
           seed: int = 0) -> list[tuple[int, datetime, float]]:
    out = []
    t, k = start, seed
    while t < end:
        for p in points:
            k += 1
            out.append((p, t, round(((k * 7919) % 1000) / 100 - 3, 2)))
        t += timedelta(seconds=every_s)
    return out


async def assert_exact(conn: asyncpg.Connection, lo: datetime, hi: datetime,
                       points: tuple[int, ...] = (*POINTS, 99)) -> None:
    """Every point's parts equal aggregating its raw readings (sum to float rounding: summation order)."""
    for p in points:
        want = [dict(r) for r in await conn.fetch(_RAW, p, lo, hi)]
        got = [dict(r) for r in await conn.fetch(_PARTS, p, lo, hi)]
        assert [(r["bucket"], r["min"], r["max"], r["n"], r["last"]) for r in got] == \
               [(r["bucket"], r["min"], r["max"], r["n"], r["last"]) for r in want], (p, lo, hi)
        for g, w in zip(got, want, strict=True):
            assert g["sum"] == pytest.approx(w["sum"], rel=1e-12, abs=1e-12)


async def state(conn: asyncpg.Connection) -> tuple[datetime, datetime, int]:
    row = await conn.fetchrow("SELECT lo, hi, (SELECT count(*) FROM readings_1h_invalid) AS n FROM readings_1h_state")
    assert row is not None
    return row["lo"], row["hi"], row["n"]


async def test_exact_before_and_after_refresh_and_it_reads_the_rollup(conn: asyncpg.Connection) -> None:
    await insert(conn, series(START, NOW))
    ranges = [(START, NOW), (START + 3 * HOUR, START + 7 * HOUR + timedelta(minutes=5)),
              (floor_hour(NOW), NOW), (START - 5 * HOUR, START + 30 * HOUR)]
    for lo, hi in ranges:
        await assert_exact(conn, lo, hi)
    await rollup.refresh_until_idle(conn, now=NOW)
    lo, hi, pending = await state(conn)
    assert hi == floor_hour(NOW - rollup.LAG) and lo <= START and pending == 0
    for lo_, hi_ in ranges:
        await assert_exact(conn, lo_, hi_)
    # The materialised hours really come from the rollup: tamper with one and the function shows it.
    await conn.execute("UPDATE readings_1h_rollup SET max = 1000 WHERE point_id = 11 AND bucket = $1", START + HOUR)
    got = await conn.fetch(_PARTS, 11, START, START + 3 * HOUR)
    assert [r["max"] for r in got][1] == 1000


async def test_late_data_is_exact_at_once_and_materialised_by_the_next_refresh(conn: asyncpg.Connection) -> None:
    await insert(conn, series(START, NOW, every_s=60))
    await rollup.refresh_until_idle(conn, now=NOW)
    # Late readings between the existing ones, in materialised hours, for one point only.
    late = [(12, t + timedelta(seconds=30), 50.0 + i) for i, (_, t, _) in
            enumerate(series(START + 5 * HOUR, START + 8 * HOUR, every_s=60, points=(12,)))]
    await insert(conn, late)
    assert (await state(conn))[2] == 1  # one statement, one log row
    await assert_exact(conn, START, NOW)
    res = await rollup.refresh_once(conn, now=NOW)
    assert res.boxes == 1 and (await state(conn))[2] == 0
    await assert_exact(conn, START, NOW)
    row = await conn.fetchrow("SELECT max, n FROM readings_1h_rollup WHERE point_id = 12 AND bucket = $1",
                              START + 6 * HOUR)
    assert row is not None and row["n"] == 120 and row["max"] >= 50


async def test_backfill_below_the_rollup_and_duplicates_change_nothing(conn: asyncpg.Connection) -> None:
    await insert(conn, series(floor_hour(NOW) - 4 * HOUR, NOW))
    await rollup.refresh_until_idle(conn, now=NOW)
    lo, _, _ = await state(conn)
    # Back-fill two days before anything the rollup holds (a link outage replayed): exact at once
    # (raw below lo), then materialised by the backward steps.
    old = floor_hour(NOW) - 50 * HOUR
    await insert(conn, series(old, old + 20 * HOUR, points=(13,)))
    await assert_exact(conn, old - HOUR, NOW)
    await rollup.refresh_until_idle(conn, now=NOW)
    assert (await state(conn))[0] <= old < lo
    await assert_exact(conn, old - HOUR, NOW)
    # INSERT ... ON CONFLICT DO NOTHING that stores nothing logs nothing.
    await conn.execute("INSERT INTO readings (point_id, ts, value) VALUES (13, $1, 99) ON CONFLICT DO NOTHING", old)
    assert (await state(conn))[2] == 0


async def test_hour_boundaries_and_partial_last_hour(conn: asyncpg.Connection) -> None:
    h = floor_hour(NOW) - 10 * HOUR
    edge = [(11, h - timedelta(microseconds=1), 1.0), (11, h, 2.0), (11, h + HOUR - timedelta(microseconds=1), 3.0),
            (11, h + HOUR, 4.0), (11, h + HOUR + timedelta(minutes=30), 5.0), (11, h + 2 * HOUR, 6.0)]
    await insert(conn, edge)
    await rollup.refresh_until_idle(conn, now=NOW)
    got = [(r["bucket"], r["n"], r["last"]) for r in await conn.fetch(_PARTS, 11, h - HOUR, h + 3 * HOUR)]
    assert got == [(h - HOUR, 1, 1.0), (h, 2, 3.0), (h + HOUR, 2, 5.0), (h + 2 * HOUR, 1, 6.0)]
    # `hi` inside a materialised hour: that hour is cut at hi, from raw readings.
    got = [(r["bucket"], r["n"], r["last"]) for r in await conn.fetch(_PARTS, 11, h, h + HOUR + timedelta(minutes=30))]
    assert got == [(h, 2, 3.0), (h + HOUR, 1, 4.0)]
    for lo, hi in ((h, h + HOUR), (h - HOUR, h + HOUR + timedelta(minutes=30, microseconds=1)), (h, h + HOUR * 3)):
        await assert_exact(conn, lo, hi)
    # A point without readings, and a range without any.
    assert await conn.fetch(_PARTS, 99, h - HOUR, NOW) == []
    assert await conn.fetch(_PARTS, 11, NOW - 5 * HOUR, NOW) == []


async def test_session_time_zone_does_not_move_hours(conn: asyncpg.Connection) -> None:
    await insert(conn, series(START, NOW, every_s=300))
    await rollup.refresh_until_idle(conn, now=NOW)
    utc = [tuple(r) for r in await conn.fetch(_PARTS, 12, START, NOW)]
    await conn.execute("SET TIME ZONE 'Asia/Shanghai'")
    assert [tuple(r) for r in await conn.fetch(_PARTS, 12, START, NOW)] == utc
    # Shanghai (+08:00) hours are UTC hours: every bucket starts at a whole UTC hour.
    assert all(r[0].minute == 0 and r[0].second == 0 for r in utc)


async def test_a_write_committed_after_the_refresh_snapshot_is_not_lost(conn: asyncpg.Connection,
                                                                         fresh_db: str) -> None:
    await insert(conn, series(START, NOW, every_s=120))
    await rollup.refresh_until_idle(conn, now=NOW - 10 * HOUR)  # materialised up to ~10 h ago
    other = await asyncpg.connect(fresh_db)
    try:
        tx = other.transaction()
        await tx.start()
        # Readings of hours the next refresh is about to materialise, still uncommitted.
        await other.copy_records_to_table(
            "readings", columns=["point_id", "ts", "value", "status"],
            records=[(11, floor_hour(NOW) - 5 * HOUR + timedelta(seconds=s), 77.0, 0) for s in (1, 61, 3601)])
        await rollup.refresh_until_idle(conn, now=NOW)
        await tx.commit()
    finally:
        await other.close()
    await assert_exact(conn, START, NOW)
    assert (await state(conn))[2] == 1  # its log row outlived the refresh that could not see it
    await rollup.refresh_until_idle(conn, now=NOW)
    await assert_exact(conn, START, NOW)
    assert await conn.fetchval("SELECT max FROM readings_1h_rollup WHERE point_id = 11 AND bucket = $1",
                               floor_hour(NOW) - 5 * HOUR) == 77.0


async def test_updates_deletes_truncate_and_retention(conn: asyncpg.Connection) -> None:
    await insert(conn, series(START, NOW, every_s=300))
    await rollup.refresh_until_idle(conn, now=NOW)
    await conn.execute("UPDATE readings SET value = value + 100 WHERE point_id = 11 AND ts >= $1 AND ts < $2",
                       START + 2 * HOUR, START + 3 * HOUR)
    await conn.execute("DELETE FROM readings WHERE point_id = 12 AND ts >= $1 AND ts < $2",
                       START + 4 * HOUR, START + 6 * HOUR)
    await assert_exact(conn, START, NOW)
    await rollup.refresh_until_idle(conn, now=NOW)
    await assert_exact(conn, START, NOW)
    # Retention drops old partitions: the refresher drops their hours from the rollup too.
    oldest = await timeseries.oldest_partition_start(conn, "readings")
    assert oldest is not None
    await timeseries.maintain(conn, now=NOW, ahead_days=1, retention_days=0)
    res = await rollup.refresh_until_idle(conn, now=NOW)
    assert any(r.dropped_before is not None for r in res)
    assert await conn.fetchval("SELECT count(*) FROM readings_1h_rollup WHERE bucket < $1",
                               await timeseries.oldest_partition_start(conn, "readings")) == 0
    await assert_exact(conn, START, NOW)
    await conn.execute("TRUNCATE readings")
    await assert_exact(conn, START, NOW)
    await rollup.refresh_until_idle(conn, now=NOW)
    assert await conn.fetchval("SELECT count(*) FROM readings_1h_rollup") == 0


async def test_concurrent_refreshers_take_turns(conn: asyncpg.Connection, fresh_db: str) -> None:
    await insert(conn, series(START, NOW, every_s=600))
    others = [await asyncpg.connect(fresh_db) for _ in range(3)]
    try:
        results = await asyncio.gather(*(rollup.refresh_until_idle(c, now=NOW) for c in [conn, *others]))
    finally:
        for c in others:
            await c.close()
    assert any(r.busy for rs in results for r in rs) or all(len(rs) >= 1 for rs in results)
    await rollup.refresh_until_idle(conn, now=NOW)
    await assert_exact(conn, START, NOW)


async def test_the_refresher_loop_catches_up_and_stops(conn: asyncpg.Connection, fresh_db: str) -> None:
    from minewatch.clock import FrozenClock

    await insert(conn, series(START, NOW, every_s=600))
    refresher = rollup.Refresher(fresh_db, clock=FrozenClock(NOW), interval_s=0.05)
    task = asyncio.create_task(refresher.run())
    for _ in range(200):
        if (await state(conn))[1] == floor_hour(NOW - rollup.LAG):
            break
        await asyncio.sleep(0.05)
    refresher.stop()
    tally = await asyncio.wait_for(task, 10)
    assert (await state(conn))[1] == floor_hour(NOW - rollup.LAG)
    assert tally.steps >= 1 and tally.forward_hours + tally.backward_hours > 0
    await assert_exact(conn, START, NOW)


async def test_the_refresher_in_burst_mode_returns_once_caught_up(conn: asyncpg.Connection, fresh_db: str) -> None:
    """The worker shape's burst mode: one call catches up and returns, no stop() needed."""
    from minewatch.clock import FrozenClock

    await insert(conn, series(START, NOW, every_s=600))
    tally = await asyncio.wait_for(rollup.Refresher(fresh_db, clock=FrozenClock(NOW)).run(burst=True), 60)
    assert (await state(conn))[1] == floor_hour(NOW - rollup.LAG)
    assert tally.steps >= 1 and tally.forward_hours + tally.backward_hours > 0
    await assert_exact(conn, START, NOW)


async def test_the_ingest_fast_path_writes_partitions_and_logs_its_box(conn: asyncpg.Connection) -> None:
    """MQTT batches COPY into the daily partitions (the parent's trigger does not fire there) and
    log their box themselves: late data across a UTC midnight is exact at once and after a refresh."""
    from ingest.store import BatchStore, TableBatch

    await insert(conn, series(START, NOW, every_s=60))
    await rollup.refresh_until_idle(conn, now=NOW)
    mine_id = await conn.fetchval("SELECT id FROM mines ORDER BY id LIMIT 1")
    late = [(12, t + timedelta(seconds=30), 40.0 + i % 7) for i, (_, t, _) in
            enumerate(series(START + 2 * HOUR, NOW - 2 * HOUR, every_s=60, points=(12,)))]
    assert len({t.date() for _, t, _ in late}) == 2  # 30 hours back from now always span a midnight

    def batch() -> TableBatch:
        b = TableBatch()
        us = [int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) for _, t, _ in late]
        b.extend_columns([p for p, _, _ in late], us, [v for _, _, v in late], [0] * len(late),
                         ("t/x", "m"), mine_id, min(us), max(us))
        return b

    store = BatchStore(conn, timeseries.PartitionKeeper("plain"))
    res = await store.write({"readings": batch()}, [], now=NOW)
    assert res.stored == {"readings": len(late)}
    parts = await conn.fetch("SELECT tableoid::regclass::text AS part, count(*) FROM readings WHERE value >= 40 "
                             "GROUP BY 1 ORDER BY 1")
    assert [r["count"] for r in parts] == [sum(1 for _, t, _ in late if t.date() == d)
                                           for d in sorted({t.date() for _, t, _ in late})]
    box = await conn.fetchrow("SELECT lo, hi, lo_point, hi_point FROM readings_1h_invalid")
    assert (await state(conn))[2] == 1 and box is not None
    assert tuple(box) == (late[0][1], late[-1][1], 12, 12)
    await assert_exact(conn, START, NOW)
    await rollup.refresh_until_idle(conn, now=NOW)
    await assert_exact(conn, START, NOW)
    # The same batch again: the fast path meets the key, the staging path stores nothing new.
    again = await store.write({"readings": batch()}, [], now=NOW)
    assert again.stored == {"readings": 0} and again.duplicates == {"readings": len(late)}
    await assert_exact(conn, START, NOW)
