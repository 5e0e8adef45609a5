"""EXPLAIN (ANALYZE, BUFFERS) of the statements the API runs, on the benchmark database, as markdown.

Run: ``python -m bench.api.explain [--data-dir DIR | --dsn DSN] > docs/query-plans.md.new``

The statements are not copied here: the real service functions run against a pool whose
connections log every query with its arguments, and each logged statement is explained
with those same arguments. Needs the database of ``python -m bench.api.run`` (filled once).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from alerting.actions import apply_action
from api.auth.principal import authenticate
from api.auth.tokens import create_token
from api.cases import service as cases
from api.deadletters import service as deadletters
from api.exceedances import service as exceedances
from api.mines import service as mines
from api.orders import service as orders
from api.pagination import CursorCodec
from api.personnel import service as personnel
from api.readings import service as readings
from bench.api.fill import mine_code
from bench.api.run import DB
from launcher.embedded import EmbeddedPostgres

# Tables small enough that a sequential scan is the right plan at any realistic size
# (a few thousand mines, a few hundred tokens).
# The rollup's state is one row and its invalidation log holds what arrived since the last
# refresh (one row per write statement, seconds' worth).
SMALL = {"mines", "regions", "api_tokens", "areas", "area_stations", "stations", "readings_1h_state",
         "readings_1h_invalid"}
_SCAN = re.compile(r"(Seq Scan|Parallel Seq Scan) on (\w+)")


async def _explain(conn: asyncpg.Connection | PoolConnectionProxy, sql: str, args: tuple[Any, ...]) -> list[str]:
    rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) " + sql, *args)
    return [r[0] for r in rows]


async def run(dsn: str) -> str:
    logged: list[tuple[str, tuple[Any, ...]]] = []
    recording = [False]

    def log(record: Any) -> None:
        # (the pool's own reset on release is several commands; it is not ours to explain)
        # (nor asyncpg's type introspection)
        ours = ";" not in record.query or record.query.startswith("SET LOCAL")
        if recording[0] and ours and "pg_catalog" not in record.query:
            logged.append((record.query, tuple(record.args)))

    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute("SET jit = off")  # as the API's own connections (api/app.py)
        conn.add_query_logger(log)

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2, init=init,
                                     server_settings={"timezone": "UTC"})
    assert pool is not None
    out: list[str] = []
    try:
        async with pool.acquire() as conn:
            end = datetime.fromisoformat(
                (await conn.fetchval("SELECT value FROM meta WHERE key = 'bench_api_fill'")).split('"end": "')[1][:25])
            n_readings = await conn.fetchval("SELECT reltuples::bigint FROM pg_class WHERE relname = 'readings'")
            if not n_readings:
                n_readings = await conn.fetchval(
                    "SELECT sum(reltuples)::bigint FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'")
            _, token = await create_token(conn, name="explain", role="county",
                                          scope=["149901"], pepper="explain", now=end)
            counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}")
                      for t in ("mines", "points", "exceedance_events", "episodes", "orders", "cases",
                                "case_history", "dead_letters", "card_reads")}
            version = await conn.fetchval("SHOW server_version")
        codec = CursorCodec(b"explain")
        principal = await authenticate(pool, token, pepper="explain", now=end)
        assert principal is not None
        admin = await authenticate(pool, (await _admin_token(pool, end)), pepper="explain", now=end)
        assert admin is not None
        mine = mine_code(1)  # county 149901
        mine_id = (await mines.visible_mine(pool=pool, principal=principal, code=mine)).id
        point = await readings.find_point(pool=pool, mine_id=mine_id, code=f"{mine}_01MN0001_T0005")
        case_id = await pool.fetchval("SELECT id FROM cases WHERE mine_id = $1 AND state <> 'closed' LIMIT 1",
                                      mine_id)
        month = (end - timedelta(days=30), end)
        scenarios: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("token lookup, with the path's mine and point (every request)", lambda: authenticate(
                pool, token, pepper="explain", now=end, mine=mine, point=point.code)),
            ("GET /v1/mines (county token)", lambda: mines.list_mines(
                pool=pool, codec=codec, principal=principal, limit=100, cursor=None)),
            ("GET /v1/mines/{mine}", lambda: mines.get_mine(pool=pool, principal=principal, code=mine)),
            ("GET /v1/mines/{mine}/exceedances (30 days)", lambda: exceedances.list_exceedances(
                pool=pool, codec=codec, mine_id=mine_id, since=month[0], until=month[1], gas=None,
                level=None, limit=100, cursor=None)),
            ("GET /v1/mines/{mine}/orders", lambda: orders.list_orders(
                pool=pool, codec=codec, mine_id=mine_id, mine=mine, limit=100, cursor=None)),
            ("GET .../readings raw (24 h)", lambda: readings.raw_series(
                pool=pool, codec=codec, mine=mine, point=point, since=end - timedelta(hours=24), until=end,
                limit=1000, cursor=None)),
            ("GET .../readings?step=1h (30 days, hourly parts: rollup + raw)", lambda: readings.bucket_series(
                pool=pool, codec=codec, mine=mine, point=point, since=month[0], until=month[1], step="1h",
                limit=1000, cursor=None)),
            ("GET .../readings?step=5m (1 day, date_bin over readings)", lambda: readings.bucket_series(
                pool=pool, codec=codec, mine=mine, point=point, since=end - timedelta(days=1), until=end, step="5m",
                limit=1000, cursor=None)),
            ("GET /v1/mines/{mine}/personnel", lambda: personnel.underground(
                pool=pool, codec=codec, mine_id=mine_id, mine=mine, now=end, limit=100, cursor=None)),
            ("GET /v1/cases (county token)", lambda: cases.list_cases(
                pool=pool, codec=codec, principal=principal, limit=100, cursor=None)),
            ("GET /v1/cases?state=acknowledged (admin)", lambda: cases.list_cases(
                pool=pool, codec=codec, principal=admin, limit=100, cursor=None, state="acknowledged")),
            ("GET /v1/cases (admin, all)", lambda: cases.list_cases(
                pool=pool, codec=codec, principal=admin, limit=100, cursor=None)),
            ("GET /v1/cases/{id}", lambda: cases.get_case(pool=pool, principal=principal, case_id=case_id)),
            ("GET /v1/dead-letters (county token)", lambda: deadletters.list_dead_letters(
                pool=pool, codec=codec, principal=principal, since=None, mine=None, reason=None, limit=100,
                cursor=None)),
            ("GET /v1/dead-letters (admin)", lambda: deadletters.list_dead_letters(
                pool=pool, codec=codec, principal=admin, since=None, mine=None, reason=None, limit=100,
                cursor=None)),
        ]
        out += [
            "# Query plans", "",
            "Generated by `python -m bench.api.explain` on the benchmark database of `python -m bench.api.run` "
            f"(PostgreSQL {version}, plain partitioning, daily partitions):", "",
            f"- readings: ~{n_readings / 1e6:.0f} M ({counts['points']} points at 30 s)",
            *[f"- {t}: {n}" for t, n in counts.items() if t != "points"], "",
            "Each statement is captured from the real service function (a query logger on the pool) and "
            "explained with the same arguments. `COSTS OFF` for readability; times are of this run, on a "
            "shared 2-core machine.", "",
        ]
        flagged: list[str] = []
        for title, call in scenarios:
            logged.clear()
            recording[0] = True
            await call()
            recording[0] = False
            out += [f"## {title}", ""]
            async with pool.acquire() as conn, conn.transaction():
                for sql, args in logged:
                    if sql.startswith("UPDATE api_tokens"):
                        continue
                    if sql.startswith("SET LOCAL"):
                        await conn.execute(sql)  # as the service does, before its statement
                        out += [f"(the service runs `{sql}` first; so does this explanation)", ""]
                        continue
                    plan = await _explain(conn, sql, args)
                    shown = ", ".join(repr(a) if not isinstance(a, list) or len(a) < 6 else f"[{len(a)} ids]"
                                      for a in args)
                    out += ["```sql", re.sub(r"\s+", " ", sql).strip(), "```", f"arguments: {shown}", "", "```",
                            *plan, "```", ""]
                    for kind, table in _SCAN.findall("\n".join(plan)):
                        if table.split("_p2")[0] not in SMALL:
                            flagged.append(f"{title}: {kind} on {table}")
        # The case action: lock, decide, update, history (rolled back, so the data stay as they are).
        out += ["## POST /v1/cases/{id}/actions (alerting.actions.apply_action)", ""]
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            logged.clear()
            recording[0] = True
            await apply_action(conn, case_id=case_id, action="acknowledge", actor="explain", role="mine",
                               scope=frozenset({mine}), comment=None, deadline=None, now=end)
            recording[0] = False
            for sql, args in list(logged):
                if sql.lstrip().upper().startswith(("SELECT PG_NOTIFY", "INSERT")):
                    continue
                plan = await _explain(conn, sql, args)
                out += ["```sql", re.sub(r"\s+", " ", sql).strip(), "```", "", "```", *plan, "```", ""]
            await tx.rollback()
        out += ["## Sequential scans on tables that grow", ""]
        out += [f"- {f}" for f in flagged] or ["None: every statement reaches the growing tables through an index."]
        return "\n".join(out) + "\n"
    finally:
        await pool.close()


async def _admin_token(pool: asyncpg.Pool, now: datetime) -> str:
    async with pool.acquire() as conn:
        _, token = await create_token(conn, name="explain-admin", role="admin",
                                      scope=[], pepper="explain", now=now)
    return token


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=None, help="DSN of the server holding the bench database")
    p.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "minewatch-bench-api")
    args = p.parse_args(argv)
    pg = None
    server = args.dsn
    if server is None:
        pg = EmbeddedPostgres(args.data_dir / "pg", fsync=False)
        server = pg.start()
    try:
        print(asyncio.run(run(server.rsplit("/", 1)[0] + "/" + DB)), end="")
    finally:
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
