"""Delivery: a receiver down for ten minutes, permanent failures, expiry, and a deliverer killed mid-send."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from alerting.backoff import BackoffPolicy
from alerting.delivery import DeliveryWorker
from alerting.routing import parse_routing
from alerting.worker import CaseWorker, load_all_templates
from minewatch.clock import SystemClock
from tests.alerting.db.conftest import (
    HOOK_ENV,
    MINE2,
    ROOT_DIR,
    SMS_ENV,
    T0,
    Harness,
    history,
    insert_methane,
    routing_yaml,
)
from tests.alerting.db.receivers import HOOK_SECRET, SMS_TOKEN

pytestmark = pytest.mark.integration


async def _webhooks(h: Harness) -> list[dict[str, object]]:
    rows = await h.pool.fetch("SELECT id::text AS id, state, attempts, delivered_at FROM notifications "
                              "WHERE channel = 'webhook' ORDER BY id")
    return [dict(r) for r in rows]


async def test_receiver_down_for_ten_minutes_then_every_notification_arrives_once(harness: Harness) -> None:
    h = harness
    h.server.behaviour.fail_until = T0 + timedelta(minutes=10)
    for i, mine in enumerate(("140100000001", "140100000001", "140100000001", MINE2, MINE2)):
        await insert_methane(h.pool, start=T0, mine=mine, level="power_off", point=f"{mine}_01MN0001_X{i:04d}")
        await h.advance(timedelta(seconds=1))  # separate flushes: separate notifications
    hooks = await _webhooks(h)
    assert len(hooks) == 3 * 2 + 2 * 1
    while h.clock.now() < T0 + timedelta(minutes=40):
        await h.deliver()
        h.clock.advance(timedelta(seconds=15))
    hooks = await _webhooks(h)
    assert {r["state"] for r in hooks} == {"delivered"}
    assert all(r["delivered_at"] >= T0 + timedelta(minutes=10) for r in hooks)
    accepted = h.server.seen.accepted
    assert {k: n for k, n in accepted.items() if k in {r["id"] for r in hooks}} == {r["id"]: 1 for r in hooks}
    attempts = await h.pool.fetch(
        "SELECT a.outcome, a.status_code, count(*) AS n FROM notification_attempts a "
        "JOIN notifications n ON n.id = a.notification_id WHERE n.channel = 'webhook' GROUP BY 1, 2")
    by_outcome = {(r["outcome"], r["status_code"]): r["n"] for r in attempts}
    assert by_outcome[("delivered", 200)] == len(hooks)
    assert by_outcome[("retryable", 500)] >= 3 * len(hooks)  # backed off, but tried repeatedly
    assert set(by_outcome) == {("delivered", 200), ("retryable", 500)}
    assert h.metric("minewatch_alerting_notifications_total", channel="webhook", outcome="delivered") == len(hooks)


async def test_a_permanent_failure_is_recorded_on_the_case_and_not_retried(harness: Harness) -> None:
    h = harness
    routing = parse_routing(routing_yaml(h.server.url).replace("/hook/county", "/status/410"), source="t")
    cases = CaseWorker(h.pool, clock=h.clock, routing=routing, templates=load_all_templates(), settings=h.settings)
    await insert_methane(h.pool, start=T0, level="power_off")
    await cases.run_burst()
    await h.deliver()
    for _ in range(4):
        h.clock.advance(timedelta(hours=1))
        await h.deliver()
    row = await h.pool.fetchrow("SELECT id, case_id, state, attempts, last_error FROM notifications "
                                "WHERE receiver = 'qx-county' AND channel = 'webhook'")
    assert (row["state"], row["attempts"]) == ("failed", 1)
    assert "HTTP 410" in row["last_error"]
    tries = await h.pool.fetch("SELECT outcome, status_code FROM notification_attempts WHERE notification_id = $1",
                               row["id"])
    assert [tuple(r) for r in tries] == [("permanent", 410)]
    note = (await history(h, row["case_id"]))[-1]
    assert note[:3] == ("notification_failed", "open", "open")
    assert f"webhook notification {row['id']} to {h.server.url}/status/410 failed: webhook" in note[3]
    assert h.metric("minewatch_alerting_notifications_total", channel="webhook", outcome="failed") == 1
    assert await h.pool.fetchval("SELECT count(*) FROM notifications WHERE state = 'delivered'") == 3


async def test_a_notification_that_cannot_arrive_before_it_expires_is_expired_and_surfaced(harness: Harness) -> None:
    h = harness
    routing = parse_routing(routing_yaml(h.server.url).replace("/hook/county", "/status/503"), source="t")
    cases = CaseWorker(h.pool, clock=h.clock, routing=routing, templates=load_all_templates(), settings=h.settings)
    short = BackoffPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=2), expire_after=timedelta(minutes=20))
    delivery = DeliveryWorker(h.pool, clock=h.clock, notifiers=h.delivery._notifiers, secrets={HOOK_ENV: HOOK_SECRET},
                              backoff=short, lease=h.settings.lease, batch=10, metrics=h.metrics)
    await insert_methane(h.pool, start=T0, level="power_off")
    await cases.run_burst()
    while h.clock.now() < T0 + timedelta(minutes=30):
        await delivery.run_burst()
        h.clock.advance(timedelta(seconds=20))
    row = await h.pool.fetchrow("SELECT case_id, state, attempts FROM notifications WHERE receiver = 'qx-county' "
                                "AND channel = 'webhook'")
    assert row["state"] == "expired"
    assert row["attempts"] >= 4
    assert (await history(h, row["case_id"]))[-1][0] == "notification_expired"
    assert h.metric("minewatch_alerting_notifications_total", channel="webhook", outcome="expired") == 1


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "alerting.cli", *args], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT_DIR, start_new_session=True)


async def _wait(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"process did not finish:\n{_text(log)}")
        await asyncio.sleep(0.05)
    return proc.returncode


async def test_deliverer_killed_mid_send_loses_nothing_and_duplicates_at_most_once(
        harness: Harness, tmp_path: Path) -> None:
    h = harness
    routing_file = tmp_path / "routing.yaml"
    _write(routing_file, routing_yaml(h.server.url))
    gateway = {"url": f"{h.server.url}/sms", "auth_env": SMS_ENV,
               "body_template": {"mobile": "{to}", "content": "{text}", "outId": "{id}"}}
    env = {"DATABASE_URL": h.dsn, "MINEWATCH_ALERTING_ROUTING_PATH": str(routing_file),
           "MINEWATCH_ALERTING_LEASE_S": "3", "MINEWATCH_ALERTING_HTTP_TIMEOUT_S": "2",
           "MINEWATCH_ALERTING_SMS_GATEWAY": json.dumps(gateway), HOOK_ENV: HOOK_SECRET, SMS_ENV: SMS_TOKEN}
    log = tmp_path / "alerting.log"
    # Findings at the real time; the worker command turns them into outbox rows and exits.
    now = SystemClock().now()
    await insert_methane(h.pool, start=now, level="power_off")
    await insert_methane(h.pool, start=now, mine=MINE2, level="power_off", point=f"{MINE2}_01MN0001_T0003")
    assert await _wait(_spawn(["worker", "--burst"], env, log), log) == 0, _text(log)
    rows = await h.pool.fetch("SELECT id::text AS id FROM notifications WHERE state = 'pending'")
    assert len(rows) == 7  # mine 1: sms + webhook, mine 2: sms, county: 2 × (sms + webhook)
    ids = {r["id"] for r in rows}

    # The receiver takes requests in (and processes them) but holds its answers: the
    # deliverer is killed with sends in flight and the rest of its batch claimed, unsent.
    hold = threading.Event()
    h.server.behaviour.hold = hold
    deliverer = _spawn(["deliver"], env, log)
    deadline = time.monotonic() + 20
    while not h.server.seen.requests:
        assert time.monotonic() < deadline and deliverer.poll() is None, _text(log)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # let every sender get its request in (2 in flight per lane)
    os.killpg(deliverer.pid, signal.SIGKILL)
    deliverer.wait()
    # An SMS in several segments goes as one request per segment, keyed `<notification id>-<i>`.
    in_flight = {k for _, k, _ in h.server.seen.requests}
    assert in_flight and {_note_id(k) for k in in_flight} <= ids
    claimed = await h.pool.fetch("SELECT state, attempts FROM notifications")
    assert {tuple(r) for r in claimed} == {("pending", 1)}
    assert await h.pool.fetchval("SELECT count(*) FROM notification_attempts") == 0
    hold.set()
    h.server.behaviour.hold = None

    # Restarted after the lease ran out: everything goes again, under the same keys.
    await asyncio.sleep(3.2)
    assert await _wait(_spawn(["deliver", "--burst"], env, log), log) == 0, _text(log)
    final = await h.pool.fetch("SELECT id::text AS id, state, attempts FROM notifications")
    assert {(r["state"], r["attempts"]) for r in final} == {("delivered", 2)}
    sent = [k for _, k, _ in h.server.seen.requests]
    keys = set(sent)
    assert {_note_id(k) for k in keys} == ids
    # Answered-but-lost sends go once more under the same key; claimed-but-unsent ones once.
    assert {k: sent.count(k) for k in keys} == {k: 2 if k in in_flight else 1 for k in keys}
    assert set(h.server.seen.delivered) == keys  # processed once each by key
    outcomes = await h.pool.fetch("SELECT outcome, count(*) AS n FROM notification_attempts GROUP BY outcome")
    assert [tuple(r) for r in outcomes] == [("delivered", 7)]


def _note_id(key: str) -> str:
    """The notification an SMS gateway key stands for: a segment's key is `<id>-<i>` (a UUID's
    last group has 12 characters, so a bare id never ends in `-<1 or 2 digits>`)."""
    return re.sub(r"-\d{1,2}$", "", key)
