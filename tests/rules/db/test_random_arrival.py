"""Whatever order readings arrive in and however the windows fall, streaming ends where back-fill starts.

Seeded random series (spikes hovering around the thresholds, link outages shorter and longer
than max_gap, calibration rows, several points of one face, another face, CO, a second
mine) arrive in batches with 15 % of the readings delayed by up to 40 batches; the worker
runs in burst mode after every few batches. A back-fill over the same database in one
chunk (a from-scratch recomputation compared with what is stored) must then find nothing
to change, for each seed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from rules.backfill import backfill
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.rules.db.helpers import MIN, Row, S, insert_readings
from tests.rules.db.test_reevaluate import DAY, T

pytestmark = pytest.mark.integration
POINTS = ("149900000001_01MN0001_T0001", "149900000001_01MN0001_T0002", "149900000001_01MN0001_T0004",
          "149900000001_01MN0004_T0005", "149900000002_01MN0001_T0001")


def random_series(rng: random.Random, code: str, start: int, n: int) -> list[Row]:
    co = "MN0004" in code
    rows: list[Row] = []
    t, spike = start, 0
    for _ in range(n):
        t += 30 * S
        if rng.random() < 0.01:
            t += rng.choice([2, 4, 6, 12]) * MIN  # a link outage, sometimes longer than max_gap (5 min)
        if spike == 0 and rng.random() < 0.03:
            spike = rng.randint(1, 12)
        if spike:
            spike -= 1
            value = rng.choice([0.99, 1.0, 1.0, 1.2, 1.5, 1.7, 3.2]) * (30 if co else 1)
        else:
            value = rng.choice([0.3, 0.5, 0.8]) * (4 if co else 1)
        status = 4 if rng.random() < 0.02 else 0
        rows.append((code, t, value, status))
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_random_late_arrival_ends_where_backfill_starts(make_db: Callable[[], Awaitable[str]], seed: int) -> None:
    rng = random.Random(seed)
    dsn = await make_db()
    start = T + DAY
    rows = sorted((r for code in POINTS for r in random_series(rng, code, start, 400)), key=lambda r: r[1])
    batches: list[list[Row]] = [rows[i:i + 25] for i in range(0, len(rows), 25)]
    arrival: list[list[Row]] = [[] for _ in range(len(batches) + 41)]
    for k, batch in enumerate(batches):
        for r in batch:
            arrival[k + (rng.randint(1, 40) if rng.random() < 0.15 else 0)].append(r)
    conn = await asyncpg.connect(dsn)
    pack = builtin_pack("default")
    try:
        for k, batch in enumerate(arrival):
            await insert_readings(conn, batch)
            if rng.random() < 0.4 or k == len(arrival) - 1:
                await RuleWorker(dsn, pack).run(burst=True)
        events = await conn.fetchval("SELECT count(*) FROM exceedance_events")
        orders = await conn.fetchval("SELECT count(*) FROM orders WHERE withdrawn_at IS NULL")
        superseded = await conn.fetchval("SELECT count(*) FROM findings WHERE state = 'superseded'")
    finally:
        await conn.close()
    assert events >= 5 and orders >= 1, (events, orders)
    tally = await backfill(dsn, pack, since_ns=start - 3_600 * S, until_ns=start + DAY)
    assert tally.changes() == 0, (seed, superseded, tally)
