"""Restart safety of the integrity path: the worker, a real process, SIGKILLed at random moments
while the integrity day of test_integrity_worker.py arrives in small late batches, ends with
exactly the hand-written findings, and with what one back-fill of the same data finds.

Whatever a killed worker had claimed but not committed rolls back with its windows (readings
and station states alike); the clock-driven pass keeps no state. The worker runs on the real
clock here (a process of its own): the data are weeks old, so every point is offline since its
last reading for it as for the back-fill, as EXPECTED says.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from rules.backfill import backfill
from rules.packs import builtin_pack
from tests.rules.db.helpers import MIN, Row, count, insert_readings, snapshot
from tests.rules.db.test_integrity_worker import EXPECTED, T0, N, StateRow, findings, insert_states, keyed, readings, states, t
from tests.rules.db.test_restart import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PACK = builtin_pack("default")


async def test_integrity_worker_killed_at_random_moments_ends_with_the_expected_findings(
    integrity_db: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    rng = random.Random(20261207)
    rows, sts = readings(), states()
    chunks: list[list[Row]] = []
    k = 0
    while k < len(rows):
        size = rng.randint(10, 80)
        chunks.append(rows[k : k + size])
        k += size
    arrival: list[list[Row]] = [[] for _ in range(len(chunks) + 21)]
    for j, chunk in enumerate(chunks):
        for r in chunk:
            arrival[j + (rng.randint(1, 20) if rng.random() < 0.1 else 0)].append(r)
    state_at: dict[int, list[StateRow]] = {}
    for s_ in sts:
        state_at.setdefault(rng.randrange(len(arrival)), []).append(s_)

    streamed = await integrity_db()
    worker = Worker(streamed, tmp_path / "worker.log")
    await worker.start()
    conn = await asyncpg.connect(streamed)
    feed = await asyncpg.connect(streamed)
    stop = asyncio.Event()
    kills = busy = 0

    async def killer() -> None:
        nonlocal kills, busy
        while not stop.is_set():
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            settle = time.monotonic() + 1.0
            while True:  # a moment with work in hand, when there is any within a second
                in_flight = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'minewatch-rules' "
                    "AND datname = current_database() AND xact_start IS NOT NULL"
                )
                if in_flight or time.monotonic() > settle or stop.is_set():
                    break
                await asyncio.sleep(0.005)
            worker.kill()
            kills, busy = kills + 1, busy + (in_flight > 0)
            await worker.start()

    chaos = asyncio.create_task(killer())
    try:
        for j, batch in enumerate(arrival):
            await insert_readings(feed, batch)
            await insert_states(feed, state_at.get(j, []))
            await asyncio.sleep(0.1)  # paced: the kills land while the day arrives
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await chaos
        await conn.close()
        await feed.close()
    deadline = time.monotonic() + 120
    while await count(streamed, "SELECT count(*) FROM dirty_windows"):
        assert worker.proc is not None and worker.proc.poll() is None, worker.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the worker did not catch up"
        await asyncio.sleep(0.2)
    assert worker.stop() == 0, "SIGTERM drains and exits cleanly"
    assert kills >= 4 and busy >= 1, f"{kills} kills, {busy} mid-evaluation"
    assert keyed(await findings(streamed)) == EXPECTED

    filled = await integrity_db()
    c = await asyncpg.connect(filled)
    try:
        await insert_readings(c, rows)
        await insert_states(c, sts)
        await c.execute("DELETE FROM dirty_windows")
    finally:
        await c.close()
    await backfill(filled, PACK, since_ns=T0 - 60 * MIN, until_ns=t(N) + 60 * MIN)
    a, b = await snapshot(streamed), await snapshot(filled)
    for kind in ("episodes", "events", "orders", "findings"):
        assert a[kind] == b[kind], f"{kind}: streamed-only {a[kind] - b[kind]}, back-fill-only {b[kind] - a[kind]}"
