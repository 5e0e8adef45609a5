"""What an hourly rollup table would buy the 30-day hourly series on plain PostgreSQL, and cost ingest.

Run: ``python -m bench.api.rollup [--data-dir DIR]`` after ``python -m bench.api.run`` filled the data.

Not part of the product: a measurement to decide on. It builds `bench_rollup_1h` (point, hour:
min, max, sum, n, last) from the bench readings, times query (b) on it, and times binary COPY
of the same 12 h of readings into a scratch partitioned table with and without a
statement-level AFTER INSERT trigger that keeps such a rollup (the way ingest's batches would).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np

from bench.api.fill import _HEADER, _ROW, _TRAILER, _hour_block
from bench.api.run import DB
from minewatch.embedded import EmbeddedPostgres

_TRIGGER = """
CREATE OR REPLACE FUNCTION bench_probe_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_probe_rollup AS r (point_id, bucket, min, max, sum, n, last_ts, last)
  SELECT point_id, date_bin('1 hour', ts, timestamptz '2000-01-01'), min(value), max(value), sum(value), count(*),
         max(ts), (array_agg(value ORDER BY ts DESC))[1]
  FROM new_rows GROUP BY 1, 2
  ON CONFLICT (point_id, bucket) DO UPDATE SET min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),
    sum = r.sum + EXCLUDED.sum, n = r.n + EXCLUDED.n,
    last = CASE WHEN EXCLUDED.last_ts >= r.last_ts THEN EXCLUDED.last ELSE r.last END,
    last_ts = greatest(r.last_ts, EXCLUDED.last_ts);
  RETURN NULL;
END $$;
"""
_ROLLUP_COLUMNS = ("point_id integer, bucket timestamptz, min float8, max float8, sum float8, n integer, "
                   "last_ts timestamptz, last float8, PRIMARY KEY (point_id, bucket)")


async def _copy_rate(conn: asyncpg.Connection, table: str, point_ids: np.ndarray, start: datetime,
                     hours: int) -> float:
    rng = np.random.default_rng(1)
    t0, n = time.perf_counter(), 0
    for h in range(hours):
        block = _hour_block(point_ids, start + timedelta(hours=h), rng)
        # Batches of ~20 000 rows, as ingest commits them.
        step = 20_000 * _ROW.itemsize
        for i in range(0, len(block), step):
            await conn.copy_to_table(table, source=io.BytesIO(_HEADER + block[i:i + step] + _TRAILER),
                                     format="binary", columns=["point_id", "ts", "value", "status"])
        n += len(block) // _ROW.itemsize
    return n / (time.perf_counter() - t0)


async def run(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        end = datetime.fromisoformat(
            (await conn.fetchval("SELECT value FROM meta WHERE key = 'bench_api_fill'")).split('"end": "')[1][:25])
        since = end - timedelta(days=30)
        if not await conn.fetchval("SELECT to_regclass('bench_rollup_1h') IS NOT NULL"):
            t = time.perf_counter()
            await conn.execute(f"CREATE TABLE bench_rollup_1h ({_ROLLUP_COLUMNS})")
            await conn.execute(
                "INSERT INTO bench_rollup_1h SELECT point_id, date_bin('1 hour', ts, timestamptz '2000-01-01'), "
                "min(value), max(value), sum(value), count(*), max(ts), (array_agg(value ORDER BY ts DESC))[1] "
                "FROM readings GROUP BY 1, 2")
            await conn.execute("VACUUM ANALYZE bench_rollup_1h")
            print(f"built bench_rollup_1h in {time.perf_counter() - t:.0f} s")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('bench_rollup_1h'))")
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM points WHERE code LIKE '1499%\\_01MN0001\\_%'")]
        times = []
        for _ in range(100):
            t = time.perf_counter()
            await conn.fetch("SELECT bucket, min, max, sum / n AS avg, last, n FROM bench_rollup_1h "
                             "WHERE point_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket",
                             random.choice(ids), since, end)
            times.append((time.perf_counter() - t) * 1000)
        q = statistics.quantiles(times, n=100)
        print(f"(b) on the rollup ({size}): p50 {q[49]:.2f} ms, p95 {q[94]:.2f} ms (one connection, random points)")

        point_ids = np.array(sorted(ids + [r["id"] for r in await conn.fetch(
            "SELECT id FROM points WHERE code LIKE '1499%' AND NOT code LIKE '1499%\\_01MN0001\\_%'")]), np.int32)
        start = datetime(2030, 1, 1, tzinfo=end.tzinfo)
        rates = {}
        for with_trigger in (False, True):
            await conn.execute("DROP TABLE IF EXISTS bench_probe, bench_probe_rollup")
            await conn.execute("CREATE TABLE bench_probe (point_id integer NOT NULL, ts timestamptz NOT NULL, "
                               "value double precision NOT NULL, status smallint NOT NULL DEFAULT 0, "
                               "PRIMARY KEY (point_id, ts)) PARTITION BY RANGE (ts)")
            await conn.execute("CREATE TABLE bench_probe_p PARTITION OF bench_probe FOR VALUES FROM "
                               "('2030-01-01') TO ('2030-01-02')")
            await conn.execute("CREATE INDEX ON bench_probe (ts)")
            await conn.execute("CREATE INDEX ON bench_probe (point_id, ts) INCLUDE (value, status)")
            if with_trigger:
                await conn.execute(f"CREATE TABLE bench_probe_rollup ({_ROLLUP_COLUMNS})")
                await conn.execute(_TRIGGER)
                await conn.execute("CREATE TRIGGER bench_probe_rollup AFTER INSERT ON bench_probe "
                                   "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
                                   "EXECUTE FUNCTION bench_probe_rollup()")
            rates[with_trigger] = await _copy_rate(conn, "bench_probe", point_ids, start, 12)
        await conn.execute("DROP TABLE IF EXISTS bench_probe, bench_probe_rollup")
        print(f"COPY of 12 h x {point_ids.size} points in 20 000-row batches: {rates[False] / 1e3:.0f} k rows/s "
              f"without the rollup trigger, {rates[True] / 1e3:.0f} k rows/s with it "
              f"({(1 - rates[True] / rates[False]) * 100:.0f} % slower)")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=None)
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "minewatch-bench-api")
    args = p.parse_args(argv)
    pg = None
    server = args.dsn
    if server is None:
        pg = EmbeddedPostgres(args.data_dir / "pg", fsync=False)
        server = pg.start()
    try:
        asyncio.run(run(server.rsplit("/", 1)[0] + "/" + DB))
    finally:
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
