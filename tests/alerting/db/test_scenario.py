"""Acceptance: a scripted methane scenario, end to end on a frozen clock and real receivers."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.alerting.db.conftest import (
    CITY_PHONE,
    COUNTY_PHONE,
    M1_PHONE,
    T0,
    Harness,
    insert_methane,
    outbox,
    sms_text,
)
from tests.alerting.db.inbound_app import reply_app, send_reply

pytestmark = pytest.mark.integration

MINE_NAME = "清徐县东于煤业有限公司"


async def test_methane_case_is_raised_reminded_escalated_and_acknowledged_by_sms(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0 - timedelta(seconds=30), peak=1.6, tier="county")

    # The rules worker committed a 1.6 % event: one case at county level, four measures open.
    assert await h.tick() > 0
    case = await h.pool.fetchrow("SELECT * FROM cases")
    assert (case["level"], case["severity"], case["state"], case["title"]) == (
        "county", "normal", "open", "11301回风隅角瓦斯超限")
    assert [i["recorded"] for i in json.loads(case["checklist"])] == [False] * 4
    cid = case["id"]
    # A normal-severity alarm waits out its group window (a storm would join it).
    assert await outbox(h.pool) == []

    await h.advance(timedelta(seconds=60))
    raised = await outbox(h.pool, reason="raised")
    assert sorted((r["receiver"], r["channel"]) for r in raised) == [
        ("m1-dispatch", "sms"), ("m1-scada", "webhook"), ("qx-county", "sms"), ("qx-county", "webhook")]
    texts = {r["target"]: sms_text(r) for r in raised if r["channel"] == "sms"}
    assert texts == {
        # The event started 30 s before T0 (01:00 UTC): 08:59 in Shanghai, the mine's zone.
        M1_PHONE: f"(1/2)【矿安督办{cid}】{MINE_NAME}：11301回风隅角瓦斯超限，峰值1.6%CH4（2026-03-02 08:59起），"
                  f"(2/2)已报县级督办。回复“1 {cid}”确认收到。",
        COUNTY_PHONE: f"【矿安督办{cid}】{MINE_NAME}：11301回风隅角瓦斯超限，峰值1.6%CH4（2026-03-02 08:59起），已报县级督办。",
    }
    assert await h.deliver() == 4
    seen = h.server.seen
    assert sorted(b["mobile"] for b in seen.sms) == [M1_PHONE, M1_PHONE, COUNTY_PHONE]  # the mine's in two segments
    county_hook = [b for p, _, b in seen.requests if p == "/hook/county"]
    assert [(b["reason"], b["case"]["id"], b["case"]["level"]) for b in county_hook] == [("raised", str(cid), "county")]

    # Ten minutes without an answer: the mine and the county are reminded.
    await h.advance(timedelta(minutes=9))
    await h.advance(timedelta(minutes=1))
    reminders = await outbox(h.pool, reason="reminder")
    assert {r["receiver"] for r in reminders} == {"m1-dispatch", "m1-scada", "qx-county"}
    assert {sms_text(r) for r in reminders if r["target"] == M1_PHONE} == {
        f"(1/2)【矿安督办{cid}】提醒：{MINE_NAME}：11301回风隅角瓦斯超限，峰值1.6%CH4（2026-03-02 08:59起），"
        f"(2/2)当前待确认。回复“1 {cid}”确认收到。"}

    # The hour-long ack window elapses at county level: the city takes over, the mine is told.
    await h.advance(timedelta(minutes=49))  # T0 + 60 min
    await h.advance(timedelta(minutes=1))
    case = await h.pool.fetchrow("SELECT level, level_since FROM cases WHERE id = $1", cid)
    assert (case["level"], case["level_since"]) == ("city", T0 + timedelta(minutes=60))
    escalated = await outbox(h.pool, reason="escalated")
    assert sorted((r["receiver"], r["level"]) for r in escalated) == [
        ("m1-dispatch", "city"), ("m1-scada", "city"), ("ty-city", "city"), ("ty-city", "city")]
    assert {r["target"]: sms_text(r) for r in escalated if r["channel"] == "sms"} == {
        M1_PHONE: f"(1/2)【矿安督办{cid}】{MINE_NAME}：11301回风隅角瓦斯超限，峰值1.6%CH4（2026-03-02 08:59起），"
                  f"(2/2)未按时处置，已升级市级督办。回复“1 {cid}”确认收到。",
        CITY_PHONE: f"(1/2)【矿安督办{cid}】{MINE_NAME}：11301回风隅角瓦斯超限，峰值1.6%CH4（2026-03-02 08:59起），"
                    f"(2/2)未按时处置，已升级市级督办。",
    }
    await h.deliver()
    assert [b["case"]["level"] for p, _, b in seen.requests if p == "/hook/city"] == ["city"]

    # The mine's duty phone answers the SMS: the case is acknowledged, escalation stops.
    response = await send_reply(reply_app(h), "+86 138-0000-0101", f"1 {cid}")
    assert response.status_code == 200, response.text
    assert response.json()["acknowledged"] == [cid]
    await h.advance(timedelta(hours=3))
    await h.advance(timedelta(minutes=1))
    case = await h.pool.fetchrow("SELECT state, level, acknowledged_at FROM cases WHERE id = $1", cid)
    assert (case["state"], case["level"], case["acknowledged_at"]) == ("acknowledged", "city", T0 + timedelta(minutes=61))
    history = await h.pool.fetch("SELECT actor, role, action, from_state, to_state FROM case_history "
                                 "WHERE case_id = $1 ORDER BY id", cid)
    assert [tuple(r) for r in history] == [
        ("minewatch", "system", "open", None, "open"),
        ("minewatch", "system", "remind", "open", "open"),
        ("minewatch", "system", "escalate", "open", "open"),
        (f"sms:{M1_PHONE}", "mine", "acknowledge", "open", "acknowledged"),
    ]
    # The city (supervising now) hears of the acknowledgement; nobody hears of an escalation.
    assert sorted(r["receiver"] for r in await outbox(h.pool, reason="state_changed")) == ["ty-city", "ty-city"]
    assert len(await outbox(h.pool, reason="escalated")) == 4
    await h.deliver()
    assert await h.pool.fetchval("SELECT count(*) FROM notifications WHERE state <> 'delivered'") == 0
    await h.cases.step()
    async with h.pool.acquire() as conn:
        await h.metrics.refresh(conn, now=h.clock.now())
    assert h.metric("minewatch_alerting_cases", state="acknowledged", level="city") == 1
    assert h.metric("minewatch_alerting_notifications_total", channel="sms", outcome="delivered") == 7
