"""The worker as a long-running service: woken by NOTIFY, metrics, a clean stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from minewatch.timeutil import from_ns
from rules.metrics import RulesMetrics
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.rules.db.helpers import MIN, count, insert_readings, series
from tests.rules.db.test_reevaluate import DAY, A, T

pytestmark = pytest.mark.integration


async def test_notify_wakes_the_worker_and_the_metrics_follow(make_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await make_db()
    registry = CollectorRegistry()
    # The poll is 60 s: only the ingest's NOTIFY can wake the worker within the test's patience.
    # The counts below are the methane chain's: the integrity rules (their own tests in
    # test_integrity_worker.py) would add an `offline` finding, the data being history to the clock.
    worker = RuleWorker(dsn, builtin_pack("default"), settings=RulesSettings(poll_s=60, heartbeat_s=0.1, integrity=False),
                        metrics=RulesMetrics(registry))
    running = asyncio.create_task(worker.run())

    def sample(name: str, **labels: str) -> float:
        value = registry.get_sample_value(name, labels or None)
        return -1.0 if value is None else value

    try:
        deadline = time.monotonic() + 10
        while sample("minewatch_rules_heartbeat_timestamp_seconds") <= 0:  # listening
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(dsn)
        try:
            e = T + DAY + 120 * MIN
            sent = time.monotonic()
            await insert_readings(conn, series(A, e - 10 * MIN, [0.4] * 20 + [1.3] * 10 + [0.4] * 10))
            while await count(dsn, "SELECT count(*) FROM findings") == 0:
                assert time.monotonic() - sent < 5, "the worker was not woken by the notification"
                await asyncio.sleep(0.02)
        finally:
            await conn.close()
        await asyncio.sleep(0.3)  # a heartbeat or two
        assert sample("minewatch_rules_windows_total") == 1
        assert sample("minewatch_rules_readings_total") == 40
        assert sample("minewatch_rules_findings_total", change="created") == 1
        assert sample("minewatch_rules_evaluation_seconds_count") == 1
        assert sample("minewatch_rules_backlog_windows") == 0 and sample("minewatch_rules_lag_seconds") == 0
        assert time.time() - sample("minewatch_rules_heartbeat_timestamp_seconds") < 5
    finally:
        worker.stop()
        tally = await asyncio.wait_for(running, 10)  # an idle worker stops at once
    assert tally.windows == 1 and tally.findings["created"] == 1


async def test_windows_of_kinds_no_rule_reads_are_cleared_not_left_to_pile_up(
        make_db: Callable[[], Awaitable[str]]) -> None:
    """The ingest records card_reads and station_states windows too: the worker evaluates them
    (the personnel rules read card reads, the integrity rules judge station_fault from station
    states) with the readings windows, and deletes windows of a kind no rule reads, until none is left."""
    dsn = await make_db()
    conn = await asyncpg.connect(dsn)
    try:
        mine = await conn.fetchval("SELECT id FROM mines ORDER BY id LIMIT 1")
        e = T + DAY + 120 * MIN
        await insert_readings(conn, series(A, e - 10 * MIN, [0.4] * 20 + [1.3] * 10 + [0.4] * 10))
        # As the ingest writes them: one window per committed batch and mine, of each table.
        await conn.executemany(
            "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) VALUES ($1, $2, $3, $3, 1)",
            [(mine, kind, from_ns(e + k * MIN)) for kind in ("card_reads", "station_states", "no_such_kind")
             for k in range(3)])
        tally = await RuleWorker(dsn, builtin_pack("default"), settings=RulesSettings(claim_limit=4)).run(burst=True)
        assert await conn.fetchval("SELECT count(*) FROM dirty_windows") == 0
        assert (tally.windows, tally.cleared) == (7, 3), tally
        assert await conn.fetchval("SELECT count(*) FROM findings WHERE rule = 'methane_exceedance'") == 1
        # Nothing was derived from the cleared windows: a second pass finds nothing to do.
        again = await RuleWorker(dsn, builtin_pack("default")).run(burst=True)
        assert (again.windows, again.cleared, again.changes()) == (0, 0, 0)
    finally:
        await conn.close()
