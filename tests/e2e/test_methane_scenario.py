"""Acceptance, end to end: a scripted methane scenario through every real part.

Readings are published over MQTT; the real ingest process stores them; the real rules worker
(`rules.worker.RuleWorker`) turns them into findings; the real alerting worker
(`alerting.worker.AlertingWorker`, burst mode, on an injected FrozenClock) opens cases, escalates them
and delivers to a real webhook receiver and a real fake SMS gateway; an SMS reply comes back
through the real API (`api.app.create_app` under uvicorn). Ack windows elapse by advancing
the clock: nothing here waits for them.

Scenario (mine 140100000001, face F11301, default pack): a methane event of 1.35 %CH4 at the
upper corner (county tier) three days ago; nobody answers: reminder at 10 min, escalation to
the city at 60 min; the mine's duty phone replies "1 <case>" and escalation stops; a second
event at the face two days later completes "two methane exceedances within 7 days": a
shutdown order case for the whole mine, red, at once, while the second event's own alarm is
muted under the order.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry

from alerting.inbound import inbound_config
from alerting.settings import AlertingSettings
from alerting.worker import AlertingWorker
from api.app import create_app
from launcher.embedded import stop_process
from minewatch.clock import FrozenClock
from minewatch.settings import Settings
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.conftest import start_ingest
from tests.e2e.servers import HOOK_SECRET, SMS_AUTH, Inbox, http_inbox, serve_api
from tests.mqtt_helpers import publish_all
from tests.polling import wait_for as poll

pytestmark = [pytest.mark.integration]

MINE = "140100000001"
MINE_NAME = "清徐县东于煤业有限公司"
CORNER = "140100000001_01MN0001_T0003"  # 11301回风隅角 (T0: alarm 1.0, power-off 1.5)
FACE = "140100000001_01MN0001_T0004"  # 11301工作面 (T1)
M1_PHONE, COUNTY_PHONE, CITY_PHONE = "13800000101", "13900000121", "13900000100"
HOOK_ENV, SMS_ENV, REPLY_ENV = "MW_E2E_HOOK_SECRET", "MW_E2E_SMS_AUTH", "MW_E2E_REPLY_SECRET"
REPLY_SECRET = "e2e-reply-secret"


def routing_yaml(hooks: str) -> str:
    return f"""
version: 1
start_levels:
  default: county
  rules: {{shutdown_order: county, frequent_exceedance: county, high_value_exceedance: province}}
mines:
  "{MINE}":
    receivers:
      - {{id: m1-dispatch, name: 调度室, sms: ["{M1_PHONE}"]}}
      - {{id: m1-scada, name: 监控平台, webhook: {{url: "{hooks}/m1", secret_env: {HOOK_ENV}}}}}
regions:
  county:
    "140121":
      - {{id: qx-county, name: 清徐县应急管理局, sms: ["{COUNTY_PHONE}"],
         webhook: {{url: "{hooks}/county", secret_env: {HOOK_ENV}}}}}
  city:
    "140100":
      - {{id: ty-city, name: 太原市应急管理局, sms: ["{CITY_PHONE}"],
         webhook: {{url: "{hooks}/city", secret_env: {HOOK_ENV}}}}}
"""


def rise(point: str, start: datetime, peak: float, *, minutes: int = 3) -> list[dict[str, Any]]:
    """Readings every 30 s: background 0.40, then `minutes` above the alarm threshold (the
    middle reading at `peak`), then back to 0.40 so the episode clears."""
    rows = []
    for k in range(-6, 2 * minutes + 10):
        ts = start + timedelta(seconds=30 * k)
        value = 0.40 if k < 0 or k >= 2 * minutes else (peak if k == minutes else 1.20)
        rows.append({"point": point, "ts": ts.isoformat(timespec="milliseconds"), "value": value, "status": 0})
    return rows


wait_for = functools.partial(poll, timeout=30, interval=0.1)


@pytest.fixture
def receivers() -> Iterator[tuple[str, Inbox, str, Inbox]]:
    with http_inbox("webhook") as (hooks, hook_inbox), http_inbox("sms") as (gateway, sms_inbox):
        yield hooks, hook_inbox, gateway, sms_inbox


def sms_texts(inbox: Inbox, start: int = 0) -> list[tuple[str, str]]:
    """(phone, whole text) per SMS, segments joined (without their "(i/n)" marks), in arrival
    order of their first segment."""
    texts: dict[tuple[str, str], str] = {}
    for _, body in inbox.snapshot()[start:]:
        ref = str(body["outId"]).rsplit("-", 1)[0] if body["content"].startswith("(") else str(body["outId"])
        texts[(body["mobile"], ref)] = texts.get((body["mobile"], ref), "") + re.sub(r"^\(\d+/\d+\)", "", body["content"])
    return sorted((phone, text) for (phone, _), text in texts.items())


def local(ts: datetime) -> str:
    """A time as the texts give it: the mine's zone, to the minute."""
    return ts.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


def hooks_seen(inbox: Inbox, start: int = 0) -> list[tuple[str, str, str, str]]:
    """(path, reason, case id, level) per webhook."""
    return sorted((p, b["reason"], b["case"]["id"], b["case"]["level"]) for p, b in inbox.snapshot()[start:])


async def test_methane_scenario_end_to_end(
        fresh_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        receivers: tuple[str, Inbox, str, Inbox]) -> None:
    hooks, hook_inbox, gateway, sms_inbox = receivers
    routing_path = tmp_path / "routing.yaml"
    routing_path.write_text(routing_yaml(hooks), encoding="utf-8")
    settings = AlertingSettings.model_validate({
        "routing_path": routing_path, "inbound_secret_env": REPLY_ENV, "lease_s": 30, "http_timeout_s": 5,
        "sms_gateway": {"url": f"{gateway}/sms", "auth_env": SMS_ENV,
                        "body_template": {"mobile": "{to}", "content": "{text}", "outId": "{id}"}},
        # The scenario replays events of three days ago as if live (ingest refuses future data, and
        # the alerting clock starts now): without this they would open as late reports, which do
        # not escalate (tests/alerting/db/test_late_reports.py covers that).
        "escalation": {"late_report_after": 7 * 86_400}})
    environ = {HOOK_ENV: HOOK_SECRET, SMS_ENV: SMS_AUTH}
    # The API's reply endpoint, configured as its main() would from its environment.
    replies = inbound_config({"MINEWATCH_ALERTING_ROUTING_PATH": str(routing_path),
                              "MINEWATCH_ALERTING_INBOUND_SECRET_ENV": REPLY_ENV, REPLY_ENV: REPLY_SECRET})

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    e1 = now - timedelta(days=3)  # the first event: in the past, as ingest requires
    e2 = e1 + timedelta(days=2)  # the second, within 7 days of the first
    clock = FrozenClock(now)
    topic = f"{topic_prefix}mines/{MINE}/safety"

    async def alerting() -> int:
        return await AlertingWorker(fresh_db, settings, registry=CollectorRegistry(), clock=clock,
                                    environ=environ).run(burst=True)

    async def advance(delta: timedelta) -> None:
        clock.advance(delta)
        await alerting()

    conn = await asyncpg.connect(fresh_db)
    ingest = start_ingest(fresh_db, mqtt_url, topic_prefix, tmp_path / "ingest.log",
                          client_id=f"e2e-{topic_prefix.strip('/')}", suback_s=0.3)
    # The integrity rules (their own scenario: test_integrity_scenario.py) would find every replayed
    # point offline since its last reading three days ago; this scenario is the methane chain's.
    rules = RuleWorker(fresh_db, builtin_pack("default"), settings=RulesSettings(poll_s=0.2, integrity=False))
    running = asyncio.create_task(rules.run())
    api = create_app(Settings(database_url=fresh_db), clock=clock, sms_replies=replies)
    try:
        with serve_api(api) as api_url:
            # --- the first event: a case at county level, held for its group window ---
            await asyncio.to_thread(publish_all, mqtt_url, [(topic, json.dumps(rise(CORNER, e1, 1.35)).encode())])

            async def first_found() -> bool:
                return bool(await conn.fetchval(
                    "SELECT count(*) FROM findings WHERE rule = 'methane_exceedance' AND state = 'closed'"))
            await wait_for("the first event's finding", first_found)
            await alerting()
            cases = [tuple(r) for r in await conn.fetch("SELECT id, rule, level, severity, state, title FROM cases")]
            assert cases == [(1, "methane_exceedance", "county", "normal", "open", "11301回风隅角瓦斯超限")]
            assert sms_inbox.snapshot() == [] and hook_inbox.snapshot() == []
            await advance(timedelta(seconds=60))
            # Every text says when the finding started, in the mine's zone (issue 14: old findings).
            first = f"{MINE_NAME}：11301回风隅角瓦斯超限，峰值1.35%CH4（{local(e1)}起）"
            assert sms_texts(sms_inbox) == sorted([
                (M1_PHONE, f"【矿安督办1】{first}，已报县级督办。回复“1 1”确认收到。"),
                (COUNTY_PHONE, f"【矿安督办1】{first}，已报县级督办。")])
            assert hooks_seen(hook_inbox) == [("/county", "raised", "1", "county"), ("/m1", "raised", "1", "county")]

            # --- nobody answers: a reminder at 10 min, the city at 60 min ---
            seen_sms, seen_hooks = len(sms_inbox.snapshot()), len(hook_inbox.snapshot())
            await advance(timedelta(minutes=9))
            await advance(timedelta(minutes=1))
            assert sms_texts(sms_inbox, seen_sms) == sorted([
                (M1_PHONE, f"【矿安督办1】提醒：{first}，当前待确认。回复“1 1”确认收到。"),
                (COUNTY_PHONE, f"【矿安督办1】提醒：{first}，当前待确认。")])
            seen_sms = len(sms_inbox.snapshot())
            await advance(timedelta(minutes=49))
            await advance(timedelta(minutes=1))
            assert sms_texts(sms_inbox, seen_sms) == sorted([
                (M1_PHONE, f"【矿安督办1】{first}，未按时处置，已升级市级督办。回复“1 1”确认收到。"),
                (CITY_PHONE, f"【矿安督办1】{first}，未按时处置，已升级市级督办。")])
            assert hooks_seen(hook_inbox, seen_hooks) == [
                ("/city", "escalated", "1", "city"), ("/county", "reminder", "1", "county"),
                ("/m1", "escalated", "1", "city"), ("/m1", "reminder", "1", "county")]

            # --- the mine's duty phone replies through the API: acknowledged, escalation stops ---
            async with httpx.AsyncClient(base_url=api_url, trust_env=False) as client:
                reply = await client.post("/v1/alerting/sms/replies",
                                          json={"from": "+86 138-0000-0101", "text": "1 1", "id": "gw-1"},
                                          headers={"Authorization": f"Bearer {REPLY_SECRET}"})
            assert reply.status_code == 200, reply.text
            assert reply.json()["acknowledged"] == [1]
            seen_sms, seen_hooks = len(sms_inbox.snapshot()), len(hook_inbox.snapshot())
            await advance(timedelta(hours=3))
            state = await conn.fetchrow("SELECT state, level FROM cases WHERE id = 1")
            assert state is not None and tuple(state) == ("acknowledged", "city")
            assert [r["action"] for r in await conn.fetch(
                "SELECT action FROM case_history WHERE case_id = 1 ORDER BY id")] == [
                "open", "remind", "escalate", "acknowledge"]
            # The city, supervising now, hears of the acknowledgement; nobody hears of escalation.
            assert sms_texts(sms_inbox, seen_sms) == [(CITY_PHONE, f"【矿安督办1】{first}，状态变更为已确认。")]
            assert hooks_seen(hook_inbox, seen_hooks) == [("/city", "state_changed", "1", "city")]

            # --- the second event within 7 days: a shutdown order on the whole mine ---
            seen_sms, seen_hooks = len(sms_inbox.snapshot()), len(hook_inbox.snapshot())
            await asyncio.to_thread(publish_all, mqtt_url, [(topic, json.dumps(rise(FACE, e2, 1.25)).encode())])

            async def order_found() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM findings WHERE rule = 'shutdown_order'"))
            await wait_for("the shutdown order's finding", order_found)
            await alerting()
            cases = [tuple(r) for r in await conn.fetch(
                "SELECT id, rule, level, severity, state, title, order_id IS NOT NULL FROM cases ORDER BY id")]
            assert cases == [
                (1, "methane_exceedance", "city", "normal", "acknowledged", "11301回风隅角瓦斯超限", False),
                (2, "methane_exceedance", "county", "normal", "open", "11301工作面瓦斯超限", False),
                (3, "shutdown_order", "county", "red", "open", "全矿多次瓦斯超限停产整顿", True)]
            order = await conn.fetchrow("SELECT rule, start_ts, min_end_ts, state FROM orders")
            assert order is not None and tuple(order) == ("methane_repeat", e2, e2 + timedelta(hours=72), "active")
            assert sms_texts(sms_inbox, seen_sms) == sorted([
                (M1_PHONE, f"【矿安督办3】{MINE_NAME}：全矿多次瓦斯超限停产整顿（{local(e2)}起），已报县级督办。回复“1 3”确认收到。"),
                (COUNTY_PHONE, f"【矿安督办3】{MINE_NAME}：全矿多次瓦斯超限停产整顿（{local(e2)}起），已报县级督办。")])
            assert hooks_seen(hook_inbox, seen_hooks) == [("/county", "raised", "3", "county"),
                                                          ("/m1", "raised", "3", "county")]
            # The second event's own alarm is muted under the order it led to (kept as rows).
            await advance(timedelta(seconds=60))
            muted = await conn.fetch("SELECT DISTINCT case_id, last_error FROM notifications WHERE state = 'suppressed'")
            assert [tuple(r) for r in muted] == [(2, "inhibited")]
            assert await conn.fetchval("SELECT count(*) FROM notifications WHERE state NOT IN "
                                       "('delivered', 'suppressed')") == 0
            assert sms_inbox.rejected == 0 and hook_inbox.rejected == 0
    finally:
        rules.stop()
        await running
        stop_process(ingest)
        await conn.close()
