"""Time-series storage: daily partitions ahead and on demand, retention, migrations idempotent; Timescale where present."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from minewatch.db import ident, timeseries
from minewatch.db.migrate import discover, migrate
from tests.conftest import _create_db, _drop_db

pytestmark = pytest.mark.integration


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def partitions(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1 ORDER BY 1", table)
    return [r["relname"] for r in rows]


def test_migrations_are_idempotent_and_checksummed(fresh_db: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            assert await migrate(conn) == []  # the fixture applied everything already
            versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
            assert versions == [m.version for m in discover()]
            await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 1")
            with pytest.raises(Exception, match="changed after it was applied"):
                await migrate(conn)
        finally:
            await conn.close()
    run(go())


def test_plain_partitions_ahead_on_demand_and_retention(fresh_db: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            if await timeseries.current_backend(conn) != "plain":
                pytest.skip("database uses TimescaleDB")
            now = datetime(2026, 11, 23, 5, tzinfo=UTC)
            await timeseries.maintain(conn, now=now, ahead_days=3, retention_days=30)
            names = await partitions(conn, "readings")
            for d in ("20261122", "20261123", "20261126"):
                assert f"readings_p{d}" in names
            # late data two months back: the keeper creates its partition on demand
            keeper = timeseries.PartitionKeeper("plain")
            old = datetime(2026, 9, 1, 12, tzinfo=UTC)
            await keeper.ensure_range(conn, "readings", old, old + timedelta(hours=30))
            names = await partitions(conn, "readings")
            assert "readings_p20260901" in names and "readings_p20260902" in names
            pid = await conn.fetchval("SELECT id FROM points LIMIT 1")
            await conn.execute("INSERT INTO readings VALUES ($1, $2, 0.5, 0)", pid, old)
            # retention drops partitions older than the horizon, and only those
            result = await timeseries.maintain(conn, now=now, ahead_days=3, retention_days=30)
            assert result["dropped"] >= 2
            names = await partitions(conn, "readings")
            assert "readings_p20260901" not in names and "readings_p20261123" in names
            assert await conn.fetchval("SELECT count(*) FROM readings WHERE ts = $1", old) == 0
        finally:
            await conn.close()
    run(go())


def test_bucket_views_give_min_max_avg_last(fresh_db: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            pid = await conn.fetchval("SELECT id FROM points LIMIT 1")
            t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
            keeper = timeseries.PartitionKeeper(await timeseries.current_backend(conn))
            await keeper.ensure_range(conn, "readings", t0, t0 + timedelta(minutes=2))
            await conn.executemany("INSERT INTO readings VALUES ($1, $2, $3, 0)",
                                   [(pid, t0 + timedelta(seconds=s), v) for s, v in ((0, 0.3), (20, 0.9), (40, 0.6))])
            row = await conn.fetchrow("SELECT min, max, avg, last, n FROM readings_1m WHERE point_id = $1 AND bucket = $2",
                                      pid, t0)
            assert row is not None and (row["min"], row["max"], row["last"], row["n"]) == (0.3, 0.9, 0.6, 3)
            assert abs(row["avg"] - 0.6) < 1e-12
        finally:
            await conn.close()
    run(go())


def test_timescale_path_where_the_extension_exists(pg_dsn: str) -> None:
    """Runs the hypertable path on servers that have TimescaleDB; here it cannot be installed."""
    async def available() -> bool:
        conn = await asyncpg.connect(pg_dsn)
        try:
            # Installed but not preloaded (no timescaledb-tune + restart yet) cannot be created either.
            preloaded = "timescaledb" in (await conn.fetchval("SELECT current_setting('shared_preload_libraries')") or "")
            return preloaded and bool(await conn.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
        finally:
            await conn.close()
    if not run(available()):
        pytest.skip("TimescaleDB is not available on this PostgreSQL server")
    os.environ["MINEWATCH_TIMESERIES_BACKEND"] = "timescale"
    try:
        dsn = run(_create_db(pg_dsn, registry=True))
    finally:
        del os.environ["MINEWATCH_TIMESERIES_BACKEND"]

    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            assert await timeseries.current_backend(conn) == "timescale"
            hyper = {r["hypertable_name"] for r in await conn.fetch("SELECT hypertable_name FROM timescaledb_information.hypertables")}
            assert hyper >= {"readings", "card_reads", "station_states"}
            caggs = {r["view_name"] for r in await conn.fetch("SELECT view_name FROM timescaledb_information.continuous_aggregates")}
            assert caggs >= {"readings_1m", "readings_1h"}
            await timeseries.maintain(conn, now=datetime.now(UTC), ahead_days=3, retention_days=30)
            jobs = await conn.fetch("SELECT proc_name FROM timescaledb_information.jobs")
            assert {"policy_retention", "policy_compression"} <= {j["proc_name"] for j in jobs}
        finally:
            await conn.close()
    try:
        run(go())
    finally:
        run(_drop_db(pg_dsn, dsn))


def test_installed_but_not_preloaded_falls_back_on_the_same_connection(fresh_db: str) -> None:
    """The state right after the extension package is installed, before timescaledb-tune and a
    restart: migrate must fall back to plain partitioning with a warning and keep its connection
    (CREATE EXTENSION would end the session with FATAL). CI gets here on the machine's PostgreSQL
    once ../shared/timescaledb/start has put the extension's files next to it."""
    async def state() -> tuple[bool, bool]:
        conn = await asyncpg.connect(fresh_db)
        try:
            available = bool(await conn.fetchval(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"))
            preloaded = "timescaledb" in (await conn.fetchval("SELECT current_setting('shared_preload_libraries')") or "")
            return available, preloaded
        finally:
            await conn.close()
    available, preloaded = run(state())
    if not available or preloaded:
        pytest.skip("needs a server where TimescaleDB is installed but not preloaded")

    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            assert await timeseries.detect(conn, "auto") == "plain"
            assert await conn.fetchval("SELECT 1") == 1  # the connection survived
            with pytest.raises(RuntimeError, match="shared_preload_libraries"):
                await timeseries.detect(conn, "timescale")
            await migrate(conn)  # idempotent, and on the same connection
            assert await timeseries.current_backend(conn) == "plain"
            assert not await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        finally:
            await conn.close()
    run(go())


def test_ident_refuses_anything_unexpected() -> None:
    assert ident("readings_p20261123") == '"readings_p20261123"'
    for bad in ('readings"; DROP TABLE x; --', "Readings", "", "a" * 64, "1abc"):
        with pytest.raises(ValueError):
            ident(bad)


def test_ensure_days_creates_only_the_days_given(fresh_db: str) -> None:
    """A batch with a 1970 reading and a current one needs two partitions, not one per day between."""
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            if await timeseries.current_backend(conn) != "plain":
                pytest.skip("database uses TimescaleDB")
            before = set(await partitions(conn, "readings"))
            keeper = timeseries.PartitionKeeper("plain")
            days = [datetime(1970, 1, 1, tzinfo=UTC).date(), datetime(2001, 2, 3, tzinfo=UTC).date()]
            await keeper.ensure_days(conn, "readings", days)
            await keeper.ensure_days(conn, "readings", days)  # known: no DDL again
            assert set(await partitions(conn, "readings")) - before == {"readings_p19700101", "readings_p20010203"}
        finally:
            await conn.close()
    run(go())
