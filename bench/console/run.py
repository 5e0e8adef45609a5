"""Console benchmark: every console page's server time with a province of 900 mines in the registry
(their cases, orders and findings) and, for the mine and case pages, the API benchmark's 50 mines
with 30 days of readings at 30 s (bench/api/fill.py).

    python -m bench.console.run [--dsn postgresql://...] [--duration 10] [--connections 20] [--workers 1]
                                [--runs 3] [--nice -10] [--settle S] [--no-cache] [--only LABEL]

The server (bench/console/serve.py: the real app, uvicorn, a clock frozen at the end of the readings)
runs as its own process; each page is measured twice beside the same run's ceiling (GET /healthz, no
database), signed in as a province, county or mine user:
  seq   one client, one request at a time (loopback adds ~0.1 ms);
  load  --connections clients at once, each sending its next request as soon as the answer is read
        (no think time), for --duration seconds: the client's p50 / p95 (request written -> whole body
        read), req/s, and **srv** p50 / p95, the server's own time from `Server-Timing` (the app's time
        from receiving a request to starting its answer, waiting for the event loop behind the other
        clients' requests included; not the time a request waits in the socket before the loop reads
        it, nor the body's send). srv p95 is the figure of the target (p95 <= 200 ms of server time).
The clients are bench/console/load.py (keep-alive HTTP/1.1 over asyncio streams, ~0.1 ms of CPU per
request; httpx took ~1 ms, a fifth of a core on a 2-core machine that the server then did not get).
`cpu` says where the cores went during each load, in cores: the server's process(es), the PostgreSQL
backends of the bench database, the client, and everything else on the machine ("other": work that
is not the benchmark's, which on a shared machine sits in every latency). --runs N measures every page
N times and prints each run and the medians; the machine's load average is printed, since other work
on the same cores shows in every figure (the ceiling's own p95 says how much). --settle S waits,
before each load, up to S seconds for the machine to be otherwise idle (a shared machine's test suites
come and go); it only chooses when a load starts, and `other` still reports whatever ran during it.
--nice N (e.g. -10, as root) runs the
benchmark's own processes (this client, the server and its workers, the PostgreSQL backends of the
bench database; not the rest of the PostgreSQL server) ahead of other work, as a dedicated server
would run them: other work still runs (on whatever the benchmark leaves idle, and `other` says how
much), it just no longer takes the cores from under a request. The run's header says which was used.
The database is the API benchmark's (filled once, reused; the province is added once)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from bench.api.run import _prepare, _rollup
from bench.console.load import Connection, busy_seconds, cpu_seconds, tree, used
from bench.console.province import PASSWORD, grow, users
from launcher.embedded import EmbeddedPostgres, free_port


async def _targets(dsn: str) -> tuple[list[str], list[int]]:
    conn = await asyncpg.connect(dsn)
    try:
        mines = [r["code"] for r in await conn.fetch("SELECT code FROM mines WHERE code LIKE '1499%' ORDER BY code")]
        cases = [r["id"] for r in await conn.fetch("SELECT id FROM cases WHERE identity LIKE 'bench-console:%'")]
        return mines, cases
    finally:
        await conn.close()


def _cookie(url: str, user: str) -> str:
    """Sign in through the form (httpx: setup, not measured) and return the session cookie's value."""
    with httpx.Client(base_url=url) as c:
        page = c.get("/console/login")
        pre = re.search(r'name="pre" value="([^"]+)"', page.text)
        assert pre, page.text
        r = c.post("/console/login", data={"username": user, "password": PASSWORD, "pre": pre.group(1)})
        assert r.status_code == 303, r.text
        return str(c.cookies["mw_session"])


def _path(template: str, mines: list[str], cases: list[int]) -> str:
    return template.replace("MINE", random.choice(mines)).replace("CASE", str(random.choice(cases)))


@dataclass(frozen=True, slots=True)
class Target:
    host: str
    port: int
    cookie: str | None
    template: str
    mines: list[str]
    cases: list[int]


async def _sequential(t: Target, n: int) -> tuple[float, float, int]:
    lat, errors = [], 0
    conn = Connection(t.host, t.port, t.cookie)
    try:
        for i in range(n + 5):
            start = time.perf_counter()
            r = await conn.get(_path(t.template, t.mines, t.cases))
            if i >= 5:  # the first few warm the connection and the server's statement cache
                lat.append((time.perf_counter() - start) * 1000)
                errors += r.status != 200
    finally:
        await conn.close()
    q = statistics.quantiles(lat, n=100)
    return q[49], q[94], errors


@dataclass(frozen=True, slots=True)
class Loaded:
    p50: float
    p95: float
    rps: float
    errors: int
    srv50: float
    srv95: float
    kb: float  # mean answer size


async def _loaded(t: Target, seconds: float, connections: int) -> Loaded:
    lat: list[float] = []
    server: list[float] = []
    sizes: list[int] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        conn = Connection(t.host, t.port, t.cookie)
        try:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                r = await conn.get(_path(t.template, t.mines, t.cases))
                lat.append((time.perf_counter() - start) * 1000)
                server.append(r.server_ms)
                sizes.append(r.size)
                errors += r.status != 200
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    q = statistics.quantiles(lat, n=100)
    s = statistics.quantiles(server, n=100)
    return Loaded(q[49], q[94], len(lat) / seconds, errors, s[49], s[94], statistics.fmean(sizes) / 1024)


def _scenarios(province: int, end: datetime) -> list[tuple[str, str | None, str]]:
    """(label, role signed in or None, path; MINE / CASE drawn at random per request)."""
    since = (end - timedelta(days=30)).date().isoformat()
    return [
        ("ceiling: GET /healthz", None, "/healthz"),
        ("sign-in page", None, "/console/login"),
        (f"overview, province ({province} mines)", "province", "/console/"),
        (f"overview, province, all {province} rows", "province", "/console/?all=1"),
        ("overview, county (30 mines)", "county", "/console/"),
        ("case board, province", "province", "/console/cases"),
        ("mine page (40 points live, personnel, order)", "province", "/console/mines/MINE"),
        ("mine page live fragment (every 5 s)", "province", "/console/mines/MINE/live"),
        ("case page (findings, evidence chart)", "province", "/console/cases/CASE"),
        ("exceedance history (200 newest of 2 years)", "province", "/console/mines/MINE/exceedances"),
        ("exceedance CSV export (30 days)", "province", f"/console/mines/MINE/exceedances?since={since}&format=csv"),
        ("mine page as the mine's own user", "mine", "/console/mines/149900000001"),
    ]


@dataclass(frozen=True, slots=True)
class Row:
    seq50: float
    seq95: float
    loaded: Loaded
    cores: tuple[float, float, float, float]  # server, its PostgreSQL backends, client, everything else
    errors: int


def _median(rows: list[Row]) -> Row:
    def m(get: Callable[[Row], float]) -> float:
        return statistics.median(get(r) for r in rows)
    loaded = Loaded(*(statistics.median(getattr(r.loaded, f) for r in rows) for f in Loaded.__slots__))
    cores = (m(lambda r: r.cores[0]), m(lambda r: r.cores[1]), m(lambda r: r.cores[2]), m(lambda r: r.cores[3]))
    return Row(m(lambda r: r.seq50), m(lambda r: r.seq95), loaded, cores, sum(r.errors for r in rows))


def _header() -> None:
    print(f"{'page':<46} {'seq p50':>7} {'seq p95':>7} | {'load p50':>8} {'load p95':>8} {'x ceil':>6} "
          f"{'srv p50':>7} {'srv p95':>7} {'req/s':>6} {'KB':>6} | {'cpu srv/pg/cli/other':>20} {'err':>4}")


def _print(label: str, r: Row, ceiling: float) -> None:
    x = r.loaded
    cpu = "/".join(f"{c:.2f}" for c in r.cores)
    print(f"{label[:46]:<46} {r.seq50:>7.1f} {r.seq95:>7.1f} | {x.p50:>8.1f} {x.p95:>8.1f} {x.p95 / ceiling:>6.1f} "
          f"{x.srv50:>7.1f} {x.srv95:>7.1f} {x.rps:>6.0f} {x.kb:>6.1f} | {cpu:>20} {r.errors:>4}", flush=True)


def _renice(pids: list[int], nice: int, *, group: bool = False) -> None:
    """Run `pids` at `nice`; with `group`, their autogroup too: where the kernel groups processes by
    session and schedules the groups fairly against each other, a process's nice counts only within its
    group (PostgreSQL's backends share the server's group: only their own nice is set)."""
    for pid in pids:
        if group:
            with contextlib.suppress(OSError):  # no autogroups on this kernel
                Path(f"/proc/{pid}/autogroup").write_text(str(nice))
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.setpriority(os.PRIO_PROCESS, pid, nice)


def _settle(limit: float, below: float = 0.3) -> float:
    """Wait until the whole machine used less than `below` cores for a second, at most `limit` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        before = busy_seconds()
        time.sleep(1)
        if busy_seconds() - before < below:
            break
    return time.monotonic() - start


async def _backends(dsn: str) -> list[int]:
    """The PostgreSQL backends serving the bench database (the server's pool): not other work on the server."""
    conn = await asyncpg.connect(dsn)
    try:
        return [r["pid"] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    finally:
        await conn.close()


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
    p.add_argument("--settle", type=float, default=0,
                   help="before each load, wait up to this many seconds until the machine is idle (other work, "
                        "on a shared machine, below 0.3 cores for a second); what else ran during each load "
                        "is in the cpu column's `other` all the same")
    p.add_argument("--nice", type=int, default=0,
                   help="run the benchmark's own processes (this client, the server, the bench database's "
                        "PostgreSQL backends) at this nice value, e.g. -10 (root): ahead of other work on a shared "
                        "machine, as on the dedicated server a control room runs; `other` shows what ran all the same")
    p.add_argument("--runs", type=int, default=1, help="measure every page this many times; prints each run and the medians")
    p.add_argument("--only", action="append", help="only the pages whose label contains this (repeatable)")
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
        if args.nice:
            _renice([os.getpid()], args.nice, group=True)  # this client; the server started below inherits it
        api = subprocess.Popen([sys.executable, "-m", "bench.console.serve", dsn, str(port), end.isoformat(),
                                str(args.workers)], env=env)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        cookies = {role: _cookie(url, f"bench-{role}") for role in ("province", "county", "mine")}
        scenarios = [s for s in _scenarios(args.province, end) if not args.only or any(o in s[0] for o in args.only)]
        if not scenarios[0][0].startswith("ceiling"):
            scenarios.insert(0, _scenarios(args.province, end)[0])  # every run has its ceiling beside it
        cache = "off" if args.no_cache else f"{os.environ.get('MINEWATCH_CONSOLE_CACHE_TTL', '2')} s"
        print(f"\nserver: uvicorn, {args.workers} process(es), page cache {cache}; nice {args.nice}; "
              f"{os.cpu_count()} cores shared with PostgreSQL and the clients (load average {os.getloadavg()[0]:.1f}); "
              f"{len(mines)} mines with readings, now = {end.isoformat()}")
        runs: list[dict[str, Row]] = []
        for run in range(args.runs):
            print(f"\nrun {run + 1} of {args.runs} (load average {os.getloadavg()[0]:.1f})")
            _header()
            rows: dict[str, Row] = {}
            waited = 0.0
            for label, role, template in scenarios:
                t = Target("127.0.0.1", port, cookies[role] if role else None, template, mines, cases)
                s50, s95, e1 = asyncio.run(_sequential(t, args.requests))
                waited += _settle(args.settle)
                servers, pgs = tree(api.pid), asyncio.run(_backends(dsn))
                if args.nice:
                    _renice(pgs, args.nice)  # the pool's backends (the server and this client inherit it)
                srv0, pg0, cli0, busy0 = cpu_seconds(servers), cpu_seconds(pgs), time.process_time(), busy_seconds()
                loaded = asyncio.run(_loaded(t, args.duration, args.connections))
                pgs = sorted(set(pgs) | set(asyncio.run(_backends(dsn))))  # and those the pool opened meanwhile
                srv = used(srv0, cpu_seconds(servers)) / args.duration
                pgc = used(pg0, cpu_seconds(pgs)) / args.duration
                cli = (time.process_time() - cli0) / args.duration
                busy = (busy_seconds() - busy0) / args.duration
                cores = (srv, pgc, cli, max(0.0, busy - srv - pgc - cli))
                rows[label] = Row(s50, s95, loaded, cores, e1 + loaded.errors)
                _print(label, rows[label], rows[scenarios[0][0]].loaded.p95)
            runs.append(rows)
            if args.settle:
                print(f"(waited {waited:.0f} s in all for the machine to settle before the loads)")
        if args.runs > 1:
            print(f"\nmedian of {args.runs} runs (each column's median; x ceil from the median ceiling)")
            _header()
            for label, _, _ in scenarios:
                _print(label, _median([r[label] for r in runs]), _median([r[scenarios[0][0]] for r in runs]).loaded.p95)
        print(f"\nseq: one client, {args.requests} requests (ms); load: {args.connections} clients for "
              f"{args.duration:g} s (ms, req/s); x ceil: load p95 over the same run's /healthz load p95; "
              f"srv: the server's own time under load (Server-Timing, ms); KB: mean answer; cpu: cores used "
              f"during the load by the server process(es), its PostgreSQL backends, this client and everything "
              f"else on the machine (other work sharing the cores); load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=10)
        if args.nice:
            _renice([os.getpid()], 0, group=True)
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
