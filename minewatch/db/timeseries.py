"""The one module that knows whether TimescaleDB is present: time-partitioned tables on either path.

Plain PostgreSQL: declarative RANGE partitioning by day, partitions created
ahead by `maintain()` and on demand for late data by `ensure_days()`, old
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
from collections.abc import Iterable
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
    # An extension that is installed but not in shared_preload_libraries (right after the
    # package is installed, before timescaledb-tune and a restart) makes CREATE EXTENSION end the
    # session with FATAL: the connection is gone. Ask first, so the fallback keeps its connection.
    preloaded = "timescaledb" in (await conn.fetchval("SELECT current_setting('shared_preload_libraries')") or "")
    if available and not preloaded:
        if wanted == "timescale":
            raise RuntimeError("timescale backend requested but timescaledb is not in shared_preload_libraries")
        log.warning("timescaledb is installed but not preloaded (add it to shared_preload_libraries and restart "
                    "PostgreSQL to use it); using plain partitioning")
    elif available:
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
    # avg is sum / n, not avg(): PostgreSQL's float8 avg also sums the squares, which overflows
    # for values past ~1e154, and a continuous aggregate whose refresh fails stays stale for
    # every point of the mine network. One hostile reading must not do that.
    for view, width in _BUCKETS:
        select = (
            f"SELECT point_id, date_bin(interval '{width}', ts, timestamptz '2000-01-01') AS bucket, "
            "min(value) AS min, max(value) AS max, sum(value) / count(*) AS avg, "
            "(array_agg(value ORDER BY ts DESC))[1] AS last, count(*) AS n, sum(value) AS sum "
            "FROM readings GROUP BY 1, 2"
        )
        if backend == "plain":
            await conn.execute(f"CREATE OR REPLACE VIEW {ident(view)} AS {select}")
        else:
            # Continuous aggregates need time_bucket and last(); the column set is the same.
            cagg = (
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {ident(view)} WITH (timescaledb.continuous) AS "
                f"SELECT point_id, time_bucket(interval '{width}', ts) AS bucket, min(value) AS min, "
                "max(value) AS max, sum(value) / count(*) AS avg, last(value, ts) AS last, count(*) AS n, "
                "sum(value) AS sum FROM readings GROUP BY 1, 2 WITH NO DATA"
            )
            await conn.execute(cagg)
            # Real-time: since TimescaleDB 2.13 new continuous aggregates are materialised-only by
            # default, which would hide everything above the last refresh (the plain views do not).
            await conn.execute(f"ALTER MATERIALIZED VIEW {ident(view)} SET (timescaledb.materialized_only = false)")
            await conn.execute(
                "SELECT add_continuous_aggregate_policy($1::regclass, start_offset => interval '3 days', "
                "end_offset => interval '1 minute', schedule_interval => interval '1 minute', "
                "if_not_exists => true)", view)


async def refresh_aggregates(conn: asyncpg.Connection) -> None:
    """Materialise every continuous aggregate now, over all time (TimescaleDB path only: tests
    and benchmarks that must see the views settled; production leaves it to the policies)."""
    for view, _ in _BUCKETS:
        await conn.execute("CALL refresh_continuous_aggregate($1::regclass, NULL, NULL)", view)


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


    async def ensure_days(self, conn: asyncpg.Connection, table: str, days: Iterable[date]) -> None:
        """Make sure the partitions of these UTC days exist (the days that hold rows, never a range).

        Writers call this rather than `ensure_range`: a batch with one reading from 1970 and one
        from today needs two partitions, not 20 000. No-op on TimescaleDB.
        """
        if self.backend != "plain":
            return
        for day in sorted(days):
            if (table, day) not in self.known:
                await _create_partition(conn, table, day)
                self.known.add((table, day))


def partition_name(table: str, day: date) -> str:
    """The plain path's partition of `table` for one UTC day (created by `PartitionKeeper`)."""
    return _partition_name(table, day)


async def log_readings_box(conn: asyncpg.Connection, lo: datetime, hi: datetime, lo_point: int,
                           hi_point: int) -> None:
    """Log in the rollup's invalidation log what the `readings_1h_insert` trigger would log for a
    statement that wrote readings in [lo, hi] of points [lo_point, hi_point] (plain path).

    For writers that COPY straight into daily partitions: statement triggers of the parent do
    not fire there, and that is the point (a transition table on a partitioned table makes
    PostgreSQL insert COPY rows one by one; into the partition it inserts them in batches,
    ~25 % faster). Call it in the same transaction as the rows."""
    await conn.execute("INSERT INTO readings_1h_invalid (lo, hi, lo_point, hi_point) VALUES ($1, $2, $3, $4)",
                       lo, hi, lo_point, hi_point)


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
        # add_retention_policy(if_not_exists) keeps an existing policy as it is, whatever its
        # horizon: a changed MINEWATCH_RETENTION_DAYS would never take effect. A policy with
        # another horizon is replaced (in one transaction: never a moment without one).
        # The continuous aggregates get the same horizon: dropping a hypertable's chunks leaves
        # their buckets in the aggregates, and readings_1m / readings_1h would go on answering
        # days whose readings are gone (the plain path's views answer what `readings` holds).
        keep = timedelta(days=retention_days)
        for relation in (*(t.name for t in TABLES), *(view for view, _ in _BUCKETS)):
            async with conn.transaction():
                # the jobs view names a continuous aggregate's policies by the view
                current = await conn.fetchval(
                    "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs "
                    "WHERE proc_name = 'policy_retention' AND hypertable_schema = current_schema() "
                    "AND hypertable_name = $1", relation)
                if current == keep:
                    continue
                if current is not None:
                    await conn.execute("SELECT remove_retention_policy($1::regclass)", relation)
                await conn.execute("SELECT add_retention_policy($1::regclass, $2::interval)", relation, keep)
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
        old = []
        for r in rows:
            name: str = r["relname"]
            suffix = name.rsplit("_p", 1)[-1]
            if len(suffix) == 8 and suffix.isdigit():
                d = date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:]))
                if d < horizon:
                    old.append(name)
        if not old:
            continue
        # The hourly rollup's rows of the dropped days go in the same transaction: until the
        # refresher's next run readings_1h_parts() would otherwise still answer hours whose
        # readings are gone (the API's raw answer empty, its hourly one not).
        async with conn.transaction():
            for name in old:
                await conn.execute(f"DROP TABLE IF EXISTS {ident(name)}")
            if t.name == "readings" and await conn.fetchval("SELECT to_regclass('readings_1h_rollup') IS NOT NULL"):
                await conn.execute("DELETE FROM readings_1h_rollup WHERE bucket < $1",
                                   datetime(horizon.year, horizon.month, horizon.day, tzinfo=UTC))
        dropped += len(old)
    return {"created": created, "dropped": dropped}



# --- The hourly rollup of readings, read through readings_1h_parts(point, lo, hi) on both paths. ---
#
# readings_1h_parts(point, lo, hi) answers, for one point, one row per hour that has readings in
# [lo, hi): bucket (the hour), min, max, sum, n, last. `lo` is an hour start; `hi` may fall inside
# an hour, whose partial row then covers [that hour, hi) only. Readers combine the rows into any
# step that is a whole number of hours. The result is always what aggregating `readings` gives.
#
# TimescaleDB: the readings_1h continuous aggregate, real-time (materialised buckets below its
# watermark, raw readings above), plus the raw readings of the partial last hour.
#
# Plain PostgreSQL: `readings_1h_rollup` holds materialised hours for [lo, hi) of
# `readings_1h_state`, kept by minewatch.db.rollup's refresher. Writers do no per-row work: one
# statement-level trigger per INSERT / UPDATE / DELETE logs the statement's (ts, point_id) box in
# `readings_1h_invalid` (min/max over the transition table). The function reads materialised
# hours only inside the state's range and outside every logged box, and aggregates raw readings
# for the rest (the hours above the watermark, below the back-fill, and those a late or
# back-filled statement invalidated but the refresher has not yet recomputed). A box is
# committed with its rows, so any snapshot that sees the rows also sees the box. The MQTT
# ingest's fast path COPYs into the daily partitions directly, where the parent's trigger does
# not fire, and logs its box itself (`log_readings_box`) in the same transaction.

_HOUR_ORIGIN = "timestamptz '2000-01-01'"

_PLAIN_ROLLUP = f"""
CREATE TABLE IF NOT EXISTS readings_1h_rollup (
    point_id integer NOT NULL, bucket timestamptz NOT NULL, min double precision NOT NULL,
    max double precision NOT NULL, sum double precision NOT NULL, n integer NOT NULL,
    last double precision NOT NULL, PRIMARY KEY (point_id, bucket));
CREATE TABLE IF NOT EXISTS readings_1h_state (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), lo timestamptz NOT NULL, hi timestamptz NOT NULL,
    CHECK (lo <= hi));
INSERT INTO readings_1h_state (lo, hi)
    SELECT date_bin('1 hour', now(), {_HOUR_ORIGIN}), date_bin('1 hour', now(), {_HOUR_ORIGIN})
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS readings_1h_invalid (
    id bigserial PRIMARY KEY, lo timestamptz NOT NULL, hi timestamptz NOT NULL,
    lo_point integer NOT NULL, hi_point integer NOT NULL);

CREATE OR REPLACE FUNCTION readings_1h_log_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO readings_1h_invalid (lo, hi, lo_point, hi_point)
    SELECT min(ts), max(ts), min(point_id), max(point_id) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION readings_1h_log_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO readings_1h_invalid (lo, hi, lo_point, hi_point)
    SELECT min(ts), max(ts), min(point_id), max(point_id) FROM old_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION readings_1h_log_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO readings_1h_invalid (lo, hi, lo_point, hi_point)
    VALUES ('-infinity', 'infinity', -2147483648, 2147483647);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS readings_1h_insert ON readings;
CREATE TRIGGER readings_1h_insert AFTER INSERT ON readings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION readings_1h_log_new();
-- Readings are never updated or deleted by the product; these keep the rollup honest if an operator does.
DROP TRIGGER IF EXISTS readings_1h_update_new ON readings;
CREATE TRIGGER readings_1h_update_new AFTER UPDATE ON readings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION readings_1h_log_new();
DROP TRIGGER IF EXISTS readings_1h_update_old ON readings;
CREATE TRIGGER readings_1h_update_old AFTER UPDATE ON readings REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION readings_1h_log_old();
DROP TRIGGER IF EXISTS readings_1h_delete ON readings;
CREATE TRIGGER readings_1h_delete AFTER DELETE ON readings REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION readings_1h_log_old();
DROP TRIGGER IF EXISTS readings_1h_truncate ON readings;
CREATE TRIGGER readings_1h_truncate AFTER TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION readings_1h_log_all();

CREATE OR REPLACE FUNCTION readings_1h_parts(_point integer, _lo timestamptz, _hi timestamptz)
RETURNS TABLE (bucket timestamptz, min double precision, max double precision, sum double precision,
               n bigint, last double precision)
LANGUAGE sql STABLE AS $$
WITH s AS (
    SELECT CASE WHEN a < b THEN tstzmultirange(tstzrange(a, b)) ELSE '{{}}'::tstzmultirange END
           - coalesce((SELECT range_agg(tstzrange(date_bin('1 hour', i.lo, {_HOUR_ORIGIN}),
                                                  date_bin('1 hour', i.hi, {_HOUR_ORIGIN}) + interval '1 hour'))
                       FROM readings_1h_invalid i
                       WHERE _point BETWEEN i.lo_point AND i.hi_point AND i.lo < b AND i.hi >= a),
                      '{{}}'::tstzmultirange) AS done
    FROM readings_1h_state st
    CROSS JOIN LATERAL (SELECT greatest(st.lo, date_bin('1 hour', _lo - interval '1 microsecond', {_HOUR_ORIGIN})
                                                  + interval '1 hour') AS a,
                               least(st.hi, date_bin('1 hour', _hi, {_HOUR_ORIGIN})) AS b) w
)
SELECT r.bucket, r.min, r.max, r.sum, r.n::bigint, r.last
FROM s CROSS JOIN LATERAL unnest(s.done) d
JOIN readings_1h_rollup r ON r.point_id = _point AND r.bucket >= lower(d) AND r.bucket < upper(d)
UNION ALL
SELECT date_bin('1 hour', x.ts, {_HOUR_ORIGIN}), min(x.value), max(x.value), sum(x.value), count(*),
       (array_agg(x.value ORDER BY x.ts DESC))[1]
FROM s CROSS JOIN LATERAL unnest(tstzmultirange(tstzrange(_lo, _hi)) - s.done) g
JOIN readings x ON x.point_id = _point AND x.ts >= lower(g) AND x.ts < upper(g)
GROUP BY 1
$$;
"""

_TIMESCALE_ROLLUP = f"""
-- Real-time: since TimescaleDB 2.13 new continuous aggregates are materialised-only by default,
-- which would hide everything above the last refresh.
ALTER MATERIALIZED VIEW readings_1h SET (timescaledb.materialized_only = false);
CREATE OR REPLACE FUNCTION readings_1h_parts(_point integer, _lo timestamptz, _hi timestamptz)
RETURNS TABLE (bucket timestamptz, min double precision, max double precision, sum double precision,
               n bigint, last double precision)
LANGUAGE sql STABLE AS $$
-- From the readings themselves, not from readings_1h: real-time aggregation covers only what
-- lies above the aggregate's watermark, so late data in an hour already materialised would be
-- missing until the policy's next run (up to a minute), where the plain path's invalidation
-- log answers exactly at once. The API must answer the same on both paths; the continuous
-- aggregates serve the dashboards, for which a minute's lag on late data is harmless.
SELECT date_bin('1 hour', x.ts, {_HOUR_ORIGIN}), min(x.value), max(x.value), sum(x.value), count(*),
       (array_agg(x.value ORDER BY x.ts DESC))[1]
FROM readings x
WHERE x.point_id = _point AND x.ts >= _lo AND x.ts < _hi
GROUP BY 1
$$;
"""


async def create_hourly_rollup(conn: asyncpg.Connection, backend: Backend) -> None:
    """Create `readings_1h_parts(point, lo, hi)` and what it reads on this backend (see above)."""
    if backend == "plain":
        await conn.execute(_PLAIN_ROLLUP)
        return
    await conn.execute(_TIMESCALE_ROLLUP)
    # The policy of _create_bucket_views refreshes only the last 3 days, so late data older
    # than that would never reach the aggregate; from the start (NULL) each run still only
    # recomputes the ranges its invalidation log names.
    await conn.execute("SELECT remove_continuous_aggregate_policy('readings_1h'::regclass, if_exists => true)")
    await conn.execute(
        "SELECT add_continuous_aggregate_policy('readings_1h'::regclass, start_offset => NULL, "
        "end_offset => interval '1 minute', schedule_interval => interval '1 minute')")


async def oldest_partition_start(conn: asyncpg.Connection, table: str) -> datetime | None:
    """Start of the oldest daily partition of `table` on plain PostgreSQL (None without any)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1", table)
    days = []
    for r in rows:
        suffix = str(r["relname"]).rsplit("_p", 1)[-1]
        if len(suffix) == 8 and suffix.isdigit():
            days.append(date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:])))
    if not days:
        return None
    d = min(days)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)
