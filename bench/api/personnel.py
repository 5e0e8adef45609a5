"""Latency of `GET /v1/mines/{mine}/personnel` with 1 500 cards underground and 30 days of card reads.

Run: ``python -m bench.api.personnel [--days 30] [--crews 250,1500,250] [--duration 20] [--runs 3]
[--connections 1]`` (``--dsn postgresql://...`` to use an existing server, e.g. a TimescaleDB
one, instead of a private one; ``--db NAME`` to keep fills apart; ``--refill`` to fill again;
``--fill-only`` to stop after the fill; ``--explain`` for EXPLAIN ANALYZE of the endpoint's
statements). Figures and what they mean: docs/bench-personnel.md.

Fill (once; kept in --data-dir between runs, like bench/api/run.py): one mine of the bench's
personnel registry (bench/ingest/cards.py: a shaft area, 18 working areas of approved 200, a
sealed area; 15 leaders, the workers of `--crews`, 10 visitors) and `--days` days of its card
reads from the simulator's personnel model (simulators/personnel.py, full attendance): three
8-hour shifts a day (local time), the crews sized by `--crews` (night, day, evening), each crew
entering at the shaft, working in its areas (a third visit a second area for 20-60 min),
leaving at the shaft, every card read about every 60 s while underground. The fill ends at the
latest local noon (04:00 UTC), mid day-shift: the day crew and its leader are underground with
their stays open, and the 12 h before span two daily partitions. Rows go in by binary COPY; all
but the last 30 min are vacuumed (autovacuum leaves a growing partition's newest rows).

Measure: a real uvicorn process on this machine's loopback, the API as `minewatch api` builds
it but with a clock that starts at the fill's end (the fill's `end` + the time since the
benchmark started), so a kept fill answers as it did when fresh; a token of role `mine` scoped
to the mine; `--connections` clients (default 1: one keep-alive HTTP connection, requests back
to back) send GET /v1/mines/{mine}/personnel (first page, limit 100: counts over everyone) for
`--duration` s; the same-run ceiling is GET /healthz the same way (the server doing no database
work). Runs interleave the two; medians of the runs last, with each p95 as a multiple of the
ceiling's, and the server's CPU time per request (API process + its PostgreSQL backends).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import numpy as np

from api.auth.tokens import create_token
from bench.ingest.cards import personnel_registry, simulate
from launcher.embedded import EmbeddedPostgres, free_port
from minewatch.db import ident
from minewatch.db.migrate import migrate
from minewatch.db.registry_store import sync_registry
from minewatch.db.timeseries import PartitionKeeper, current_backend
from rules import presence_store

PEPPER = "bench-pepper"
DB = "minewatch_bench_personnel"
# The fill ends at the latest noon in Asia/Shanghai (04:00 UTC), mid day-shift; its last
# UNVACUUMED are left for autovacuum, as a growing partition's newest rows are in production.
NOON_UTC_HOUR = 4
UNVACUUMED = timedelta(minutes=30)
_PG_EPOCH_MS = 946_684_800_000
_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("card", ">i4"), ("l2", ">i4"), ("ts", ">i8"), ("l3", ">i4"),
                 ("station", ">i4"), ("l4", ">i4"), ("mine", ">i4")])
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_TRAILER = b"\xff\xff"


async def fill(dsn: str, *, days: int, crews: tuple[int, int, int], end: datetime) -> dict[str, object]:
    """Migrate, load the registry, COPY `days` days of simulated card reads ending at `end` (a
    local noon). All but the last UNVACUUMED are vacuumed (as autovacuum keeps a partition
    that grows: its insert threshold is 20 % growth), the rest is not: their pages are not
    all-visible, so index-only scans still visit the heap there, as in production."""
    reg = personnel_registry(1, crews[1], workers=sum(crews))
    mine = reg.mines[0]
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, backend="auto")
        await sync_registry(conn, reg, checksum="bench-personnel", source="bench", now=end)
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", mine.code)
        card_id = {r["code"]: r["id"] for r in await conn.fetch("SELECT id, code FROM cards WHERE mine_id = $1",
                                                                  mine_id)}
        station_id = {r["code"]: r["id"] for r in await conn.fetch(
            "SELECT id, code FROM stations WHERE mine_id = $1", mine_id)}
        start = end - timedelta(days=days)
        tail = end - UNVACUUMED
        await PartitionKeeper(await current_backend(conn)).ensure_range(conn, "card_reads", start, end)
        t0 = time.perf_counter()
        written = 0
        cards_map = np.array([card_id[c.code] for c in mine.cards], np.int32)
        stations_map = np.array([station_id[st.code] for st in mine.stations], np.int32)
        for lo, hi in ((start, tail), (tail, end)):
            parts: list[bytes] = []
            pending = 0
            for batch in simulate(reg, lo, hi, crews=crews):
                rows = np.empty(len(batch), dtype=_ROW)
                rows["n"], rows["l1"], rows["l2"], rows["l3"], rows["l4"] = 4, 4, 8, 4, 4
                rows["card"] = cards_map[batch.card]
                rows["ts"] = (batch.ts_ms - _PG_EPOCH_MS) * 1000
                rows["station"] = stations_map[batch.station]
                rows["mine"] = mine_id
                parts.append(rows.tobytes())
                pending += len(batch)
                if pending >= 1_000_000:
                    await conn.copy_to_table("card_reads", source=io.BytesIO(_HEADER + b"".join(parts) + _TRAILER),
                                             format="binary", columns=["card_id", "ts", "station_id", "mine_id"])
                    written += pending
                    parts, pending = [], 0
                    print(f"  {written / 1e6:.1f} M card reads, {written / (time.perf_counter() - t0) / 1e3:.0f} k "
                          "rows/s", flush=True)
            if parts:
                await conn.copy_to_table("card_reads", source=io.BytesIO(_HEADER + b"".join(parts) + _TRAILER),
                                         format="binary", columns=["card_id", "ts", "station_id", "mine_id"])
                written += pending
            if hi == tail:
                seconds = time.perf_counter() - t0
                t = time.perf_counter()
                await conn.execute("VACUUM ANALYZE")
                print(f"  {written:,} card reads in {seconds:.0f} s ({written / seconds / 1e3:.0f} k rows/s, key and "
                      f"index maintained); VACUUM ANALYZE {time.perf_counter() - t:.0f} s", flush=True)
        await conn.execute("ANALYZE")
        return {"days": days, "crews": list(crews), "end": end.isoformat(), "reads": written, "mine": mine.code,
                "cards": len(card_id)}
    finally:
        await conn.close()


async def prepare(server_dsn: str, *, days: int, crews: tuple[int, int, int], refill: bool,
                  db: str) -> tuple[str, dict[str, object]]:
    """The filled database's DSN and its fill record (filled now unless a matching one is kept)."""
    admin = await asyncpg.connect(server_dsn)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db)
        dsn = server_dsn.rsplit("/", 1)[0] + "/" + db
        if exists and not refill:
            conn = await asyncpg.connect(dsn)
            try:
                got = await conn.fetchval("SELECT value FROM meta WHERE key = 'bench_personnel_fill'")
            finally:
                await conn.close()
            if got and json.loads(got)["days"] == days and json.loads(got).get("crews") == list(crews):
                print(f"reusing the filled database ({got})")
                return dsn, json.loads(got)
        await admin.execute(f"DROP DATABASE IF EXISTS {ident(db)} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {ident(db)}")
    finally:
        await admin.close()
    end = datetime.now(UTC).replace(hour=NOON_UTC_HOUR, minute=0, second=0, microsecond=0)
    if end > datetime.now(UTC):
        end -= timedelta(days=1)
    print(f"filling {days} days of card reads of one mine ({sum(crews) + 25:,} cards; crews of {crews[0]:,} / "
          f"{crews[1]:,} / {crews[2]:,} on the night / day / evening shifts, read every ~60 s underground) up to "
          f"{end:%Y-%m-%d %H:%M} UTC, binary COPY")
    record = await fill(dsn, days=days, crews=crews, end=end)
    conn = await asyncpg.connect(dsn)
    try:
        if await current_backend(conn) == "timescale":
            await _compress(conn)
        await conn.execute("INSERT INTO meta(key, value) VALUES ('bench_personnel_fill', $1) ON CONFLICT (key) "
                           "DO UPDATE SET value = EXCLUDED.value", json.dumps(record))
    finally:
        await conn.close()
    return dsn, record


async def _compress(conn: asyncpg.Connection) -> None:
    """TimescaleDB: the state its policies keep card_reads in (chunks past compress_after compressed)."""
    t = time.perf_counter()
    after = await conn.fetchval("SELECT (config->>'compress_after')::interval FROM timescaledb_information.jobs "
                                "WHERE proc_name = 'policy_compression' AND hypertable_name = 'card_reads'")
    chunks = await conn.fetch("SELECT compress_chunk(c, if_not_compressed => true) "
                              "FROM show_chunks('card_reads', older_than => $1::interval) c", after)
    print(f"  timescaledb: {len(chunks)} card_reads chunks older than {after} compressed in "
          f"{time.perf_counter() - t:.0f} s")
    await conn.execute("ANALYZE card_reads")


async def describe(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi, count(DISTINCT card_id) AS cards FROM card_reads")
        if await current_backend(conn) == "timescale":
            size = await conn.fetchval("SELECT pg_size_pretty(hypertable_size('card_reads'))")
        else:
            size = await conn.fetchval(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                "WHERE c.relname LIKE 'card\\_reads\\_p%' AND c.relkind = 'r'")
        assert row is not None
        return (f"{row['n']:,} card reads of {row['cards']:,} cards, {row['lo']:%Y-%m-%d %H:%M} .. "
                f"{row['hi']:%Y-%m-%d %H:%M} UTC ({(row['hi'] - row['lo']).total_seconds() / 86400:.1f} days), "
                f"{size} with key and indexes; backend {await current_backend(conn)}")
    finally:
        await conn.close()


async def _token(dsn: str, mine: str, now: datetime) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        _, token = await create_token(conn, name="bench-personnel", role="mine", scope=[mine], pepper=PEPPER, now=now)
        return token
    finally:
        await conn.close()


class OffsetClock:
    """The wall clock moved by a fixed offset (the fill's end when the benchmark started)."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time(), tz=UTC) + self.offset


def app():  # type: ignore[no-untyped-def]
    """uvicorn factory: the API as `minewatch api` builds it, with the offset clock."""
    from api.app import create_app
    from minewatch.settings import Settings
    offset = timedelta(seconds=float(os.environ["MINEWATCH_BENCH_CLOCK_OFFSET_S"]))
    return create_app(Settings(database_url=os.environ["MINEWATCH_BENCH_DSN"]), clock=OffsetClock(offset))


def serve(dsn: str, port: int, offset_s: float) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MINEWATCH_TOKEN_PEPPER": PEPPER, "PYTHONUNBUFFERED": "1", "MINEWATCH_BENCH_DSN": dsn,
           "MINEWATCH_BENCH_CLOCK_OFFSET_S": str(offset_s)}
    code = ("import uvicorn; uvicorn.run('bench.api.personnel:app', factory=True, host='127.0.0.1', "
            f"port={port}, log_level='warning', access_log=False)")
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (its /proc stat), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def server_cpu(dsn: str, api_pid: int) -> float:
    """CPU seconds so far of the API process and of its PostgreSQL backends (application_name
    minewatch-api): a request's cost that other load on the machine hardly changes."""
    conn = await asyncpg.connect(dsn)
    try:
        pids = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'minewatch-api'")]
    finally:
        await conn.close()
    return _cpu_s(api_pid) + sum(_cpu_s(p) for p in pids)


async def load(url: str, path: str, token: str, seconds: float, connections: int, dsn: str = "",
               api_pid: int = 0) -> tuple[float, ...]:
    """`connections` clients, each one keep-alive connection, requests back to back: latency ms
    (p50, p95, p99), requests/s, errors, requests, and the server's CPU ms per request."""
    cpu0 = await server_cpu(dsn, api_pid) if api_pid else 0.0
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client_loop() -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as client:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await client.get(path)
                lat.append((time.perf_counter() - t) * 1000)
                errors += r.status_code != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    cpu = (await server_cpu(dsn, api_pid) - cpu0) * 1000 / len(lat) if api_pid else float("nan")
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return q[49], q[94], q[98], len(lat) / elapsed, errors, len(lat), cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--crews", default="250,1500,250",
                   help="workers on the night, day and evening shifts (the day shift is on at the fill's end)")
    p.add_argument("--duration", type=float, default=20, help="seconds per scenario per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--connections", type=int, default=1, help="concurrent clients (one connection each)")
    p.add_argument("--dsn", default=None, help="server DSN to create the bench database on (default: private)")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "minewatch-bench-personnel")
    p.add_argument("--db", default=DB)
    p.add_argument("--refill", action="store_true")
    p.add_argument("--fill-only", action="store_true")
    p.add_argument("--no-kept", action="store_true",
                   help="answer from card_reads alone (no presence rows: the API before migration 0093)")
    p.add_argument("--pending-s", type=float, default=2.0,
                   help="the last seconds of reads left in an unclaimed card-read window (the rules worker's lag; "
                        "those cards are recomputed from card_reads on every request)")
    p.add_argument("--explain", action="store_true",
                   help="print EXPLAIN ANALYZE of the endpoint's statements (straight on the database) and stop")
    args = p.parse_args(argv)
    pg = None
    server_dsn = args.dsn
    if server_dsn is None:
        pg = EmbeddedPostgres(args.data_dir / "pg", fsync=False)
        server_dsn = pg.start()
    api = None
    try:
        sizes = [int(x) for x in args.crews.split(",")]
        if len(sizes) != 3:
            p.error("--crews takes three numbers: night,day,evening")
        crews = (sizes[0], sizes[1], sizes[2])
        dsn, record = asyncio.run(prepare(server_dsn, days=args.days, crews=crews, refill=args.refill, db=args.db))
        applied = asyncio.run(_migrate(dsn))
        if applied:
            print(f"applied migrations: {', '.join(applied)}")
        print(asyncio.run(_presence(dsn, str(record["mine"]), datetime.fromisoformat(str(record["end"])),
                                    kept=not args.no_kept, pending_s=args.pending_s)))
        print("stored:", asyncio.run(describe(dsn)))
        if args.fill_only:
            return 0
        end = datetime.fromisoformat(str(record["end"]))
        offset = end - datetime.now(UTC)
        mine = str(record["mine"])
        if args.explain:
            asyncio.run(explain(dsn, mine, end))
            return 0
        token = asyncio.run(_token(dsn, mine, end))
        port = free_port()
        api = serve(dsn, port, offset.total_seconds())
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        path = f"/v1/mines/{mine}/personnel"
        first = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        first.raise_for_status()
        body = first.json()
        print(f"as of {body['as_of']} (API clock = fill end + time since start): underground {body['underground']:,}, "
              f"{len(body['items'])} listed on the first page, areas "
              f"{', '.join(str(a['area']) + '=' + str(a['count']) for a in body['areas'] if a['count'])}, "
              f"leaders {body['leaders']}, response {len(first.content):,} bytes")
        scenarios = [("ceiling: GET /healthz", "/healthz"), (f"GET {path}", path)]
        for _, template in scenarios:  # warm caches and the pool's prepared statements
            asyncio.run(load(url, template, token, 3, args.connections))
        print(f"\nload: {args.connections} client(s), one keep-alive connection each, {args.duration:.0f} s per "
              f"scenario; uvicorn (1 process) and PostgreSQL share {os.cpu_count()} cores with the client")
        print("cpu ms/req: CPU time of the API process and its PostgreSQL backends per request (other load on "
              "the machine hardly changes it); load: the 1-minute load average after the run")
        print(f"{'scenario':<48} {'run':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'n':>6} "
              f"{'errors':>7} {'cpu ms/req':>11} {'load':>5}")
        results: dict[str, list[tuple[float, ...]]] = {}
        for run in range(1, args.runs + 1):
            for label, template in scenarios:
                res = asyncio.run(load(url, template, token, args.duration, args.connections, dsn, api.pid))
                results.setdefault(label, []).append(res)
                print(f"{label:<48} {run:>4} {res[0]:>8.2f} {res[1]:>8.2f} {res[2]:>8.2f} {res[3]:>8.0f} "
                      f"{int(res[5]):>6} {int(res[4]):>7} {res[6]:>11.2f} {os.getloadavg()[0]:>5.1f}", flush=True)
        print(f"\nmedians of {args.runs} run(s); p95 as a multiple of the same run's ceiling p95:")
        ceiling = results[scenarios[0][0]]
        for label, _ in scenarios:
            runs = results[label]
            med = [statistics.median(r[i] for r in runs) for i in range(7)]
            ratio = statistics.median(r[1] / c[1] for r, c in zip(runs, ceiling, strict=True))
            print(f"{label:<48} {'med':>4} {med[0]:>8.2f} {med[1]:>8.2f} {med[2]:>8.2f} {med[3]:>8.0f} "
                  f"{int(med[5]):>6} {int(sum(r[4] for r in runs)):>7} {med[6]:>11.2f}   p95 = {ratio:.1f} x ceiling")
        p95 = statistics.median(r[1] for r in results[scenarios[1][0]])
        print(f"\ntarget p95 <= 20 ms with {body['underground']:,} underground: {'met' if p95 <= 20 else 'NOT met'} "
              f"(median p95 {p95:.2f} ms)")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=10)
        if pg is not None:
            pg.stop()
    return 0


async def explain(dsn: str, mine: str, now: datetime) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the endpoint's main statements with the bench's parameters
    (the first page: 100 cards), each after two warm-up executions; timings of 20 executions."""
    from api.personnel import service
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET jit = off")  # as the API's connections (api/app.py)
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", mine)
        stations = {r["id"]: r for r in await conn.fetch(service._STATIONS, mine_id, [])}
        shaft = [i for i, st in stations.items() if st["in_shaft"]]
        latest = (service._LATEST, (mine_id, now, now - service.RECENT,
                                    [i for i, st in stations.items() if st["shaft"]]))
        page = [r for r in await conn.fetch(latest[0], *latest[1]) if not stations[r["station_id"]]["shaft"]][:100]
        since = (presence_store.COMPUTE, ([r["card_id"] for r in page], shaft, now))
        pending = await conn.fetch(service._PENDING, mine_id, now)
        page_ids = [r["card_id"] for r in page]
        kept = [("layout current", (presence_store.BUILT_IS_CURRENT, (mine_id,))),
                ("kept counts", (service._KEPT_COUNTS, (mine_id, []))),
                ("kept page", (service._KEPT_PAGE, (mine_id, [], [i for i, st in stations.items() if st["shaft"]], None, 101))),
                ("pending reads", (service._PENDING, (mine_id, now))),
                ("pending cards' rows", (service._CARDS, (sorted({r["card_id"] for r in pending}),))),
                ("page details", (service._CARDS, (page_ids,)))]
        for label, (sql, params) in (*kept, ("stations", (service._STATIONS, (mine_id, []))), ("latest", latest),
                                     ("areas", (service._AREAS, (mine_id,))), ("since (page)", since),
                                     ("overtime", (service._OVERTIME, (mine_id, now)))):
            for _ in range(2):
                await conn.fetch(sql, *params)
            times = []
            for _ in range(20):
                t = time.perf_counter()
                await conn.fetch(sql, *params)
                times.append((time.perf_counter() - t) * 1000)
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS off) {sql}", *params)
            print(f"\n-- {label}: median {statistics.median(times):.2f} ms of 20 (one connection, no HTTP)")
            print("\n".join(r[0] for r in plan))
    finally:
        await conn.close()


async def _presence(dsn: str, mine: str, end: datetime, *, kept: bool, pending_s: float) -> str:
    """The presence rows as the rules worker keeps them (rules.presence_store): built whole, as its
    first claim of the mine does, with the last `pending_s` of reads in a window not yet claimed.
    ``kept`` False: no rows, the API answers from card_reads alone."""
    conn = await asyncpg.connect(dsn)
    try:
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", mine)
        await conn.execute("DELETE FROM dirty_windows WHERE mine_id = $1", mine_id)
        await conn.execute("DELETE FROM presence_built WHERE mine_id = $1", mine_id)
        if not kept:
            await conn.execute("DELETE FROM card_presence WHERE mine_id = $1", mine_id)
            return "presence rows: none (--no-kept): the endpoint reads card_reads alone"
        t = time.perf_counter()
        async with conn.transaction():
            rows = await presence_store.rebuild(conn, mine_id)
        built = time.perf_counter() - t
        behind = 0
        if pending_s > 0:
            lo = end - timedelta(seconds=pending_s)
            await conn.execute("INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) "
                               "VALUES ($1, 'card_reads', $2, $3, 1)", mine_id, lo, end)
            behind = await conn.fetchval("SELECT count(DISTINCT card_id) FROM card_reads WHERE mine_id = $1 "
                                         "AND ts >= $2 AND ts <= $3", mine_id, lo, end)
        await conn.execute("ANALYZE card_presence")
        return (f"presence rows: {rows:,} built whole in {built:.1f} s (the rules worker's first claim of a mine); "
                f"an unclaimed window holds the last {pending_s:g} s of reads: {behind} cards recomputed per request")
    finally:
        await conn.close()


async def _migrate(dsn: str) -> list[str]:
    """Pending migrations (e.g. a new index) on a kept fill, then ANALYZE."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
        if applied:
            await conn.execute("ANALYZE card_reads")
        return list(applied)
    finally:
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
