"""Cases from findings: one case per identity, re-evaluation, supersession, starting levels, orders."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.alerting.db.conftest import (
    M1_UNION,
    T0,
    Harness,
    act,
    history,
    insert_finding,
    insert_methane,
    insert_order,
    outbox,
    sms_text,
)

pytestmark = pytest.mark.integration


async def test_reevaluation_updates_the_same_case_and_a_higher_tier_escalates_it(harness: Harness) -> None:
    h = harness
    fid = await insert_methane(h.pool, start=T0 - timedelta(minutes=2), peak=1.4, tier="county")
    await h.tick()
    # The rules worker re-evaluates the same window twice: same identity, a higher peak.
    for peak, tier in ((1.8, "county"), (2.4, "city")):
        await h.pool.execute("UPDATE findings SET tier = $2, evidence = $3::jsonb, updated_at = now() WHERE id = $1",
                             fid, tier, json.dumps({"peak": peak}))
        await h.advance(timedelta(seconds=5))
    assert await h.pool.fetchval("SELECT count(*) FROM cases") == 1
    case = await h.pool.fetchrow("SELECT id, level, level_since FROM cases")
    assert (case["level"], case["level_since"]) == ("city", T0 + timedelta(seconds=10))
    assert [r[0] for r in await history(h, case["id"])] == ["open", "escalate"]
    assert await h.pool.fetchval("SELECT count(*) FROM findings WHERE case_synced_at IS DISTINCT FROM updated_at") == 0
    assert await h.tick() == 0  # nothing changed since: nothing to do


async def test_superseded_finding_hands_its_case_to_the_successor(harness: Harness) -> None:
    h = harness
    first = await insert_methane(h.pool, start=T0 - timedelta(minutes=5))
    await h.tick()
    case_id = await h.pool.fetchval("SELECT id FROM cases")
    # An earlier episode joins the event: its start moves, so a new identity supersedes the old.
    async with h.pool.acquire() as conn, conn.transaction():
        second = await conn.fetchval(
            "INSERT INTO findings (rule, mine_id, subject, start_ts, level, tier, ref_table, ref_id, evidence) "
            "SELECT rule, mine_id, subject, start_ts - interval '8 minutes', level, tier, ref_table, ref_id, evidence "
            "FROM findings WHERE id = $1 RETURNING id", first)
        await conn.execute("UPDATE findings SET state = 'superseded', superseded_by = $2, updated_at = now() "
                           "WHERE id = $1", first, second)
    await h.advance(timedelta(seconds=5))
    assert await h.pool.fetchval("SELECT count(*) FROM cases") == 1
    links = await h.pool.fetch("SELECT case_id, finding_id FROM case_findings ORDER BY finding_id")
    assert [tuple(r) for r in links] == [(case_id, second)]
    assert (await history(h, case_id))[-1][:3] == ("finding_superseded", "open", "open")


async def test_other_findings_start_where_routing_says_and_major_hazards_reach_the_workforce(harness: Harness) -> None:
    h = harness
    # (a person past their shift starts at the mine; integrity findings never do: test_routing.py)
    await insert_finding(h.pool, rule="overtime", subject="000101", start=T0, level="warning")
    await insert_finding(h.pool, rule="work_continued", subject="F11301", start=T0, level="major",
                         evidence={"label": "11301工作面"})
    await h.tick()
    cases = {r["rule"]: r for r in await h.pool.fetch("SELECT rule, level, severity, checklist::text FROM cases")}
    assert (cases["overtime"]["level"], cases["overtime"]["severity"]) == ("mine", "normal")
    assert (cases["work_continued"]["level"], cases["work_continued"]["severity"]) == ("city", "major")
    assert cases["work_continued"]["checklist"] == "[]"
    # A major hazard is not held back for grouping, and goes to the workforce too (双报告).
    raised = await outbox(h.pool, reason="raised")
    assert {r["receiver"] for r in raised} == {"m1-dispatch", "m1-scada", "m1-union", "ty-city"}
    union = [r for r in raised if r["target"] == M1_UNION]
    assert [sms_text(r) for r in union] == [
        "【矿安督办2】清徐县东于煤业有限公司：11301工作面超限后继续作业（2026-03-02 09:00起），已报市级督办。"]


async def test_methane_above_three_percent_is_urgent_at_province_level(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0, peak=3.4, level="power_off", tier="province")
    await h.tick()
    cases = {r["rule"]: tuple(r)[1:] for r in await h.pool.fetch(
        "SELECT rule, level, severity, checklist::text FROM cases ORDER BY id")}
    # The event's case carries the four measures; rules' high-value flag (peak >= 3 %) is a case
    # of its own for root-cause measures (rules.md §5), raised where routing says, no checklist.
    assert cases["methane_exceedance"][:2] == ("province", "red")
    assert cases["high_value_exceedance"] == ("province", "normal", "[]")
    # Red goes at once, to the mine and the province (English-speaking receiver), and takes the
    # flag's pending notification along in the same message.
    raised = await outbox(h.pool, reason="raised")
    assert {r["receiver"] for r in raised} == {"m1-dispatch", "m1-scada", "sx-province"}
    province_sms = [sms_text(r) for r in raised if r["receiver"] == "sx-province" and r["channel"] == "sms"]
    assert province_sms == ["(1/3)[Minewatch case 1 +1] 清徐县东于煤业有限公司: methane exceedance at"
                            "(2/3)11301回风隅角, peak 3.4%CH4 and 1 more (started 2026-03-02 09:00"
                            "(3/3)UTC+0800). Reported to province level."]


async def test_order_lifts_only_once_its_minimum_end_passed_and_it_is_verified(harness: Harness) -> None:
    h = harness
    e1 = await insert_methane(h.pool, start=T0 - timedelta(days=2), point="140100000001_01MN0001_T0004")
    e2 = await insert_methane(h.pool, start=T0 - timedelta(minutes=1))
    events = [r["ref_id"] for r in await h.pool.fetch("SELECT ref_id FROM findings WHERE id = ANY($1)", [e1, e2])]
    order_id, _ = await insert_order(h.pool, start=T0 - timedelta(minutes=1), min_end=T0 + timedelta(hours=71),
                                     events=events)
    await h.tick()
    case = await h.pool.fetchrow("SELECT id, rule, severity, order_id, order_min_end FROM cases WHERE order_id IS NOT NULL")
    assert (case["rule"], case["severity"], case["order_id"]) == ("shutdown_order", "red", order_id)
    assert case["order_min_end"] == T0 + timedelta(hours=71)
    cid = case["id"]
    # The order's red notification goes at once; the methane alarms it was ordered for are inhibited.
    order_sms = [sms_text(r) for r in await outbox(h.pool) if r["case_id"] == cid and r["receiver"] == "m1-dispatch"]
    assert order_sms == [f"【矿安督办{cid}】清徐县东于煤业有限公司：全矿多次瓦斯超限停产整顿（2026-03-02 08:59起），已报县级督办。"
                         f"回复“1 {cid}”确认收到。"]
    muted = await h.pool.fetch("SELECT DISTINCT case_id, last_error FROM notifications WHERE state = 'suppressed' "
                               "ORDER BY case_id")
    assert [tuple(r) for r in muted] == [(cid - 2, "inhibited"), (cid - 1, "inhibited")]

    await act(h, cid, "acknowledge", role="mine")
    await act(h, cid, "plan", role="mine", deadline=T0 + timedelta(hours=48))
    await h.advance(timedelta(hours=24))
    await act(h, cid, "submit", role="mine", comment="通风系统整改完成")
    await act(h, cid, "verify", role="county")
    await h.advance(timedelta(hours=24))
    assert await h.pool.fetchval("SELECT state FROM orders WHERE id = $1", order_id) == "active"  # before min_end
    await h.advance(timedelta(hours=23))
    order = await h.pool.fetchrow("SELECT state, lifted_at FROM orders WHERE id = $1", order_id)
    assert tuple(order) == ("lifted", T0 + timedelta(hours=71))
    assert (await history(h, cid))[-1][:3] == ("order_lifted", "verified", "verified")


async def test_order_past_minimum_end_awaits_verification_then_lifts_on_verify(harness: Harness) -> None:
    h = harness
    order_id, _ = await insert_order(h.pool, start=T0, min_end=T0 + timedelta(hours=72), events=[])
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases WHERE order_id = $1", order_id)
    await act(h, cid, "acknowledge", role="mine")
    await h.advance(timedelta(hours=72))
    assert await h.pool.fetchval("SELECT state FROM orders WHERE id = $1", order_id) == "awaiting_verification"
    assert "order_awaiting_verification" in [r[0] for r in await history(h, cid)]
    await act(h, cid, "plan", role="mine", deadline=T0 + timedelta(hours=80))
    await act(h, cid, "submit", role="mine", comment="整改完成")
    await act(h, cid, "verify", role="county")
    await h.advance(timedelta(seconds=1))  # the LiftOrder effect of verify is carried out
    assert await h.pool.fetchval("SELECT state FROM orders WHERE id = $1", order_id) == "lifted"


async def test_a_case_nobody_is_configured_to_hear_about_says_so(harness: Harness) -> None:
    h = harness
    # Mine 3's county (140181) has no receivers in the test routing; the mine level has.
    await insert_methane(h.pool, start=T0, mine="140100000003", point="140100000003_01MN0001_T0003",
                         level="power_off")
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases")
    assert {r["receiver"] for r in await outbox(h.pool)} == {"m3-dispatch"}
    assert (await history(h, cid))[-1][:4] == (
        "notification_unrouted", "open", "open", "no receiver is configured for mine 140100000003 at level(s) county")


async def test_a_withdrawn_finding_is_recorded_stops_escalation_and_lets_the_regulator_close(harness: Harness) -> None:
    from alerting.actions import apply_action
    from rules import store as rules_store

    h = harness
    fid = await insert_methane(h.pool, start=T0 - timedelta(minutes=1))
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases")
    # Late data (the readings were calibration gas) or a threshold correction: rules withdraws
    # the finding — superseded with no successor — with its own code.
    async with h.pool.acquire() as conn, conn.transaction():
        await rules_store.supersede(conn, fid, None)
    await h.advance(timedelta(seconds=5))
    hist = await history(h, cid)
    assert hist[-1][:3] == ("finding_withdrawn", "open", "open")
    assert await h.pool.fetchval("SELECT state FROM cases WHERE id = $1", cid) == "open"  # not closed by the machine
    # Nothing left to rectify: no reminder, no escalation, however long it waits.
    await h.advance(timedelta(hours=3))
    assert [r[0] for r in await history(h, cid)] == ["open", "finding_withdrawn"]
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "county"
    # The supervising regulator closes it, with a reason, without the four measures.
    async with h.pool.acquire() as conn:
        refused = await apply_action(conn, case_id=cid, action="close", actor="county.user", role="county",
                                     scope=frozenset({"140121"}), comment=None, deadline=None, now=h.clock.now())
        assert not refused.applied
    await act(h, cid, "close", role="county", comment="迟到数据表明为标校气体，非超限")
    assert await h.pool.fetchval("SELECT state FROM cases WHERE id = $1", cid) == "closed"


async def test_a_withdrawn_finding_that_holds_again_resumes_its_case(harness: Harness) -> None:
    from rules import store as rules_store

    h = harness
    fid = await insert_methane(h.pool, start=T0 - timedelta(minutes=1))
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases")
    async with h.pool.acquire() as conn, conn.transaction():
        await rules_store.supersede(conn, fid, None)
    await h.advance(timedelta(seconds=5))
    # The identity comes back (rules' upsert makes it live again): the case says so and its timers run.
    await h.pool.execute("UPDATE findings SET state = 'open', superseded_by = NULL, updated_at = now() WHERE id = $1",
                         fid)
    await h.advance(timedelta(seconds=5))
    assert [r[0] for r in await history(h, cid)] == ["open", "finding_withdrawn", "finding_restored"]
    await h.advance(timedelta(minutes=61))
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "city"
