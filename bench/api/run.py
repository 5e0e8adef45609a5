"""API latency benchmark: p50 / p95 with 20 concurrent clients against a real uvicorn server.

Run: ``python -m bench.api.run [--mines 50] [--days 30] [--duration 20] [--connections 20]``
(add ``--dsn postgresql://...`` to use an existing server instead of a private one, e.g. a
TimescaleDB server for its path, and ``--db NAME`` to keep fills of other sizes apart).

Fills (once; kept in --data-dir between runs) M mines x 40 points at 30 s for D days by
direct binary COPY (bench/api/fill.py; not through MQTT), plus 3 methane events a day per
mine. Then, with wrk (falls back to an httpx loop when wrk is missing):
  (a) GET /v1/mines/{random mine}/exceedances?since=end-30d&until=end   (one mine's 30-day history)
  (b) GET /v1/mines/{m}/points/{random point}/readings?step=1h over 30 days, limit=1000 (720 buckets)
  ceiling: GET /healthz, the same server doing no database work.
Each scenario --runs times (default 3), interleaved; medians at the end, with each p95 as a
multiple of the ceiling's p95 in the same run. Before measuring, pending migrations are applied
and the rollup refresher catches up (as `minewatch rollup` does after a deploy).
And, straight on the database (one connection, no HTTP), the query behind (b): the hourly parts
(rollup + raw tail) and, for comparison, raw aggregation with the covering index (index-only
scan) and with index-only scans disabled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from api.auth.tokens import create_token
from bench.api.fill import POINTS_PER_MINE, extras, fill, mine_code
from launcher.embedded import EmbeddedPostgres, free_port
from minewatch.db import ident
from minewatch.db.migrate import migrate
from minewatch.db.rollup import refresh_until_idle
from minewatch.db.timeseries import current_backend, refresh_aggregates

PEPPER = "bench-pepper"
DB = "minewatch_bench_api"

_LUA = """
local mines = {mines}
local points = {points}
math.randomseed(os.time())
request = function()
  local m = math.random(0, mines - 1)
  local code = string.format("1499%08d", m)
  local path = "{template}"
  path = path:gsub("MINE", code)
  path = path:gsub("POINT", string.format("%s_01MN0001_T%04d", code, math.random(1, points)))
  return wrk.format("GET", path)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", latency:percentile(50), latency:percentile(95),
    latency:percentile(99), summary.requests, summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.timeout, summary.duration))
end
"""


async def _prepare(server_dsn: str, mines: int, days: int, refill: bool, db: str = DB) -> tuple[str, datetime]:
    admin = await asyncpg.connect(server_dsn)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db)
        dsn = server_dsn.rsplit("/", 1)[0] + "/" + db
        want = {"mines": mines, "days": days}
        if exists and not refill:
            conn = await asyncpg.connect(dsn)
            try:
                got = await conn.fetchval("SELECT value FROM meta WHERE key = 'bench_api_fill'")
            finally:
                await conn.close()
            if got and {k: json.loads(got)[k] for k in want} == want:
                print(f"reusing the filled database ({got})")
                end = datetime.fromisoformat(json.loads(got)["end"])
                if await extras(dsn, mines=mines, end=end):
                    print("  added cards, card reads, orders, cases and dead letters")
                return dsn, end
        await admin.execute(f"DROP DATABASE IF EXISTS {ident(db)} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {ident(db)}")
    finally:
        await admin.close()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    print(f"filling {mines} mines x {POINTS_PER_MINE} points x {days} days at 30 s "
          f"= {mines * POINTS_PER_MINE * days * 2880 / 1e6:.1f} M readings (binary COPY)")
    res = await fill(dsn, mines=mines, days=days, end=end)
    print(f"  {res.readings / 1e6:.1f} M readings in {res.seconds:.0f} s ({res.rows_per_s / 1e3:.0f} k rows/s, "
          f"indexes maintained), {res.events} events")
    await extras(dsn, mines=mines, end=end)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO meta(key, value) VALUES ('bench_api_fill', $1) ON CONFLICT (key) "
                           "DO UPDATE SET value = EXCLUDED.value", json.dumps({**want, "end": end.isoformat()}))
    finally:
        await conn.close()
    return dsn, end


async def _rollup(dsn: str) -> None:
    """Apply pending migrations (the hourly rollup's among them) and let the refresher catch up,
    as `minewatch rollup` does in production after a deploy. On TimescaleDB, bring the database
    to the state its policies keep it in, so no background job runs during the measurement:
    the continuous aggregates refreshed, and chunks past the compression policy's 7 days
    compressed."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn)
        if applied:
            print(f"applied migrations: {', '.join(applied)}")
        if await current_backend(conn) == "timescale":
            await _timescale_steady_state(conn)
            return
        t = time.perf_counter()
        steps = await refresh_until_idle(conn, now=datetime.now(UTC))
        row = await conn.fetchrow("SELECT lo, hi, pg_size_pretty(pg_total_relation_size('readings_1h_rollup')) AS size, "
                                  "(SELECT count(*) FROM readings_1h_invalid) AS pending FROM readings_1h_state")
        assert row is not None
        hours = sum(x.forward_hours + x.backward_hours for x in steps)
        print(f"rollup refresher: {hours} hours materialised in {time.perf_counter() - t:.0f} s "
              f"({len(steps)} steps); rollup covers {row['lo']:%Y-%m-%d %H:%M} .. {row['hi']:%Y-%m-%d %H:%M}, "
              f"{row['size']}, {row['pending']} boxes pending")
        await conn.execute("VACUUM ANALYZE readings_1h_rollup")
    finally:
        await conn.close()


async def _timescale_steady_state(conn: asyncpg.Connection) -> None:
    t = time.perf_counter()
    await refresh_aggregates(conn)
    refreshed = time.perf_counter() - t
    t = time.perf_counter()
    after = await conn.fetchval("SELECT (config->>'compress_after')::interval FROM timescaledb_information.jobs "
                                "WHERE proc_name = 'policy_compression' AND hypertable_name = 'readings'")
    chunks = await conn.fetch("SELECT compress_chunk(c, if_not_compressed => true) "
                              "FROM show_chunks('readings', older_than => $1::interval) c", after)
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE is_compressed) AS compressed, count(*) AS chunks FROM "
        "timescaledb_information.chunks WHERE hypertable_name = 'readings'")
    size = await conn.fetchval("SELECT pg_size_pretty(hypertable_size('readings'))")
    assert row is not None
    print(f"timescaledb: continuous aggregates refreshed in {refreshed:.0f} s; {len(chunks)} chunks older than "
          f"{after} compressed in {time.perf_counter() - t:.0f} s ({row['compressed']} of {row['chunks']} "
          f"compressed); readings {size}")
    await conn.execute("ANALYZE readings")


async def _token(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        _, token = await create_token(conn, name="bench", role="admin", scope=[], pepper=PEPPER,
                                      now=datetime.now(UTC))
        return token
    finally:
        await conn.close()


async def _db_timings(dsn: str, mines: int, end: datetime, runs: int) -> dict[str, list[float]]:
    """The 30-day hourly query of (b), straight on the database, with and without index-only scans."""
    conn = await asyncpg.connect(dsn)
    out: dict[str, list[float]] = {}
    try:
        await conn.execute("SET jit = off")  # as the API's connections (api/app.py)
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM points WHERE code LIKE '1499%\\_01MN0001\\_%'")]
        raw = ("SELECT date_bin('1 hour'::interval, ts, timestamptz '2000-01-01') AS bucket, min(value), max(value), "
               "avg(value), (array_agg(value ORDER BY ts DESC))[1], count(*) FROM readings "
               "WHERE point_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1")
        parts = "SELECT * FROM readings_1h_parts($1, $2, $3)"
        queries = [("hourly parts (rollup + raw tail)", "on", parts),
                   ("raw, index-only (covering index)", "on", raw),
                   ("raw, heap fetches (no index-only)", "off", raw)]
        if await current_backend(conn) == "timescale":
            # what the API does not read there (see docs/timescale.md): the continuous aggregate
            queries.append(("readings_1h continuous aggregate", "on",
                            "SELECT * FROM readings_1h WHERE point_id = $1 AND bucket >= $2 AND bucket < $3"))
        for label, setting, sql in queries:
            await conn.execute(f"SET enable_indexonlyscan = {setting}")
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                await conn.fetch(sql, random.choice(ids), end - timedelta(days=30), end)
                times.append((time.perf_counter() - t) * 1000)
            out[label] = times
    finally:
        await conn.close()
    return out


def _wrk(url: str, template: str, token: str, mines: int, seconds: int, connections: int) -> tuple[float, ...]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(_LUA.replace("{mines}", str(mines)).replace("{points}", "32").replace("{template}", template))
        script = f.name
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", script,
                              "-H", f"Authorization: Bearer {token}", url], capture_output=True, text=True,
                             check=True).stdout
    finally:
        os.unlink(script)
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    p50, p95, p99, n, errors, duration_us = (int(v) for v in line.split()[1:])
    return p50 / 1000, p95 / 1000, p99 / 1000, n / (duration_us / 1e6), errors


async def _httpx_load(url: str, template: str, token: str, mines: int, seconds: int,
                      connections: int) -> tuple[float, ...]:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            code = mine_code(random.randrange(mines))
            path = template.replace("MINE", code).replace(
                "POINT", f"{code}_01MN0001_T{random.randint(1, 32):04d}")
            t = time.perf_counter()
            r = await client.get(path)
            lat.append((time.perf_counter() - t) * 1000)
            errors += r.status_code >= 400

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    q = statistics.quantiles(lat, n=100)
    return q[49], q[94], q[98], len(lat) / seconds, errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mines", type=int, default=50)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--duration", type=int, default=20, help="seconds per scenario")
    p.add_argument("--connections", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--dsn", default=None, help="server DSN to create the bench database on (default: private)")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "minewatch-bench-api")
    p.add_argument("--refill", action="store_true", help="drop and fill again even if the data are there")
    p.add_argument("--fill-only", action="store_true", help="fill (or check) the database and stop")
    p.add_argument("--runs", type=int, default=3, help="measure every scenario this many times; medians last")
    p.add_argument("--db", default=DB, help="name of the bench database on the server (default: %(default)s), e.g. "
                                            "to keep fills of other sizes side by side")
    args = p.parse_args(argv)
    if args.days < 30:
        p.error("the scenarios read 30 days; --days must be >= 30")
    pg = None
    server_dsn = args.dsn
    if server_dsn is None:
        pg = EmbeddedPostgres(args.data_dir / "pg", fsync=False)
        server_dsn = pg.start()
    api = None
    try:
        dsn, end = asyncio.run(_prepare(server_dsn, args.mines, args.days, args.refill, args.db))
        if args.fill_only:
            return 0
        asyncio.run(_rollup(dsn))
        token = asyncio.run(_token(dsn))
        port = free_port()
        env = {**os.environ, "MINEWATCH_TOKEN_PEPPER": PEPPER, "PYTHONUNBUFFERED": "1"}
        api = subprocess.Popen([sys.executable, "-m", "bench.api.serve", dsn, str(port), str(args.workers)],
                               env=env)
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        since, until = (end - timedelta(days=30)).isoformat(), end.isoformat()
        q = f"since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}"
        scenarios = [
            ("ceiling: GET /healthz", "/healthz"),
            ("(a) 30-day exceedance history of one mine", f"/v1/mines/MINE/exceedances?{q}"),
            ("(b) 30-day 1h series of one point (720 buckets)",
             f"/v1/mines/MINE/points/POINT/readings?step=1h&limit=1000&{q}"),
        ]
        use_wrk = shutil.which("wrk") is not None
        print(f"\nload: {'wrk -t2' if use_wrk else 'httpx loop'}, {args.connections} connections, "
              f"{args.duration} s each; server: uvicorn ({args.workers} process(es), h11, asyncio loop), "
              f"{os.cpu_count()} cores shared with PostgreSQL and the load generator")
        # Warm the caches (and the server's prepared statements) before measuring.
        for _, template in scenarios:
            if use_wrk:
                _wrk(url, template, token, args.mines, 3, args.connections)
        print(f"{'scenario':<50} {'run':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'errors':>7}")
        results: dict[str, list[tuple[float, ...]]] = {}
        for run in range(1, args.runs + 1):
            for label, template in scenarios:
                res = (_wrk(url, template, token, args.mines, args.duration, args.connections) if use_wrk else
                       asyncio.run(_httpx_load(url, template, token, args.mines, args.duration, args.connections)))
                results.setdefault(label, []).append(res)
                print(f"{label:<50} {run:>4} {res[0]:>8.1f} {res[1]:>8.1f} {res[2]:>8.1f} {res[3]:>8.0f} "
                      f"{int(res[4]):>7}", flush=True)
        print(f"\nmedians of {args.runs} run(s); p95 as a multiple of the same run's ceiling p95:")
        ceiling = results[scenarios[0][0]]
        for label, _ in scenarios:
            runs = results[label]
            med = [statistics.median(r[i] for r in runs) for i in range(5)]
            ratio = statistics.median(r[1] / c[1] for r, c in zip(runs, ceiling, strict=True))
            print(f"{label:<50} {'med':>4} {med[0]:>8.1f} {med[1]:>8.1f} {med[2]:>8.1f} {med[3]:>8.0f} "
                  f"{int(sum(r[4] for r in runs)):>7}   p95 = {ratio:.1f} x ceiling")
        print("\nthe query of (b) on the database alone, one connection, 50 runs:")
        for label, times in asyncio.run(_db_timings(dsn, args.mines, end, 50)).items():
            qs = statistics.quantiles(times, n=100)
            print(f"  {label:<36} p50 {qs[49]:7.1f} ms   p95 {qs[94]:7.1f} ms")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=10)
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
