"""Escalation and reminders on a frozen clock: ack windows, the ladder's top, missed deadlines."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.alerting.db.conftest import (
    PROVINCE_PHONE,
    T0,
    Harness,
    act,
    history,
    insert_methane,
    outbox,
    sms_text,
)

pytestmark = pytest.mark.integration


async def test_unacknowledged_urgent_case_climbs_the_ladder_and_stops_at_province(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0, peak=1.7, level="power_off", tier="county")
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases")
    # A power-off-level case is red: 15 minutes per level, mine → county → city → province.
    for minutes, level in ((15, "city"), (15, "province"), (15, "province"), (60, "province")):
        await h.advance(timedelta(minutes=minutes))
        assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == level
    escalations = [r for r in await history(h, cid) if r[0] == "escalate"]
    assert [r[3] for r in escalations] == [
        "not acknowledged within 15 min at county level", "not acknowledged within 15 min at city level"]
    escalated = await outbox(h.pool, reason="escalated")
    assert sorted({(r["receiver"], r["level"]) for r in escalated}) == [
        ("m1-dispatch", "city"), ("m1-dispatch", "province"), ("m1-scada", "city"), ("m1-scada", "province"),
        ("sx-province", "province"), ("ty-city", "city")]
    assert [sms_text(r) for r in escalated if r["target"] == PROVINCE_PHONE] == [
        f"(1/3)[Minewatch case {cid}] 清徐县东于煤业有限公司: methane exceedance at 11301回风隅角,"
        "(2/3)peak 1.7%CH4 (started 2026-03-02 09:00 UTC+0800). Not handled in(3/3)time; escalated to province level."]
    # At the top nothing escalates any more; the mine and the province are reminded instead.
    reminders = {r["receiver"] for r in await outbox(h.pool, reason="reminder")}
    assert reminders == {"m1-dispatch", "m1-scada", "sx-province"}


async def test_missed_rectification_deadline_escalates_until_evidence_is_in(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0)
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases")
    await act(h, cid, "acknowledge", role="mine")
    await act(h, cid, "plan", role="mine", comment="加强通风", deadline=T0 + timedelta(hours=4))
    await h.advance(timedelta(hours=3, minutes=59))
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "county"
    await h.advance(timedelta(minutes=1))
    row = await h.pool.fetchrow("SELECT level, state FROM cases WHERE id = $1", cid)
    assert tuple(row) == ("city", "rectifying")
    last = (await history(h, cid))[-1]
    assert last[:3] == ("escalate", "rectifying", "rectifying")
    assert "rectification deadline 2026-03-02T05:00:00+00:00 passed without evidence" in last[3]
    # Evidence stops the deadline clock: no further escalation.
    await act(h, cid, "submit", role="mine", comment="瓦斯抽采系统已整改")
    await h.advance(timedelta(hours=5))
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "city"
    assert [r[0] for r in await history(h, cid)].count("escalate") == 1


async def test_a_tick_that_finds_nothing_due_writes_nothing(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0)
    await h.tick()
    before = await h.pool.fetchval("SELECT count(*) FROM case_history")
    for _ in range(3):
        await h.advance(timedelta(minutes=1))  # reminders are due only after 10 minutes
    assert await h.pool.fetchval("SELECT count(*) FROM case_history") == before
