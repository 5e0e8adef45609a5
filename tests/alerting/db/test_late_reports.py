"""Old findings are not emergencies (issue 14 point 5): a finding already older than the
late-report age when first found opens a late-report case that is routed but never escalated
on the ack window; a fresh one escalates as before; both texts say when the finding started."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.cases import LATE_REPORT_AFTER, is_late_report
from tests.alerting.db.conftest import (
    COUNTY_PHONE,
    T0,
    Harness,
    history,
    insert_methane,
    outbox,
    sms_text,
)

pytestmark = pytest.mark.integration


def test_late_means_strictly_older_than_the_age_when_first_found() -> None:
    assert timedelta(hours=24) == LATE_REPORT_AFTER
    assert not is_late_report(T0 - LATE_REPORT_AFTER, T0, LATE_REPORT_AFTER)
    assert is_late_report(T0 - LATE_REPORT_AFTER - timedelta(microseconds=1), T0, LATE_REPORT_AFTER)
    assert not is_late_report(T0, T0, LATE_REPORT_AFTER)


async def test_a_backfill_two_months_old_opens_a_late_report_that_does_not_escalate(harness: Harness) -> None:
    h = harness
    old = T0 - timedelta(days=61)  # 2025-12-31 01:00 UTC: 09:00 in Shanghai
    await insert_methane(h.pool, start=old, peak=1.7, level="power_off", tier="county")
    await h.tick()
    case = await h.pool.fetchrow("SELECT id, level, severity, state, late_report FROM cases")
    cid = case["id"]
    # Recorded and routed like any case (a power-off level is red) ...
    assert (case["level"], case["severity"], case["state"], case["late_report"]) == ("county", "red", "open", True)
    raised = await outbox(h.pool, reason="raised")
    assert {r["receiver"] for r in raised} >= {"m1-dispatch", "qx-county"}
    # ... its text carries the old date, so nobody reads it as happening now ...
    assert [sms_text(r) for r in raised if r["target"] == COUNTY_PHONE] == [
        f"【矿安督办{cid}】清徐县东于煤业有限公司：11301回风隅角瓦斯超限，峰值1.7%CH4（2025-12-31 09:00起），已报县级督办。"]
    # ... and today's clock does not escalate it: a day later it is still at county level,
    # reminded once (daily), never escalated.
    for _ in range(24 * 4):
        await h.advance(timedelta(minutes=15))
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "county"
    assert [r[0] for r in await history(h, cid)] == ["open", "remind"]
    assert await outbox(h.pool, reason="escalated") == []
    opened = await h.pool.fetchval("SELECT detail FROM case_history WHERE case_id = $1 AND action = 'open'", cid)
    assert '"late_report": true' in opened


async def test_a_fresh_finding_still_escalates_on_its_window(harness: Harness) -> None:
    h = harness
    await insert_methane(h.pool, start=T0 - timedelta(hours=23, minutes=59), peak=1.7, level="power_off",
                         tier="county")
    await h.tick()
    cid, late = await h.pool.fetchrow("SELECT id, late_report FROM cases")
    assert late is False  # under a day old when found: current
    await h.advance(timedelta(minutes=15))
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "city"
    assert [r[0] for r in await history(h, cid)] == ["open", "escalate"]
