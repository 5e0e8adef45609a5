"""Where the workers' time goes, seen from PostgreSQL: pg_stat_activity sampled while a benchmark runs.

A worker's connection is, at any instant, running a statement (`active`: the database's time,
its CPU, locks and I/O), inside a transaction between statements (`idle in transaction`: the
worker's own Python time, or waiting for the CPU), or outside one (`idle`: waiting for work).
`DbSampler` polls pg_stat_activity every `period_s` and counts, per application name, the
connections in each state and the statement they run, so a benchmark can print what each
worker spent its time on; and it notes how long each transaction it saw ran (from its start
to the last sample that still saw it: a rules worker's claim, evaluation and commit of one
mine is one transaction). The asyncio workers' own stacks would not show this: a suspended
coroutine is on no thread's stack, so py-spy sees an event loop waiting in `select`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter

import asyncpg

IDLE_IN_TX = "(between statements, in a transaction: the worker's own time)"
IDLE = "(idle: waiting for work)"
_SPACE = re.compile(r"\s+")


class DbSampler:
    """Counts of (application, what its connection was doing) over the samples taken."""

    def __init__(self, dsn: str, apps: tuple[str, ...], *, period_s: float = 0.02) -> None:
        self.dsn = dsn
        self.apps = apps
        self.period_s = period_s
        self.samples = 0
        self.seen: dict[str, Counter[str]] = {a: Counter() for a in apps}
        # (app, pid, xact_start) -> the longest age seen, seconds
        self.xacts: dict[tuple[str, int, object], float] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DbSampler:
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "bench-sampler"})
        self._task = asyncio.create_task(self._run(conn))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT application_name AS app, pid, state, left(query, 200) AS query, xact_start, "
                    "extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = ANY($1::text[])", list(self.apps))
                self.samples += 1
                for r in rows:
                    if r["state"] == "active":
                        what = _SPACE.sub(" ", r["query"]).strip()[:110]
                    elif r["state"] and r["state"].startswith("idle in transaction"):
                        what = IDLE_IN_TX
                    else:
                        what = IDLE
                    self.seen[r["app"]][what] += 1
                    if r["xact_start"] is not None:
                        key = (r["app"], r["pid"], r["xact_start"])
                        self.xacts[key] = max(self.xacts.get(key, 0.0), r["age"])
                await asyncio.sleep(self.period_s)
        finally:
            await conn.close()

    def report(self, top: int = 8) -> str:
        """Per application: the share of samples of each state / statement (a connection-share:
        an application with several connections can exceed 100 % in total)."""
        lines = [f"pg_stat_activity, {self.samples} samples every {self.period_s * 1000:.0f} ms:"]
        for app in self.apps:
            seen = self.seen[app]
            busy = sum(v for k, v in seen.items() if k != IDLE)
            ages = sorted(v for (a, _, _), v in self.xacts.items() if a == app)
            spans = (f"; transactions seen {len(ages)}, longest p50 {ages[len(ages) // 2] * 1000:.0f} ms, "
                     f"p99 {ages[min(len(ages) - 1, round(0.99 * (len(ages) - 1)))] * 1000:.0f} ms, "
                     f"max {ages[-1] * 1000:.0f} ms") if ages else ""
            lines.append(f"  {app}: busy {100 * busy / max(self.samples, 1):.0f} % of the time (connection-samples)"
                         + spans)
            for what, n in seen.most_common(top):
                lines.append(f"    {100 * n / max(self.samples, 1):5.1f} %  {what}")
        return "\n".join(lines)
