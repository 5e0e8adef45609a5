"""The integrity rules' back-fill path from PostgreSQL, next to the raw binary COPY read rate, and
the clock-driven pass over many points.

    python -m bench.rules.integrity_db [--days 3] [--runs 3] [--clock-mines 200 --clock-points 300]

Uses DATABASE_URL when set, else a private embedded PostgreSQL. Loads the sample registry,
fills `readings` with `--days` of simulated data (as bench.rules.backfill does), runs the
methane back-fill once (untimed: the integrity rules read its episodes), then per run deletes
the integrity findings and times `rules.integrity_worker.reevaluate_integrity` per mine and
day chunk, each chunk one transaction under the mine's lock, as `rules.backfill` runs it:
read, judge, write. The figure is readings of all the mines' points per second (the §6 rules
read every point, not only the gases). The ceiling, measured in the same run on the same
server, is the raw binary `COPY (SELECT ... ORDER BY point_id, ts) TO STDOUT` of exactly those
rows, per mine and chunk, received and discarded. Medians of `--runs`.

The clock pass: `--clock-mines` synthetic mines of `--clock-points` points each (registry rows
and one reading per point, written directly), one `clock_pass` at a clock where every point
is silent and one where none is; the process CPU time (time.process_time, the worker's own
share; PostgreSQL's is its own) and the wall time of each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import asyncpg

from bench import scratch
from bench.rules.backfill import fill
from launcher.embedded import EmbeddedPostgres
from minewatch.clock import FrozenClock
from minewatch.db.scratch import drop_db
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.timeutil import from_ns, to_ns
from rules import store
from rules.backfill import Tally, backfill
from rules.integrity_rows import INTEGRITY_RULES
from rules.integrity_worker import clock_pass, reevaluate_integrity
from rules.packs import builtin_pack

DAY_NS = 86_400 * 1_000_000_000


async def integrity_pass(dsn: str, since: int, until: int, chunk: int, now_ns: int) -> tuple[Tally, int, float]:
    """(tally, rows read by the kernels' loads, seconds) of one integrity back-fill."""
    conn = await asyncpg.connect(dsn)
    tally = Tally()
    try:
        await conn.execute("DELETE FROM findings WHERE rule = ANY($1::text[])", list(INTEGRITY_RULES))
        mines = [r["id"] for r in await conn.fetch("SELECT id FROM mines ORDER BY id")]
        t0 = time.perf_counter()
        for m in mines:
            lo = since
            while lo < until:
                hi = min(lo + chunk, until) - 1_000
                async with conn.transaction():
                    await store.lock_mine(conn, m)
                    await reevaluate_integrity(conn, m, [(lo, hi)], now_ns=now_ns, tally=tally)
                lo += chunk
        secs = time.perf_counter() - t0
        n = await conn.fetchval("SELECT count(*) FROM readings WHERE ts >= $1 AND ts < $2", from_ns(since), from_ns(until))
        return tally, int(n), secs
    finally:
        await conn.close()


async def raw_copy(dsn: str, since: int, until: int, chunk: int) -> tuple[int, float]:
    """The ceiling: binary COPY of every point's rows, per mine and chunk, discarded."""
    conn = await asyncpg.connect(dsn)
    try:
        mines = [
            [r["id"] for r in await conn.fetch("SELECT id FROM points WHERE mine_id = $1 ORDER BY id", m["id"])]
            for m in await conn.fetch("SELECT id FROM mines ORDER BY id")
        ]
        rows = 0
        t0 = time.perf_counter()
        for ids in mines:
            lo = since
            while lo < until:
                size = 0

                async def sink(chunk_bytes: bytes) -> None:
                    nonlocal size
                    size += len(chunk_bytes)

                await conn.copy_from_query(
                    "SELECT point_id, ts, value, status FROM readings WHERE point_id = ANY($1::int[]) AND ts >= $2 "
                    "AND ts < $3 ORDER BY point_id, ts",
                    ids,
                    from_ns(lo),
                    from_ns(min(lo + chunk, until)),
                    output=sink,
                    format="binary",
                )
                rows += (size - 21) // 40
                lo += chunk
        return rows, time.perf_counter() - t0
    finally:
        await conn.close()


async def clock_bench(server: str, n_mines: int, n_points: int, made: list[str]) -> None:
    """One clock pass over n_mines x n_points synthetic points: all silent, then none."""
    from bench import bench_db

    dsn = await bench_db(server, registry=False)
    made.append(dsn)
    conn = await asyncpg.connect(dsn)
    last = datetime(2026, 11, 1, tzinfo=UTC)
    try:
        await conn.execute("INSERT INTO regions (code, name, level) VALUES ('900001', 'bench', 'county')")
        await conn.execute(
            "INSERT INTO mines (code, name, kind, county, city, province) SELECT 'B' || lpad(m::text, 11, '0'), "
            "'bench ' || m, 'coal', '900001', '900001', '900001' FROM generate_series(1, $1) m",
            n_mines,
        )
        await conn.execute("INSERT INTO stations (mine_id, code) SELECT id, code || 'S0001' FROM mines")
        await conn.execute(
            "INSERT INTO points (mine_id, station_id, code, sensor_type, value_type, gas) "
            "SELECT m.id, s.id, m.code || '_01MN0001_' || lpad(k::text, 5, '0'), '0001', 'MN', 'methane' "
            "FROM mines m JOIN stations s ON s.mine_id = m.id, generate_series(1, $1) k",
            n_points,
        )
        await PartitionKeeper(await current_backend(conn)).ensure_range(conn, "readings", last, last)
        await conn.execute("INSERT INTO readings (point_id, ts, value, status) SELECT id, $1, 0.3, 0 FROM points", last)
        await conn.execute("VACUUM ANALYZE")
        n = await conn.fetchval("SELECT count(*) FROM points")
        previous = None
        for label, now in (
            ("every point silent", last + timedelta(minutes=5)),
            ("again, nothing new", last + timedelta(minutes=5, seconds=5)),
            ("no point silent", last + timedelta(seconds=30)),
        ):
            if label == "no point silent":
                await conn.execute("TRUNCATE findings CASCADE")  # (a DELETE checks the self-reference row by row)
            tally = Tally()
            cpu, wall = time.process_time(), time.perf_counter()
            # As the running worker calls it: `since` its previous pass (the first pass has none).
            await clock_pass(conn, FrozenClock(now).now(), tally=tally, since=previous)
            previous = now
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(
                f"clock pass over {n:,} points ({n_mines} mines), {label}: {cpu:.3f} s CPU (this process), "
                f"{wall:.3f} s wall; findings {dict(tally.findings)}",
                flush=True,
            )
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=3, help="days of sample-registry data (~374 k readings a day)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clock-mines", type=int, default=200)
    ap.add_argument("--clock-points", type=int, default=300)
    ap.add_argument("--clock-only", action="store_true", help="only the clock-pass measurement")
    args = ap.parse_args()
    work = scratch("minewatch-bench-integrity-")
    pg = None
    server = os.environ.get("DATABASE_URL")
    made: list[str] = []
    try:
        if not server:
            pg = EmbeddedPostgres(work / "pg")
            server = pg.start()
        from bench import bench_db  # the tests' set-up: migrate + sample registry

        if args.clock_only:
            await clock_bench(server, args.clock_mines, args.clock_points, made)
            return
        dsn = await bench_db(server, registry=True)
        made.append(dsn)
        end = datetime(2026, 11, 1, tzinfo=UTC)
        t = time.perf_counter()
        n = await fill(dsn, args.days, end)
        print(f"filled {n:,} readings ({args.days:g} days) in {time.perf_counter() - t:.1f} s", flush=True)
        since, until = to_ns(end - timedelta(days=args.days)), to_ns(end)
        t = time.perf_counter()
        await backfill(dsn, builtin_pack("default"), since_ns=since, until_ns=until, integrity=False)
        print(f"methane back-fill (untimed input: episodes) {time.perf_counter() - t:.1f} s", flush=True)
        now_ns = until + DAY_NS
        rates, ceilings = [], []
        for r in range(args.runs):
            tally, rows, secs = await integrity_pass(dsn, since, until, DAY_NS, now_ns)
            copied, copy_secs = await raw_copy(dsn, since, until, DAY_NS)
            rates.append(rows / secs)
            ceilings.append(copied / copy_secs)
            print(
                f"run {r + 1}: integrity back-fill of {rows:,} readings in {secs:.2f} s = {rates[-1]:,.0f} readings/s "
                f"| raw binary COPY {copied:,} rows in {copy_secs:.2f} s = {ceilings[-1]:,.0f} rows/s | ratio "
                f"{rates[-1] / ceilings[-1]:.3f} | findings {dict(tally.findings)}",
                flush=True,
            )
        rate, ceiling = statistics.median(rates), statistics.median(ceilings)
        print(
            f"median of {args.runs}: integrity back-fill {rate:,.0f} readings/s, raw COPY {ceiling:,.0f} rows/s, "
            f"ratio {rate / ceiling:.3f}",
            flush=True,
        )
        await clock_bench(server, args.clock_mines, args.clock_points, made)
    finally:
        if pg is not None:
            pg.stop("immediate")
        elif server:  # a shared server: drop the benchmark's databases
            for dsn in made:
                await drop_db(server, dsn)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
