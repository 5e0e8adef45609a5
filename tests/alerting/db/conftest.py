"""Fixtures for the alerting integration tests: a fresh database with the sample registry,
a real local receiver, and the case and delivery workers on a FrozenClock."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from alerting.delivery import DeliveryWorker, Notifiers
from alerting.metrics import AlertingMetrics
from alerting.notifiers.sms_gateway import HttpSmsGateway, SmsGatewayConfig
from alerting.notifiers.webhook import WebhookNotifier
from alerting.routing import Routing, parse_routing
from alerting.settings import AlertingSettings
from alerting.worker import CaseWorker, load_all_templates
from minewatch.clock import FrozenClock
from minewatch.db import create_pool
from minewatch.db.scratch import copy_db
from tests.alerting.db.receivers import HOOK_SECRET, SMS_TOKEN, Behaviour, Running, receiver
from tests.conftest import _create_db, _drop_db

pytestmark = pytest.mark.integration

ROOT_DIR = Path(__file__).resolve().parents[3]

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
MINE1 = "140100000001"
MINE2 = "140100000002"
MINE3 = "140100000003"
POINT = "140100000001_01MN0001_T0003"  # 11301回风隅角
HOOK_ENV = "MW_TEST_HOOK_SECRET"
SMS_ENV = "MW_TEST_SMS_AUTH"

# Phones of the test routing, by who holds them.
M1_PHONE = "13800000101"
M1_UNION = "13800000109"
M2_PHONE = "13800000201"
M3_PHONE = "13800000301"
COUNTY_PHONE = "13900000121"
CITY_PHONE = "13900000100"
PROVINCE_PHONE = "13700000000"


def routing_yaml(url: str) -> str:
    """Routing for the sample registry with every webhook on the local receiver."""
    return f"""
version: 1
start_levels:
  default: county
  rules: {{overtime: mine, work_continued: city, seal_breach: county, shutdown_order: county,
          frequent_exceedance: county, high_value_exceedance: province}}
mines:
  "{MINE1}":
    receivers:
      - {{id: m1-dispatch, name: 调度室, sms: ["{M1_PHONE}"]}}
      - {{id: m1-scada, name: 监控平台, webhook: {{url: "{url}/hook/m1", secret_env: {HOOK_ENV}}}}}
    workforce:
      - {{id: m1-union, name: 职工监督员, sms: ["{M1_UNION}"]}}
  "{MINE2}":
    receivers:
      - {{id: m2-dispatch, name: 调度室, sms: ["{M2_PHONE}"]}}
  "{MINE3}":
    receivers:
      - {{id: m3-dispatch, name: 调度室, sms: ["{M3_PHONE}"]}}
regions:
  county:
    "140121":
      - {{id: qx-county, name: 清徐县应急管理局, sms: ["{COUNTY_PHONE}"],
         webhook: {{url: "{url}/hook/county", secret_env: {HOOK_ENV}}}}}
  city:
    "140100":
      - {{id: ty-city, name: 太原市应急管理局, sms: ["{CITY_PHONE}"],
         webhook: {{url: "{url}/hook/city", secret_env: {HOOK_ENV}}}}}
  province:
    "140000":
      - {{id: sx-province, name: 山西省应急管理厅, lang: en, sms: ["{PROVINCE_PHONE}"],
         webhook: {{url: "{url}/hook/province", secret_env: {HOOK_ENV}}}}}
"""


@dataclass
class Harness:
    """The workers on a frozen clock, against a fresh database and a local receiver."""

    dsn: str
    pool: asyncpg.Pool
    clock: FrozenClock
    routing: Routing
    settings: AlertingSettings
    cases: CaseWorker
    delivery: DeliveryWorker
    registry: CollectorRegistry
    metrics: AlertingMetrics
    server: Running

    async def tick(self) -> int:
        """Run the case side until idle."""
        return await self.cases.run_burst()

    async def deliver(self) -> int:
        """Run the delivery side until nothing is due."""
        return await self.delivery.run_burst()

    async def advance(self, delta: timedelta) -> int:
        """Move the clock, then run the case side."""
        self.clock.advance(delta)
        return await self.tick()

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture(scope="session")
def template_db(pg_dsn: str) -> Iterator[str]:
    """A migrated database with the sample registry, built once, copied for every test."""
    dsn = asyncio.run(_create_db(pg_dsn, registry=True))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def alerting_db(pg_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh database per test, copied from the template: the same as `fresh_db`, faster
    (a file copy instead of migrating and loading the registry each time)."""
    name = f"mw_alert_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(copy_db(pg_dsn, template_db, name))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def server() -> Iterator[Running]:
    with receiver(Behaviour()) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env off: a proxy configured on the machine must not intercept 127.0.0.1 traffic
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def make_settings(**changes: Any) -> AlertingSettings:
    base: dict[str, Any] = {"lease_s": 30.0, "http_timeout_s": 5.0}
    return AlertingSettings.model_validate(base | changes)


@pytest_asyncio.fixture(loop_scope="function")
async def harness(alerting_db: str, server: Running, client: httpx.AsyncClient) -> AsyncIterator[Harness]:
    clock = FrozenClock(T0)
    server.behaviour.clock = clock
    routing = parse_routing(routing_yaml(server.url), source="test-routing")
    settings = make_settings()
    pool = await create_pool(alerting_db, min_size=1, max_size=6)
    registry = CollectorRegistry()
    metrics = AlertingMetrics(registry)
    gateway = SmsGatewayConfig.model_validate({
        "url": f"{server.url}/sms", "auth_env": SMS_ENV,
        "body_template": {"mobile": "{to}", "content": "{text}", "outId": "{id}"}})
    notifiers = Notifiers(sms=HttpSmsGateway(client, gateway, auth_value=SMS_TOKEN),
                          webhook=WebhookNotifier(client))
    cases = CaseWorker(pool, clock=clock, routing=routing, templates=load_all_templates(), settings=settings,
                       metrics=metrics)
    delivery = DeliveryWorker(pool, clock=clock, notifiers=notifiers, secrets={HOOK_ENV: HOOK_SECRET},
                              backoff=settings.backoff, lease=settings.lease, batch=settings.delivery_batch,
                              metrics=metrics, rng=random.Random(7))
    try:
        yield Harness(alerting_db, pool, clock, routing, settings, cases, delivery, registry, metrics, server)
    finally:
        await pool.close()


async def mine_id(conn: asyncpg.Connection | Any, code: str) -> int:
    value: int = await conn.fetchval("SELECT id FROM mines WHERE code = $1", code)
    return value


async def insert_methane(
    pool: asyncpg.Pool, *, start: datetime, point: str = POINT, mine: str = MINE1, peak: float = 1.6,
    level: str = "alarm", tier: str = "county", rule: str = "methane_exceedance", scope: str = "face",
) -> int:
    """An exceedance event and its finding, shaped as the rules worker writes them
    (`rules.evaluate.event_findings`): under the default pack's `face` scope the subject is the
    point's face code (the point's own code when it has no face, or under `scope="point"`),
    the evidence lists the points; a methane peak of 3 % or more also gets its
    `high_value_exceedance` flag, as rules does. Returns the exceedance finding's id."""
    async with pool.acquire() as conn, conn.transaction():
        mid = await mine_id(conn, mine)
        face = await conn.fetchval("SELECT f.code FROM points p JOIN faces f ON f.id = p.face_id WHERE p.code = $1",
                                   point)
        scope, key = ("face", face) if scope == "face" and face is not None else ("point", point)
        event = await conn.fetchval(
            "INSERT INTO exceedance_events (mine_id, gas, scope, scope_key, start_ts, peak, peak_ts, level, tier) "
            "VALUES ($1, 'methane', $2, $3, $4, $5, $4, $6, $7) RETURNING id", mid, scope, key, start, peak, level,
            tier)
        evidence = {"gas": "methane", "scope": scope, "scope_key": key, "peak": peak,
                    "peak_ts": start.isoformat(), "level": level, "points": [point], "episodes": 1, "tier": tier}
        fid: int = await conn.fetchval(
            "INSERT INTO findings (rule, mine_id, subject, start_ts, level, tier, state, ref_table, ref_id, evidence) "
            "VALUES ($1, $2, $3, $4, $5, $6, 'open', 'exceedance_events', $7, $8::jsonb) RETURNING id",
            rule, mid, key, start, level, tier, event, json.dumps(evidence))
        if peak >= 3.0:
            await conn.execute(
                "INSERT INTO findings (rule, mine_id, subject, start_ts, level, tier, state, ref_table, ref_id, "
                "evidence) VALUES ('high_value_exceedance', $1, $2, $3, 'warning', $4, 'open', 'exceedance_events', "
                "$5, $6::jsonb)", mid, key, start, tier, event,
                json.dumps({"peak": peak, "peak_at_least": 3.0, "points": [point], "event_id": event}))
        await conn.execute("SELECT pg_notify('minewatch_findings', '')")
    return fid


async def insert_finding(
    pool: asyncpg.Pool, *, rule: str, subject: str, start: datetime, level: str, mine: str = MINE1,
    tier: str | None = None, evidence: dict[str, Any] | None = None,
) -> int:
    """A generic finding (a hazard, a health finding) with no typed row behind it."""
    async with pool.acquire() as conn:
        fid: int = await conn.fetchval(
            "INSERT INTO findings (rule, mine_id, subject, start_ts, level, tier, evidence) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id",
            rule, await mine_id(conn, mine), subject, start, level, tier, json.dumps(evidence or {}))
    return fid


async def insert_order(
    pool: asyncpg.Pool, *, start: datetime, min_end: datetime, events: list[int], mine: str = MINE1,
) -> tuple[int, int]:
    """A shutdown order with its trigger events and its finding, as the rules worker writes them
    (`rules.evaluate.order_finding`): rule `shutdown_order`, subject the count rule's id
    `methane_repeat`, level `order`, ref `orders`. Returns (order id, finding id)."""
    async with pool.acquire() as conn, conn.transaction():
        mid = await mine_id(conn, mine)
        order = await conn.fetchval(
            "INSERT INTO orders (mine_id, rule, pack, start_ts, min_end_ts) VALUES ($1, 'methane_repeat', 'default', "
            "$2, $3) RETURNING id", mid, start, min_end)
        await conn.executemany("INSERT INTO order_events (order_id, event_id, role) VALUES ($1, $2, 'trigger')",
                               [(order, e) for e in events])
        starts = [r["start_ts"].isoformat() for r in await conn.fetch(
            "SELECT start_ts FROM exceedance_events WHERE id = ANY($1::bigint[]) ORDER BY id", events)]
        evidence = {"pack": "default", "rule": "methane_repeat", "min_end": min_end.isoformat(), "ladder_step": 0,
                    "trigger_event_ids": events, "trigger_starts": starts, "attached_event_ids": []}
        fid: int = await conn.fetchval(
            "INSERT INTO findings (rule, mine_id, subject, start_ts, level, state, ref_table, ref_id, evidence) "
            "VALUES ('shutdown_order', $1, 'methane_repeat', $2, 'order', 'open', 'orders', $3, $4::jsonb) "
            "RETURNING id", mid, start, order, json.dumps(evidence))
    return order, fid


async def outbox(pool: asyncpg.Pool, *, reason: str | None = None) -> list[asyncpg.Record]:
    """Outbox rows (not suppressed), oldest first, optionally of one reason."""
    return await pool.fetch(
        "SELECT id, case_id, reason, level, receiver, channel, target, body::text AS body, state, attempts, "
        "dedup_key FROM notifications WHERE state <> 'suppressed' AND ($1::text IS NULL OR reason = $1) "
        "ORDER BY created_at, receiver, target", reason)


def sms_text(row: asyncpg.Record) -> str:
    """The whole text of an SMS outbox row (its segments joined)."""
    return "".join(json.loads(row["body"])["segments"])


async def act(h: Harness, case_id: int, action: str, *, role: str, comment: str | None = None,
              deadline: datetime | None = None) -> None:
    """Take a user's action through the API's own code path; fail the test if refused."""
    from alerting.actions import apply_action

    scope = {"mine": MINE1, "county": "140121", "city": "140100", "province": "140000"}[role]
    async with h.pool.acquire() as conn:
        outcome = await apply_action(conn, case_id=case_id, action=action, actor=f"{role}.user", role=role,
                                     scope=frozenset({scope}), comment=comment, deadline=deadline,
                                     now=h.clock.now())
    assert outcome.applied, outcome.result


async def history(h: Harness, case_id: int) -> list[tuple[Any, ...]]:
    """(action, from, to, comment) of a case's history, oldest first."""
    rows = await h.pool.fetch("SELECT action, from_state, to_state, comment FROM case_history WHERE case_id = $1 "
                              "ORDER BY id", case_id)
    return [tuple(r) for r in rows]
