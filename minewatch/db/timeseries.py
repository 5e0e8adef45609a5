"""The one module that knows whether TimescaleDB is present: time-partitioned tables on either path.

Plain PostgreSQL: declarative RANGE partitioning by day, partitions created
ahead by `maintain()` and on demand for late data by `ensure_range()`, old
ones dropped by the retention setting. TimescaleDB: hypertables with
compression and retention policies and 1-minute / 1-hour continuous
aggregates of readings. Every query the product runs works on both (shared
queries use `date_bin`, never `time_bucket`); the bucket views
`readings_1m` / `readings_1h` exist on both paths (continuous aggregates on
Timescale, plain views over `date_bin` otherwise) so readers need not care.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import asyncpg

from minewatch.db import ident

log = logging.getLogger(__name__)

Backend = Literal["plain", "timescale"]


@dataclass(frozen=True)
class TimeTable:
    """A time-partitioned table: its columns, time column and unique key."""

    name: str
    columns: str
    time_column: str
    key: tuple[str, ...]
    segment_by: str


TABLES: tuple[TimeTable, ...] = (
    TimeTable("readings", "point_id integer NOT NULL, ts timestamptz NOT NULL, "
              "value double precision NOT NULL, status smallint NOT NULL DEFAULT 0",
              "ts", ("point_id", "ts"), "point_id"),
    TimeTable("card_reads", "card_id integer NOT NULL, ts timestamptz NOT NULL, "
              "station_id integer NOT NULL, mine_id integer NOT NULL",
              "ts", ("card_id", "ts"), "card_id"),
    TimeTable("station_states", "station_id integer NOT NULL, ts timestamptz NOT NULL, "
              "state smallint NOT NULL, power smallint",
              "ts", ("station_id", "ts"), "station_id"),
)


async def detect(conn: asyncpg.Connection, wanted: str = "auto") -> Backend:
    """Which backend this database runs: TimescaleDB if asked for or available, else plain."""
    if wanted == "plain":
        return "plain"
    installed = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
    if installed:
        return "timescale"
    available = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
    if available:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return "timescale"
        except asyncpg.PostgresError as exc:  # e.g. not in shared_preload_libraries
            if wanted == "timescale":
                raise
            log.warning("timescaledb is available but could not be created (%s); using plain partitioning", exc)
    elif wanted == "timescale":
        raise RuntimeError("timescale backend requested but the extension is not available")
    return "plain"


async def current_backend(conn: asyncpg.Connection) -> Backend:
    """The backend the schema was created with (recorded by `create_tables`)."""
    value = await conn.fetchval("SELECT value FROM meta WHERE key = 'timeseries_backend'")
    return "timescale" if value == "timescale" else "plain"


async def create_tables(conn: asyncpg.Connection, backend: Backend) -> None:
    """Create the time-partitioned tables and the bucket views for the chosen backend."""
    await conn.execute(
        "INSERT INTO meta(key, value) VALUES ('timeseries_backend', $1) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", backend)
    for t in TABLES:
        key = ", ".join(t.key)
        if backend == "plain":
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {ident(t.name)} ({t.columns}, PRIMARY KEY ({key})) "
                f"PARTITION BY RANGE ({ident(t.time_column)})")
        else:
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {ident(t.name)} ({t.columns}, PRIMARY KEY ({key}))")
            await conn.execute(
                "SELECT create_hypertable($1::regclass, $2::name, chunk_time_interval => interval '1 day', "
                "if_not_exists => true)", t.name, t.time_column)
            await conn.execute(
                f"ALTER TABLE {ident(t.name)} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{t.segment_by}', "  # constant from TABLES, not input
                f"timescaledb.compress_orderby = '{t.time_column} DESC')")
            await conn.execute(
                "SELECT add_compression_policy($1::regclass, interval '7 days', if_not_exists => true)", t.name)
    # readings get no index beyond the (point_id, ts) key: every reader asks by
    # point (or by a mine's points) and time, and each extra index costs the
    # ingest about a third of its insert rate.
    await conn.execute("CREATE INDEX IF NOT EXISTS card_reads_mine_ts_idx ON card_reads (mine_id, ts)")
    await _create_bucket_views(conn, backend)


_BUCKETS = (("readings_1m", "1 minute"), ("readings_1h", "1 hour"))


async def _create_bucket_views(conn: asyncpg.Connection, backend: Backend) -> None:
    for view, width in _BUCKETS:
        select = (
            f"SELECT point_id, date_bin(interval '{width}', ts, timestamptz '2000-01-01') AS bucket, "
            "min(value) AS min, max(value) AS max, avg(value) AS avg, "
            "(array_agg(value ORDER BY ts DESC))[1] AS last, count(*) AS n "
            "FROM readings GROUP BY 1, 2"
        )
        if backend == "plain":
            await conn.execute(f"CREATE OR REPLACE VIEW {ident(view)} AS {select}")
        else:
            # Continuous aggregates need time_bucket and last(); the column set is the same.
            cagg = (
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ident(view)} WITH (timescaledb.continuous) AS "
                f"SELECT point_id, time_bucket(interval '{width}', ts) AS bucket, min(value) AS min, "
                "max(value) AS max, avg(value) AS avg, last(value, ts) AS last, count(*) AS n "
                "FROM readings GROUP BY 1, 2 WITH NO DATA"
            )
            await conn.execute(cagg)
            await conn.execute(
                "SELECT add_continuous_aggregate_policy($1::regclass, start_offset => interval '3 days', "
                "end_offset => interval '1 minute', schedule_interval => interval '1 minute', "
                "if_not_exists => true)", view)


def _partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


@dataclass
class PartitionKeeper:
    """Creates daily partitions on demand (plain path); remembers what exists to stay off the hot path."""

    backend: Backend
    known: set[tuple[str, date]] = field(default_factory=set)

    async def ensure_range(self, conn: asyncpg.Connection, table: str, lo: datetime, hi: datetime) -> None:
        """Make sure partitions cover [lo, hi] (UTC days). No-op on TimescaleDB (chunks are automatic)."""
        if self.backend != "plain":
            return
        day = lo.astimezone(UTC).date()
        last = hi.astimezone(UTC).date()
        while day <= last:
            if (table, day) not in self.known:
                await _create_partition(conn, table, day)
                self.known.add((table, day))
            day += timedelta(days=1)


async def _create_partition(conn: asyncpg.Connection, table: str, day: date) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    # Bounds are dates we computed, rendered as ISO literals; DDL takes no parameters.
    sql = (f"CREATE TABLE IF NOT EXISTS {ident(_partition_name(table, day))} PARTITION OF {ident(table)} "
           f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    with contextlib.suppress(asyncpg.DuplicateTableError):  # a concurrent ingest process created it first
        await conn.execute(sql)


async def maintain(conn: asyncpg.Connection, *, now: datetime, ahead_days: int, retention_days: int) -> dict[str, int]:
    """Create partitions ahead and drop those past retention (plain); Timescale has policies for both."""
    backend = await current_backend(conn)
    created = dropped = 0
    if backend == "timescale":
        for t in TABLES:
            await conn.execute(
                "SELECT add_retention_policy($1::regclass, $2::interval, if_not_exists => true)",
                t.name, timedelta(days=retention_days))
        return {"created": 0, "dropped": 0}
    today = now.astimezone(UTC).date()
    for t in TABLES:
        for i in range(-1, ahead_days + 1):
            await _create_partition(conn, t.name, today + timedelta(days=i))
            created += 1
        horizon = today - timedelta(days=retention_days)
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1", t.name)
        for r in rows:
            name: str = r["relname"]
            suffix = name.rsplit("_p", 1)[-1]
            if len(suffix) == 8 and suffix.isdigit():
                d = date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:]))
                if d < horizon:
                    await conn.execute(f"DROP TABLE IF EXISTS {ident(name)}")
                    dropped += 1
    return {"created": created, "dropped": dropped}

