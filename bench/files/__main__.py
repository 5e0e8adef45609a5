"""Upload-file source throughput: CDSS rows parsed + checked + stored per second, next to the raw COPY ceiling.

    python -m bench.files [--rows 500000] [--runs 3] [--files-hours 2]
    python -m bench.files --soak 10 [--soak-baseline 2]   (see bench/files/soak.py)

Uses DATABASE_URL when set, else a private embedded PostgreSQL. Each run: a fresh database
(migrations + sample registry, as the tests), one CDSS file of `--rows` rows for the 43
points of a sample coal mine (a snapshot every 10 s, so ~3.2 h per 50 000 rows), given to
`FileIngester.ingest` (parse, registry checks, chunked COPY with the ledger, 20 000 rows per
transaction). Reported per run: parse alone (CPU), the whole ingest (wall), and the raw
COPY ceiling measured on the same server in the same run (asyncpg COPY of pre-built rows,
50 000-row batches, into a bare table of the readings columns). Then the per-file cost for
many small files: `--files-hours` of the simulator's file mode through `DropWatcher`
(read, ledger, parse, store, archive), files/s and rows/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.ingest.__main__ import copy_ceiling, fresh_db
from ingest.files import CdssRecord, Header, parse_file, write_file
from ingest.files.ledger import FileIngester
from ingest.files.watch import DropWatcher
from launcher.embedded import EmbeddedPostgres
from minewatch.clock import SystemClock
from minewatch.registry import load_registry
from minewatch.settings import packaged
from simulators.files import FileOptions, MineFiles, put, single_mine
from simulators.world import World

MINE = "140100000001"


def cdss_file(rows: int, end: datetime) -> tuple[str, bytes]:
    reg, _ = load_registry(packaged("sample_registry.yaml"))
    mine = reg.mine(MINE)
    points = [p.code for p in mine.points]
    ticks = -(-rows // len(points))
    t0 = end - timedelta(seconds=10 * ticks)
    records = [CdssRecord(points[i % len(points)], "甲烷", "回风巷", round(0.2 + (i % 37) / 100, 2), "%CH4", 0,
                          t0 + timedelta(seconds=10 * (i // len(points)))) for i in range(rows)]
    header = Header(MINE, mine.name, "KJ95X", "安全监控系统", "bench", None, end)
    return write_file("CDSS", header, records)


async def drop_db(server_dsn: str, dsn: str) -> None:
    # Each run's database is dropped: on a shared server (DATABASE_URL) they would pile up.
    from minewatch.db.scratch import drop_db

    await drop_db(server_dsn, dsn)


async def one_run(server_dsn: str, name: str, data: bytes, rows: int) -> tuple[float, float, float]:
    dsn = await fresh_db(server_dsn)
    try:
        return await _measure(dsn, name, data, rows)
    finally:
        await drop_db(server_dsn, dsn)


async def _measure(dsn: str, name: str, data: bytes, rows: int) -> tuple[float, float, float]:
    t = time.process_time()
    parse_file(name, data)
    parse_s = time.process_time() - t
    ing = FileIngester(dsn, clock=SystemClock())
    t = time.perf_counter()
    summary = await ing.ingest(name, data)
    wall = time.perf_counter() - t
    await ing.close()
    assert summary.stored == rows, summary
    ceiling = await copy_ceiling(dsn)
    return rows / parse_s, rows / wall, ceiling


async def many_files(server_dsn: str, hours: float) -> tuple[int, int, float]:
    dsn = await fresh_db(server_dsn)
    reg, _ = load_registry(packaged("sample_registry.yaml"))
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    world = World(single_mine(reg, MINE), 7, end - timedelta(hours=hours), end)
    drop = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        n = 0
        for fname, fdata, _ in MineFiles(world, MINE, FileOptions()).files():
            put(drop, fname, fdata)
            n += 1
        rows = 0

        def count(s: object) -> None:
            nonlocal rows
            rows += getattr(s, "stored", 0)

        ing = FileIngester(dsn, clock=SystemClock())
        watcher = DropWatcher(ing, drop, clock=SystemClock(), report=count)
        t = time.perf_counter()
        await watcher.scan()
        wall = time.perf_counter() - t
        await ing.close()
        return n, rows, wall
    finally:
        shutil.rmtree(drop, ignore_errors=True)
        await drop_db(server_dsn, dsn)


async def _soak(minutes: float, baseline: float) -> None:
    from bench.files.soak import soak

    server = os.environ.get("DATABASE_URL")
    pg = home = None
    if not server:
        home = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        os.chmod(home, 0o711)
        pg = EmbeddedPostgres(home / "data", fsync=False)
        server = pg.start()
    try:
        await soak(server, minutes, baseline)
    finally:
        if pg is not None:
            pg.stop("immediate")
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--files-hours", type=float, default=2.0)
    p.add_argument("--soak", type=float, default=None, metavar="MINUTES",
                   help="soak the drop-directory watcher under a hostile + valid stream instead (default 10 min)",
                   nargs="?", const=10.0)
    p.add_argument("--soak-baseline", type=float, default=2.0, metavar="MINUTES",
                   help="minutes of valid-only input measured first, in the same run (default 2)")
    args = p.parse_args()
    if args.soak is not None:
        await _soak(args.soak, args.soak_baseline)
        return
    name, data = cdss_file(args.rows, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))
    print(f"CDSS file: {args.rows:,} rows, {len(data) / 1e6:.1f} MB", flush=True)
    pg = None
    server = os.environ.get("DATABASE_URL")
    home = None
    if not server:
        home = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        os.chmod(home, 0o711)
        pg = EmbeddedPostgres(home / "data", fsync=False)
        server = pg.start()
    try:
        results = []
        for r in range(args.runs):
            parse_rate, rate, ceiling = await one_run(server, name, data, args.rows)
            results.append((parse_rate, rate, ceiling))
            print(f"run {r + 1}: parse {parse_rate:,.0f} rows/s | parse + check + store {rate:,.0f} rows/s | "
                  f"COPY ceiling {ceiling:,.0f} rows/s | ratio {rate / ceiling:.2f}", flush=True)
        med = [statistics.median(x) for x in zip(*results, strict=True)]
        print(f"median: parse {med[0]:,.0f} rows/s | ingest {med[1]:,.0f} rows/s | COPY ceiling {med[2]:,.0f} rows/s | "
              f"ratio {med[1] / med[2]:.2f}")
        files, rows, wall = await many_files(server, args.files_hours)
        print(f"small files ({args.files_hours:g} h of one mine's uploads): {files} files in {wall:.1f} s = "
              f"{files / wall:,.0f} files/s, {rows / wall:,.0f} rows/s")
    finally:
        if pg is not None:
            pg.stop("immediate")
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    asyncio.run(main())
