"""The outbox: storm grouping, idempotent enqueueing, inhibition under an order, silences."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from alerting.outbox import flush_effects
from alerting.worker import load_all_templates
from tests.alerting.db.conftest import (
    M1_PHONE,
    MINE1,
    T0,
    Harness,
    insert_finding,
    insert_methane,
    mine_id,
    outbox,
    sms_text,
)
from tests.alerting.db.inbound_app import reply_app, send_reply

pytestmark = pytest.mark.integration


async def test_fifty_points_exceeding_within_a_minute_make_one_message_per_receiver(harness: Harness) -> None:
    h = harness
    points = [f"{MINE1}_01MN0001_S{i:04d}" for i in range(50)]
    # The rules worker commits in several batches over 50 s; the worker runs between them.
    for batch in range(5):
        for point in points[batch * 10:(batch + 1) * 10]:
            await insert_methane(h.pool, start=h.clock.now() - timedelta(seconds=5), point=point)
        await h.advance(timedelta(seconds=10))
    assert await h.pool.fetchval("SELECT count(*) FROM cases") == 50
    assert await outbox(h.pool) == []  # the first case opened at T0+10s: its window is open
    await h.advance(timedelta(seconds=20))
    rows = await outbox(h.pool)
    assert sorted((r["receiver"], r["channel"]) for r in rows) == [
        ("m1-dispatch", "sms"), ("m1-scada", "webhook"), ("qx-county", "sms"), ("qx-county", "webhook")]
    for r in rows:
        assert len(json.loads(r["body"])["case_ids"]) == 50
    mine_row = next(r for r in rows if r["target"] == M1_PHONE)
    # The message is named by its first member, one of the cases of the first batch.
    first = int(json.loads(mine_row["body"])["case_ids"][0])
    label = await h.pool.fetchval("SELECT f.subject FROM findings f JOIN case_findings cf ON cf.finding_id = f.id "
                                  "WHERE cf.case_id = $1", first)
    assert first <= 10
    assert json.loads(mine_row["body"])["segments"] == [
        f"(1/2)【矿安督办{first}等50件】清徐县东于煤业有限公司：{label}瓦斯超限，",
        f"(2/2)峰值1.6%CH4等50项（2026-03-02 08:59起），已报县级督办。回复“1 {first}”确认收到。"]
    assert await h.pool.fetchval("SELECT count(*) FROM notification_members") == 4 * 50
    assert h.metric("minewatch_alerting_notifications_suppressed_total", why="grouped") == 4 * 49
    # One reply to the grouped SMS acknowledges every case it carried.
    response = await send_reply(reply_app(h), M1_PHONE, f"1 {first}")
    assert response.status_code == 200, response.text
    assert len(response.json()["acknowledged"]) == 50
    assert await h.pool.fetchval("SELECT count(*) FROM cases WHERE state = 'acknowledged'") == 50


async def test_effects_are_enqueued_once_even_when_carried_out_again(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0, level="power_off")
    await h.tick()
    before = await outbox(h.pool)
    assert len(before) == 4
    # As if a worker died between writing the rows and marking the effects done, and a second
    # worker takes them up: the dedup keys already in the outbox stop a second enqueue.
    await h.pool.execute("UPDATE case_history SET effects_done_at = NULL")
    async with h.pool.acquire() as conn:
        result = await flush_effects(conn, now=h.clock.now(), routing=h.routing, templates=load_all_templates(),
                                     backoff=h.settings.backoff, group_window=h.settings.group_window, batch=100)
    assert (result.effects_done, result.enqueued) == (1, 0)
    after = await outbox(h.pool)
    assert [r["id"] for r in after] == [r["id"] for r in before]
    assert await h.pool.fetchval("SELECT count(*) FROM case_history WHERE effects_done_at IS NULL") == 0


async def test_an_order_mutes_new_methane_alarms_but_never_a_seal_breach(harness: Harness) -> None:
    h = harness
    async with h.pool.acquire() as conn:
        await conn.execute("INSERT INTO orders (mine_id, rule, pack, start_ts, min_end_ts) "
                           "VALUES ($1, 'methane_repeat', 'default', $2, $3)",
                           await mine_id(conn, MINE1), T0 - timedelta(hours=1), T0 + timedelta(hours=71))
    await insert_methane(h.pool, start=T0, level="power_off")
    await h.tick()
    await insert_finding(h.pool, rule="seal_breach", subject="140100000001S0001", start=T0, level="major",
                         evidence={"label": "副井井口"})
    await h.advance(timedelta(seconds=1))
    assert await h.pool.fetchval("SELECT count(*) FROM cases") == 2  # cases open either way
    sent = await outbox(h.pool)
    assert {json.loads(r["body"])["case_ids"][0] for r in sent} == {
        str(await h.pool.fetchval("SELECT id FROM cases WHERE rule = 'seal_breach'"))}
    assert [sms_text(r) for r in sent if r["target"] == M1_PHONE] == [
        "【矿安督办2】清徐县东于煤业有限公司：副井井口电子封条报警（2026-03-02 09:00起），已报县级督办。回复“1 2”确认收到。"]
    muted = await h.pool.fetch("SELECT receiver, last_error FROM notifications WHERE state = 'suppressed'")
    assert sorted(tuple(r) for r in muted) == [
        ("m1-dispatch", "inhibited"), ("m1-scada", "inhibited"), ("qx-county", "inhibited"), ("qx-county", "inhibited")]


async def test_a_silence_suppresses_the_messages_of_its_point_not_the_case(harness: Harness) -> None:
    h = harness
    point = "140100000001_01MN0001_T0003"
    async with h.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO silences (point_id, starts_at, ends_at, created_by, comment) "
            "SELECT id, $2, $3, 'county.user', '标校' FROM points WHERE code = $1",
            point, T0 - timedelta(minutes=5), T0 + timedelta(minutes=30))
    # Point scope (rules.md §2): two events, one per point.
    await insert_methane(h.pool, start=T0, point=point, level="power_off", scope="point")
    await insert_methane(h.pool, start=T0, point="140100000001_01MN0001_T0004", level="power_off", scope="point")
    await h.tick()
    assert await h.pool.fetchval("SELECT count(*) FROM cases") == 2
    sent = await outbox(h.pool)
    # Grouped, the message carries only the unsilenced point and names only its case.
    assert {tuple(json.loads(r["body"])["case_ids"]) for r in sent} == {("2",)}
    assert await h.pool.fetchval("SELECT count(*) FROM notifications WHERE state = 'suppressed' "
                                 "AND last_error = 'silenced' AND case_id = 1") == 4
