"""Console benchmark: every console page's server time with a province of 900 mines in the registry
(their cases, orders and findings) and, for the mine and case pages, the API benchmark's 50 mines
with 30 days of readings at 30 s (bench/api/fill.py).

    python -m bench.console.run [--dsn postgresql://...] [--duration 10] [--connections 20]

Each page is measured twice beside the same run's ceiling (GET /healthz, no database):
  sequential  one client, one request at a time: the server time of a page (loopback adds ~0.1 ms);
  loaded      --connections clients at once for --duration seconds: latency under load and req/s, and the
              server's own part of it (Server-Timing from bench/console/serve.py: the app's time from
              receiving a request to starting its answer, event-loop queueing included), apart from
              the load generator's CPU, which on a small shared machine is most of the ceiling.
The database is the API benchmark's (filled once, reused; the province is added once)."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx

from bench.api.run import _prepare, _rollup
from bench.console.province import PASSWORD, grow, users
from minewatch.embedded import EmbeddedPostgres, free_port


async def _targets(dsn: str) -> tuple[list[str], list[int]]:
    conn = await asyncpg.connect(dsn)
    try:
        mines = [r["code"] for r in await conn.fetch("SELECT code FROM mines WHERE code LIKE '1499%' ORDER BY code")]
        cases = [r["id"] for r in await conn.fetch("SELECT id FROM cases WHERE identity LIKE 'bench-console:%'")]
        return mines, cases
    finally:
        await conn.close()


def _cookies(url: str, user: str) -> httpx.Cookies:
    with httpx.Client(base_url=url) as c:
        page = c.get("/console/login")
        pre = re.search(r'name="pre" value="([^"]+)"', page.text)
        assert pre, page.text
        r = c.post("/console/login", data={"username": user, "password": PASSWORD, "pre": pre.group(1)})
        assert r.status_code == 303, r.text
        return httpx.Cookies({"mw_session": c.cookies["mw_session"]})


def _path(template: str, mines: list[str], cases: list[int]) -> str:
    return template.replace("MINE", random.choice(mines)).replace("CASE", str(random.choice(cases)))


async def _sequential(url: str, cookies: httpx.Cookies | None, template: str, mines: list[str], cases: list[int],
                      n: int) -> tuple[float, float, int]:
    lat, errors = [], 0
    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=30) as c:
        for i in range(n + 5):
            t = time.perf_counter()
            r = await c.get(_path(template, mines, cases))
            if i >= 5:  # the first few warm the connection and the server's statement cache
                lat.append((time.perf_counter() - t) * 1000)
                errors += r.status_code != 200
    q = statistics.quantiles(lat, n=100)
    return q[49], q[94], errors


def _server_ms(r: httpx.Response) -> float:
    timing = r.headers.get("server-timing", "")
    return float(timing.split("dur=", 1)[1]) if "dur=" in timing else float("nan")


async def _loaded(url: str, cookies: httpx.Cookies | None, template: str, mines: list[str], cases: list[int],
                  seconds: float, connections: int) -> tuple[float, float, float, int, float]:
    lat: list[float] = []
    server: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t = time.perf_counter()
            r = await c.get(_path(template, mines, cases))
            lat.append((time.perf_counter() - t) * 1000)
            server.append(_server_ms(r))
            errors += r.status_code != 200

    async with httpx.AsyncClient(base_url=url, cookies=cookies, timeout=60,
                                 limits=httpx.Limits(max_connections=connections)) as c:
        await asyncio.gather(*(worker(c) for _ in range(connections)))
    q = statistics.quantiles(lat, n=100)
    return q[49], q[94], len(lat) / seconds, errors, statistics.quantiles(server, n=100)[94]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=None, help="server DSN holding the bench database (default: private)")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "minewatch-bench-api")
    p.add_argument("--province", type=int, default=900, help="mines in the province")
    p.add_argument("--requests", type=int, default=100, help="sequential requests per page")
    p.add_argument("--duration", type=float, default=10, help="seconds of load per page")
    p.add_argument("--connections", type=int, default=20, help="concurrent clients under load")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (the deployment runs 2)")
    p.add_argument("--no-cache", action="store_true",
                   help="serve without the console's page cache (MINEWATCH_CONSOLE_CACHE_TTL=0): every request renders")
    args = p.parse_args(argv)
    pg = None
    server_dsn = args.dsn
    if server_dsn is None:
        pg = EmbeddedPostgres(args.data_dir / "pg", fsync=False)
        server_dsn = pg.start()
    api = None
    try:
        dsn, end = asyncio.run(_prepare(server_dsn, 50, 30, False))
        asyncio.run(_rollup(dsn))  # also applies the console's migrations
        added = asyncio.run(grow(dsn, total=args.province, end=end))
        if added:
            print(f"added {added} mines to the province, with cases, findings, orders and offline findings")
        asyncio.run(users(dsn, now=end))
        mines, cases = asyncio.run(_targets(dsn))
        port = free_port()
        env = {**os.environ, "MINEWATCH_TOKEN_PEPPER": "bench-console-pepper-0123456789abcdef0123", "PYTHONUNBUFFERED": "1"}
        if args.no_cache:
            env["MINEWATCH_CONSOLE_CACHE_TTL"] = "0"
        api = subprocess.Popen([sys.executable, "-m", "bench.console.serve", dsn, str(port), end.isoformat(),
                                str(args.workers)], env=env)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        jars = {role: _cookies(url, f"bench-{role}") for role in ("province", "county", "mine")}
        scenarios: list[tuple[str, str | None, str]] = [
            ("ceiling: GET /healthz", None, "/healthz"),
            ("sign-in page", None, "/console/login"),
            (f"overview, province ({args.province} mines)", "province", "/console/"),
            (f"overview, province, all {args.province} rows", "province", "/console/?all=1"),
            ("overview, county (30 mines)", "county", "/console/"),
            ("case board, province", "province", "/console/cases"),
            ("mine page (40 points live, personnel, order)", "province", "/console/mines/MINE"),
            ("mine page live fragment (every 5 s)", "province", "/console/mines/MINE/live"),
            ("case page (findings, evidence chart)", "province", "/console/cases/CASE"),
            ("exceedance history (200 newest of 2 years)", "province", "/console/mines/MINE/exceedances"),
            ("exceedance CSV export (30 days)", "province",
             f"/console/mines/MINE/exceedances?since={(end - timedelta(days=30)).date().isoformat()}&format=csv"),
            ("mine page as the mine's own user", "mine", "/console/mines/149900000001"),
        ]
        cache = "off" if args.no_cache else f"{os.environ.get('MINEWATCH_CONSOLE_CACHE_TTL', '2')} s"
        print(f"\nserver: uvicorn, {args.workers} process(es), page cache {cache}; {os.cpu_count()} cores shared "
              f"with PostgreSQL and the clients (load average {os.getloadavg()[0]:.1f}); "
              f"{len(mines)} mines with readings, now = {end.isoformat()}")
        print(f"{'page':<48} {'seq p50':>8} {'seq p95':>8} | {'load p50':>8} {'load p95':>9} {'req/s':>7} "
              f"{'x ceil':>7} {'srv p95':>8} {'errors':>6}")
        ceiling_p95 = None
        for label, role, template in scenarios:
            jar = jars[role] if role else None
            s50, s95, e1 = asyncio.run(_sequential(url, jar, template, mines, cases, args.requests))
            l50, l95, rps, e2, srv95 = asyncio.run(_loaded(url, jar, template, mines, cases, args.duration, args.connections))
            if ceiling_p95 is None:
                ceiling_p95 = l95
            print(f"{label:<48} {s50:>8.1f} {s95:>8.1f} | {l50:>8.1f} {l95:>9.1f} {rps:>7.0f} "
                  f"{l95 / ceiling_p95:>7.1f} {srv95:>8.1f} {e1 + e2:>6}", flush=True)
        print(f"\nseq: one client, {args.requests} requests (ms); load: {args.connections} clients for "
              f"{args.duration:g} s (ms, req/s); x ceil: load p95 over the same run's /healthz load p95; "
              f"srv p95: the server's own time under load (Server-Timing); load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=10)
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
