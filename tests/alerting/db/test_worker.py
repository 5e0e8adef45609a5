"""The worker process: LISTEN wake-ups, drain on stop, and `AlertingWorker` as `minewatch run` builds it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from alerting.settings import load_alerting_settings
from alerting.worker import AlertingWorker, Runner
from minewatch.clock import SystemClock
from tests.alerting.db.conftest import (
    HOOK_ENV,
    ROOT_DIR,
    T0,
    Harness,
    insert_methane,
    make_settings,
    routing_yaml,
)
from tests.alerting.db.receivers import HOOK_SECRET

pytestmark = pytest.mark.integration


async def _until(predicate_sql: str, h: Harness, timeout: float) -> float:
    """Seconds until the query returns true; fails after `timeout`."""
    started = time.monotonic()
    while not await h.pool.fetchval(predicate_sql):
        assert time.monotonic() - started < timeout, f"not within {timeout} s: {predicate_sql}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_runner_wakes_on_notify_not_on_its_poll_and_drains_on_stop(harness: Harness) -> None:
    h = harness
    # A 30 s poll: only LISTEN/NOTIFY can make this fast.
    settings = make_settings(poll_interval_s=30, delivery_lanes=2, drain_timeout_s=5)
    runner = Runner(h.pool, clock=h.clock, settings=settings, cases=h.cases, delivery=h.delivery, metrics=h.metrics)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.3)  # every loop has run once and sleeps
    await insert_methane(h.pool, start=T0, level="power_off")  # commits with NOTIFY minewatch_findings
    took = await _until("SELECT count(*) = 4 FROM notifications WHERE state = 'delivered'", h, timeout=5)
    assert took < 3
    runner.stop()
    await asyncio.wait_for(task, timeout=6)
    assert h.metric("minewatch_alerting_heartbeat_timestamp_seconds", worker="cases") == T0.timestamp()
    assert h.metric("minewatch_alerting_outbox_depth") == 0


async def test_the_worker_serves_from_settings_until_stopped(harness: Harness, tmp_path: Path) -> None:
    h = harness
    routing = tmp_path / "routing.yaml"
    _write(routing, routing_yaml(h.server.url))
    env = {"MINEWATCH_ALERTING_ROUTING_PATH": str(routing), HOOK_ENV: HOOK_SECRET}  # what a main() was given
    registry = CollectorRegistry()
    worker = AlertingWorker(h.dsn, load_alerting_settings(env), registry=registry, environ=env)
    task = asyncio.create_task(worker.run())
    await insert_methane(h.pool, start=SystemClock().now(), level="power_off")
    # SMS go to the log adapter (no gateway configured); webhooks to the local receiver.
    await _until("SELECT count(*) = 4 FROM notifications WHERE state = 'delivered'", h, timeout=10)
    assert {p for p, _, _ in h.server.seen.requests} == {"/hook/m1", "/hook/county"}
    worker.stop()  # the drain: run returns on its own
    assert await asyncio.wait_for(task, timeout=10) == 0
    assert registry.get_sample_value("minewatch_alerting_cases_opened_total",
                                     {"level": "county", "severity": "red"}) == 1


async def test_worker_command_drains_and_exits_cleanly_on_sigterm(harness: Harness, tmp_path: Path) -> None:
    h = harness
    routing = tmp_path / "routing.yaml"
    _write(routing, routing_yaml(h.server.url))
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": h.dsn, "MINEWATCH_ALERTING_ROUTING_PATH": str(routing),
           "MINEWATCH_ALERTING_DRAIN_TIMEOUT_S": "5"}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "alerting.cli", "worker"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT_DIR, start_new_session=True)
    try:
        await insert_methane(h.pool, start=SystemClock().now(), level="power_off")
        await _until("SELECT count(*) > 0 FROM notifications", h, timeout=15)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the worker did not stop on SIGTERM"
            await asyncio.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    # Only the case side ran: the outbox is left for the deliverer.
    assert await h.pool.fetchval("SELECT count(*) FROM notifications WHERE state <> 'pending'") == 0


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
