"""Back-fill throughput from PostgreSQL, next to the raw binary COPY read rate of the same rows.

    python -m bench.rules.backfill [--days 10] [--runs 3] [--chunk 1d]

Uses DATABASE_URL when set, else a private embedded PostgreSQL. Loads the sample registry
(3 coal mines, a tailings pond, a pit), fills `readings` with `--days` of simulated data
(written with binary COPY, time-major like the ingest writes it), then per run: empties the
rule tables and times `rules.backfill.backfill` over the whole span, end to end (read,
evaluate, write episodes, events, orders, findings, commit per chunk). The figure is
evaluated readings per second (readings of the points the exceedance rules read). The
ceiling, measured in the same run on the same server, is the raw binary
`COPY (SELECT ... ORDER BY point_id, ts) TO STDOUT` of exactly those rows, per mine and
chunk as the back-fill reads them, received and discarded. Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np

from bench import scratch
from launcher.embedded import EmbeddedPostgres
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.registry import load_registry
from minewatch.settings import packaged
from minewatch.timeutil import from_ns, to_ns
from rules.backfill import backfill
from rules.load import EVENT_GASES, PG_EPOCH_US, load_points
from rules.packs import builtin_pack, parse_duration
from simulators.model import generate

ROOT = Path(__file__).resolve().parents[2]
_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("p", ">i4"), ("l2", ">i4"), ("t", ">i8"), ("l3", ">i4"),
                 ("v", ">f8"), ("l4", ">i4"), ("s", ">i2")])


def encode(point_id: np.ndarray, ts_ns: np.ndarray, value: np.ndarray, status: np.ndarray) -> bytes:
    """Rows as a PostgreSQL binary COPY stream (the parser's layout, in reverse)."""
    rows = np.zeros(len(point_id), _ROW)
    rows["n"], rows["l1"], rows["l2"], rows["l3"], rows["l4"] = 4, 4, 8, 8, 2
    rows["p"], rows["t"] = point_id, ts_ns // 1_000 - PG_EPOCH_US
    rows["v"], rows["s"] = value, status
    return b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rows.tobytes() + b"\xff\xff"


async def fill(dsn: str, days: float, end: datetime) -> int:
    """Write `days` of the sample registry's readings; returns how many rows."""
    reg, _ = load_registry(packaged("sample_registry.yaml"))
    conn = await asyncpg.connect(dsn)
    try:
        ids = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM points")}
        start = end - timedelta(days=days)
        await PartitionKeeper(await current_backend(conn)).ensure_range(conn, "readings", start, end)
        n = 0
        for batch in generate(reg, 42, start, end):
            lookup = np.array([ids[c] for c in batch.codes], np.int32)
            raw = encode(lookup[batch.point], batch.ts_ms * 1_000_000, batch.value, batch.status)
            await conn.copy_to_table("readings", source=io.BytesIO(raw), columns=["point_id", "ts", "value", "status"],
                                     format="binary")
            n += len(batch)
        await conn.execute("VACUUM ANALYZE readings")
        return n
    finally:
        await conn.close()


async def raw_copy(dsn: str, since: int, until: int, chunk: int) -> tuple[int, float]:
    """The ceiling: binary COPY of the evaluated points' rows, per mine and chunk, discarded."""
    conn = await asyncpg.connect(dsn)
    try:
        mines = [r["id"] for r in await conn.fetch("SELECT id FROM mines ORDER BY id")]
        points = [await load_points(conn, m, EVENT_GASES) for m in mines]
        rows = 0
        t0 = time.perf_counter()
        for p in points:
            if len(p) == 0:
                continue
            lo = since
            while lo < until:
                size = 0

                async def sink(chunk_bytes: bytes) -> None:
                    nonlocal size
                    size += len(chunk_bytes)

                await conn.copy_from_query(
                    "SELECT point_id, ts, value, status FROM readings WHERE point_id = ANY($1::int[]) AND ts >= $2 "
                    "AND ts < $3 ORDER BY point_id, ts", p.ids.tolist(), from_ns(lo), from_ns(min(lo + chunk, until)),
                    output=sink, format="binary")
                rows += (size - 21) // 40
                lo += chunk
        return rows, time.perf_counter() - t0
    finally:
        await conn.close()


async def reset(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE findings, order_events, orders, exceedance_events, episodes CASCADE")
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=10, help="days of sample-registry data (~374 k readings a day)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk", default="1d", help="back-fill chunk (default 1d)")
    args = ap.parse_args()
    chunk = parse_duration(args.chunk)
    work = scratch("minewatch-bench-rules-")
    pg = None
    server = os.environ.get("DATABASE_URL")
    try:
        if not server:
            pg = EmbeddedPostgres(work / "pg")
            server = pg.start()
        sys.path.insert(0, str(ROOT))
        from bench import bench_db  # the tests' set-up: migrate + sample registry

        dsn = await bench_db(server, registry=True)
        end = datetime(2026, 11, 1, tzinfo=UTC)
        t = time.perf_counter()
        n = await fill(dsn, args.days, end)
        print(f"filled {n:,} readings ({args.days:g} days) in {time.perf_counter() - t:.1f} s", flush=True)
        since, until = to_ns(end - timedelta(days=args.days)), to_ns(end)
        pack = builtin_pack("default")
        rates, ceilings = [], []
        for r in range(args.runs):
            await reset(dsn)
            t = time.perf_counter()
            tally = await backfill(dsn, pack, since_ns=since, until_ns=until, chunk_ns=chunk, integrity=False)
            secs = time.perf_counter() - t
            rows, copy_secs = await raw_copy(dsn, since, until, chunk)
            rates.append(tally.readings / secs)
            ceilings.append(rows / copy_secs)
            print(f"run {r + 1}: back-fill {tally.readings:,} readings in {secs:.2f} s = {rates[-1]:,.0f} readings/s | "
                  f"raw binary COPY {rows:,} rows in {copy_secs:.2f} s = {ceilings[-1]:,.0f} rows/s | "
                  f"ratio {rates[-1] / ceilings[-1]:.2f} | episodes {tally.episodes['created']}, events "
                  f"{tally.events['created']}, orders {tally.orders['created']}, findings {tally.findings['created']}",
                  flush=True)
        rate, ceiling = statistics.median(rates), statistics.median(ceilings)
        print(f"median of {args.runs}: back-fill {rate:,.0f} readings/s, raw COPY {ceiling:,.0f} rows/s, "
              f"ratio {rate / ceiling:.2f} (target >= 1,000,000 readings/s)")
    finally:
        if pg is not None:
            pg.stop("immediate")


if __name__ == "__main__":
    asyncio.run(main())
