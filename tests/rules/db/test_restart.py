"""Restart safety: the worker, a real process, SIGKILLed at random moments, ends with the same findings.

Readings of the two-week scenario (5 % late and out of order) are written as the ingest
writes them, batch by batch, while `python -m rules.cli rules worker` is killed with
SIGKILL at seeded random moments (0.2-1.2 s after each start) and started again, many
times. Kills land mid-evaluation (its transaction open, windows claimed): the test checks
that at least one does (7 of 8 did on a loaded 2-core machine). Whatever it had claimed
but not committed rolls back with its windows, so the end state must equal a back-fill of
the same readings in a second database and the scenario's hand-computed expectations,
which an uninterrupted run reaches (test_streaming).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import msgspec
import pytest

from rules.backfill import backfill
from rules.packs import builtin_pack
from simulators.run import RunOptions, render_history
from tests.conftest import ROOT
from tests.rules.db.helpers import Row, copy_readings, count, insert_readings, snapshot
from tests.rules.db.test_streaming import check_expectations, scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PACK = builtin_pack("default")
SAFETY = "/safety"


class Worker:
    """`python -m rules.cli rules worker` as a process we can kill."""

    def __init__(self, dsn: str, log: Path) -> None:
        self.env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1", "MINEWATCH_RULES_POLL_S": "0.2"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        before = self.log.read_text().count("rules worker: started") if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "rules.cli", "rules", "worker", "--lang", "en"],
                                         env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + 30
        while self.log.read_text().count("rules worker: started") <= before:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "worker did not start"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(30)


def scenario_rows() -> list[list[Row]]:
    """The scenario's safety readings in publish order (late ones held back), as ingest batches."""
    world, _ = scenario()
    batches: list[list[Row]] = []
    batch: list[Row] = []
    for m in render_history(world, RunOptions(items_per_message=100, late_fraction=0.05, time_format="epoch_ms")):
        if m.topic.endswith(SAFETY):
            items = msgspec.json.decode(m.payload)
            batch.extend((it["point"], it["ts"] * 1_000_000, float(it["value"]), int(it["status"])) for it in items)
            if len(batch) >= 2_000:
                batches.append(batch)
                batch = []
    return [*batches, batch]


@pytest.mark.parametrize("partner", [False, True], ids=["one-worker", "beside-a-second-worker"])
async def test_worker_killed_at_random_moments_ends_with_the_uninterrupted_findings(
        make_db: Callable[[], Awaitable[str]], tmp_path: Path, partner: bool) -> None:
    """With `partner`, a second worker process runs beside the one killed, never killed itself:
    the two share the scenario's three mines (a mine's advisory lock keeps them off each other's
    evaluations), and whatever the killed one had claimed, rolled back with its death, the
    other takes over."""
    batches = scenario_rows()
    _, sc = scenario()
    total = sum(len(b) for b in batches)
    streamed = await make_db()
    worker = Worker(streamed, tmp_path / "worker.log")
    second = Worker(streamed, tmp_path / "second.log") if partner else None
    rng = random.Random(20261123)
    await worker.start()
    if second is not None:
        await second.start()
    kills = 0

    busy = 0  # kills that interrupted an evaluation: its transaction open, windows claimed
    pending = 0  # kills with windows waiting

    async def killer(stop: asyncio.Event) -> None:
        nonlocal kills, busy, pending
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.2, 1.2))
            # A random moment while there is work, when there is any within a second: on a quiet
            # machine the worker clears each batch's windows in milliseconds, and a kill in the
            # idle gaps between batches would prove nothing.
            settle = time.monotonic() + 1.0
            while True:
                in_flight = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'minewatch-rules' "
                    "AND datname = current_database() AND xact_start IS NOT NULL")
                waiting = await conn.fetchval("SELECT count(*) FROM dirty_windows")
                if in_flight or waiting or time.monotonic() > settle or stop.is_set():
                    break
                await asyncio.sleep(0.005)
            worker.kill()
            kills, busy, pending = kills + 1, busy + (in_flight > 0), pending + (waiting > 0)
            await worker.start()

    conn = await asyncpg.connect(streamed)
    feed = await asyncpg.connect(streamed)
    stop = asyncio.Event()
    chaos = asyncio.create_task(killer(stop))
    try:
        for batch in batches:
            await insert_readings(feed, batch)
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # a kill or two while the worker catches up
    finally:
        stop.set()
        await chaos
        await conn.close()
        await feed.close()
    deadline = time.monotonic() + 120
    while await count(streamed, "SELECT count(*) FROM dirty_windows WHERE kind = 'readings'"):
        assert worker.proc is not None and worker.proc.poll() is None, worker.log.read_text()[-3000:]
        assert second is None or (second.proc is not None and second.proc.poll() is None), \
            second.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the worker did not catch up"
        await asyncio.sleep(0.2)
    assert worker.stop() == 0, "SIGTERM drains and exits cleanly"
    if second is not None:
        assert second.stop() == 0
        assert second.starts == 1, "the second worker was never restarted"
        assert "evaluating mine" not in second.log.read_text(), second.log.read_text()[-3000:]
    assert kills >= 4, f"only {kills} kills"
    assert pending >= 2 and busy >= 1, f"{kills} kills: {pending} with windows waiting, {busy} mid-evaluation"
    assert "rules worker: " in worker.log.read_text().rsplit("rules worker: started", 1)[-1]

    filled = await make_db()
    assert await copy_readings(streamed, filled) == total
    first_ms = min(r[1] for b in batches for r in b)
    last_ms = max(r[1] for b in batches for r in b)
    await backfill(filled, PACK, since_ns=first_ms - 3_600 * 10**9, until_ns=last_ms + 3_600 * 10**9)
    a, b = await snapshot(streamed), await snapshot(filled)
    for kind in ("episodes", "events", "orders", "findings"):
        assert a[kind] == b[kind], f"{kind}: streamed-only {a[kind] - b[kind]}, back-fill-only {b[kind] - a[kind]}"
    # ... and both equal the uninterrupted run: the scenario's hand-computed expectations, which
    # test_streaming shows an uninterrupted worker (and a back-fill) reach.
    check_expectations(a, sc.expect)
