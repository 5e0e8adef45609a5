"""Restart safety of the personnel path: the rules worker, a real process, SIGKILLed at random
moments while the shift of test_personnel_worker.py arrives in small late batches, ends with
the hand-written findings and with what one back-fill of the same data finds.

Whatever a killed worker had claimed but not committed rolls back with its windows; the
clock pass keeps no state. The worker runs on the real clock (a process of its own): the shift
is weeks old, so C14, silent underground since, is still in overtime. The shifts after the
last read that have C14 below and no leader are findings only where a clock pass ran during
them (or a back-fill covers them): a worker that was not running then does not go back to
them (docs/rules-personnel.md, "What is left"), so the comparison leaves out the no_leader
spans of the shifts after the data (from 16:00 local).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from minewatch.clock import SystemClock
from rules.backfill import backfill
from rules.packs import builtin_pack
from tests.rules.db.helpers import count, insert_readings
from tests.rules.db.test_personnel_worker import (
    EXPECTED,
    T0,
    CardRow,
    H,
    insert_cards,
    iso,
    live,
    personnel_db,  # noqa: F401 (the fixture)
    shift_day,
)
from tests.rules.db.test_restart import Worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PACK = builtin_pack("default")


def the_day(found: dict[tuple[str, str, str | None], dict[str, object]]) -> dict[tuple[str, str, str | None], object]:
    """Findings that start within the shift's day (later no_leader shifts depend on the clock)."""
    return {k: v for k, v in found.items() if k[0] != "no_leader" or (k[2] or "") < (iso(T0 + 8 * H) or "")}


async def test_personnel_worker_killed_at_random_moments_ends_with_the_expected_findings(
    personnel_db: Callable[[], Awaitable[str]], tmp_path: Path  # noqa: F811
) -> None:
    rng = random.Random(20261207)
    cards, methane = shift_day()
    rows: list[tuple[str, int, object]] = sorted([("c", r[1], r) for r in cards] + [("m", r[1], r) for r in methane],
                                                 key=lambda x: x[1])
    chunks: list[list[tuple[str, int, object]]] = []
    k = 0
    while k < len(rows):
        size = rng.randint(5, 40)
        chunks.append(rows[k:k + size])
        k += size
    arrival: list[list[tuple[str, int, object]]] = [[] for _ in range(len(chunks) + 11)]
    for j, chunk in enumerate(chunks):
        for r in chunk:
            arrival[j + (rng.randint(1, 10) if rng.random() < 0.05 else 0)].append(r)

    streamed = await personnel_db()
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
                    "AND datname = current_database() AND xact_start IS NOT NULL")
                if in_flight or time.monotonic() > settle or stop.is_set():
                    break
                await asyncio.sleep(0.005)
            worker.kill()
            kills, busy = kills + 1, busy + (in_flight > 0)
            await worker.start()

    chaos = asyncio.create_task(killer())
    try:
        for batch in arrival:
            c_rows: list[CardRow] = [x[2] for x in batch if x[0] == "c"]  # type: ignore[misc]
            await insert_cards(feed, c_rows)
            await insert_readings(feed, [x[2] for x in batch if x[0] == "m"])  # type: ignore[misc]
            await asyncio.sleep(0.15)  # paced: the kills land while the shift arrives
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
    got = the_day(await live(streamed))
    # The hand-written findings that start within the data.
    want = {(r, s, a): (b, lv) for r, s, a, b, lv in EXPECTED if r != "no_leader" or (a or "") < (iso(T0 + 8 * H) or "")}
    assert len(want) == len(EXPECTED) - 1
    assert {k: (v["end"], v["level"]) for k, v in got.items()} == want  # type: ignore[index]

    filled = await personnel_db()
    c = await asyncpg.connect(filled)
    try:
        await insert_cards(c, cards)
        await insert_readings(c, methane)
        await c.execute("DELETE FROM dirty_windows")
    finally:
        await c.close()
    await backfill(filled, PACK, since_ns=T0 - H, until_ns=T0 + 16 * H, clock=SystemClock())
    assert the_day(await live(filled)) == got
