"""What the hourly rollup's invalidation trigger costs writers: binary COPY with and without it.

Run: ``python -m bench.api.rollup [--dsn SERVER] [--hours 6] [--rounds 3]`` (default: a private
PostgreSQL in --data-dir, e.g. the one ``python -m bench.api.run`` filled).

In a scratch database migrated like production, it writes `--hours` of 2 000 points at 30 s
(time-major, as ingest receives them) in 20 000-row statements, the ingest's batch size, two
ways: binary COPY straight into `readings` (ingest's fast path) and COPY into a staging table +
INSERT ... SELECT ... ON CONFLICT DO NOTHING (its duplicate-safe path). Each way runs with the
statement-level trigger enabled and disabled, alternating, `--rounds` times, on an emptied
table each time; it prints the median rows/s of each and the difference. The trigger adds one
row per statement, but its transition table also makes PostgreSQL keep every inserted row in a
tuplestore and, for COPY into a partitioned table, insert row by row instead of in batches.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np

from bench.api.fill import _HEADER, _ROW, _TRAILER, _hour_block
from launcher.embedded import EmbeddedPostgres
from minewatch.db.migrate import migrate
from minewatch.db.timeseries import PartitionKeeper

DB = "minewatch_bench_rollup_trigger"
POINTS = 2000
BATCH = 20_000
_TRIGGER = "readings_1h_insert"
_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS stage (point_id integer, ts timestamptz, value double precision, "
          "status smallint)")


async def _write(conn: asyncpg.Connection, start: datetime, hours: int, *, staged: bool) -> float:
    """rows/s writing `hours` of POINTS points from `start` in BATCH-row statements."""
    rng = np.random.default_rng(1)
    ids = np.arange(1, POINTS + 1, dtype=np.int32)
    blocks = [_hour_block(ids, start + timedelta(hours=h), rng) for h in range(hours)]
    step = BATCH * _ROW.itemsize
    t0, n = time.perf_counter(), 0
    for block in blocks:
        for i in range(0, len(block), step):
            data = io.BytesIO(_HEADER + block[i:i + step] + _TRAILER)
            async with conn.transaction():
                if staged:
                    await conn.execute("TRUNCATE stage")
                    await conn.copy_to_table("stage", source=data, format="binary",
                                             columns=["point_id", "ts", "value", "status"])
                    await conn.execute("INSERT INTO readings (point_id, ts, value, status) "
                                       "SELECT point_id, ts, value, status FROM stage ON CONFLICT DO NOTHING")
                else:
                    await conn.copy_to_table("readings", source=data, format="binary",
                                             columns=["point_id", "ts", "value", "status"])
        n += len(block) // _ROW.itemsize
    return n / (time.perf_counter() - t0)


async def run(server: str, hours: int, rounds: int) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.rsplit("/", 1)[0] + "/" + DB)
    try:
        await migrate(conn, backend="plain")
        await conn.execute(_STAGE)
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
        await PartitionKeeper("plain").ensure_range(conn, "readings", start, start + timedelta(hours=hours))
        rates: dict[tuple[str, bool], list[float]] = {}
        for r in range(rounds):
            for staged in (False, True):
                for enabled in ((True, False) if r % 2 else (False, True)):
                    await conn.execute("TRUNCATE readings, readings_1h_invalid")
                    await conn.execute("VACUUM ANALYZE readings")
                    await conn.execute(f"ALTER TABLE readings {'ENABLE' if enabled else 'DISABLE'} TRIGGER {_TRIGGER}")
                    rate = await _write(conn, start, hours, staged=staged)
                    rates.setdefault(("staging + INSERT ON CONFLICT" if staged else "binary COPY", enabled),
                                     []).append(rate)
        logged = await conn.fetchval("SELECT count(*) FROM readings_1h_invalid")
        print(f"{hours} h x {POINTS} points at 30 s = {hours * 120 * POINTS} rows per run, {BATCH}-row statements, "
              f"{rounds} rounds (medians; last run logged {logged} invalidation rows)")
        for way in ("binary COPY", "staging + INSERT ON CONFLICT"):
            off, on = statistics.median(rates[(way, False)]), statistics.median(rates[(way, True)])
            print(f"  {way:<30} without trigger {off / 1e3:6.0f} k rows/s   with {on / 1e3:6.0f} k rows/s   "
                  f"({(on / off - 1) * 100:+.0f} %)   runs: "
                  f"{', '.join(f'{x / 1e3:.0f}' for x in rates[(way, False)])} / "
                  f"{', '.join(f'{x / 1e3:.0f}' for x in rates[(way, True)])}")
    finally:
        await conn.close()
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=None, help="server DSN (default: a private PostgreSQL in --data-dir)")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "minewatch-bench-api")
    p.add_argument("--hours", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    pg = None
    server = args.dsn
    if server is None:
        pg = EmbeddedPostgres(args.data_dir / "pg", fsync=False)
        server = pg.start()
    try:
        asyncio.run(run(server, args.hours, args.rounds))
    finally:
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
