"""Cases of the personnel findings (rules.md §7, §4 evacuation) with the real case worker.

restricted_area, seal_breach and work_continued, and a major over_capacity, open at the
regulator and tell the mine too (the major ones its workforce channel as well, 双报告); a
warning over_capacity and overtime open at the mine; an overtime the rules worker withdraws
(a late shaft read shows the card came up in time) tells its case."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from rules import store as rules_store
from tests.alerting.db.conftest import M1_UNION, T0, Harness, history, insert_finding, outbox

pytestmark = pytest.mark.integration


async def test_personnel_cases_open_where_rules_md_sends_them(harness: Harness) -> None:
    h = harness
    start = T0 - timedelta(seconds=30)
    made = {
        "restricted_area": ("C0042", "warning"),
        "seal_breach": ("C0043", "major"),
        "work_continued": ("F11301", "major"),
        "over_capacity": ("A11301", "major"),
        "overtime": ("C0044", "warning"),
    }
    for rule, (subject, level) in made.items():
        await insert_finding(h.pool, rule=rule, subject=subject, start=start, level=level,
                             evidence={"card": subject} if subject.startswith("C") else {})
    await insert_finding(h.pool, rule="over_capacity", subject="A11302", start=start, level="warning")
    await h.tick()
    await h.advance(timedelta(minutes=2))  # past the grouping window
    cases = {(r["rule"], r["subject"]): (r["level"], r["severity"]) for r in await h.pool.fetch(
        "SELECT c.rule, f.subject, c.level, c.severity FROM cases c JOIN case_findings cf ON cf.case_id = c.id "
        "JOIN findings f ON f.id = cf.finding_id")}
    assert cases == {
        ("restricted_area", "C0042"): ("county", "red"),  # immediate, though a warning
        ("seal_breach", "C0043"): ("county", "major"),
        ("work_continued", "F11301"): ("city", "major"),  # the test routing starts it at the city
        ("over_capacity", "A11301"): ("county", "major"),  # 超定员组织生产: the regulator's
        ("over_capacity", "A11302"): ("county", "normal"),  # a warning: the test routing's default
        ("overtime", "C0044"): ("mine", "normal"),
    }
    sent = await outbox(h.pool, reason="raised")
    by_case: dict[str, set[str]] = {}
    for r in sent:  # a grouped notification names its cases in its body
        for c in json.loads(r["body"]).get("case_ids", [r["case_id"]]):
            by_case.setdefault(str(c), set()).add(r["receiver"])
    ids = {(r["rule"], r["subject"]): str(r["id"]) for r in await h.pool.fetch(
        "SELECT c.id, c.rule, f.subject FROM cases c JOIN case_findings cf ON cf.case_id = c.id "
        "JOIN findings f ON f.id = cf.finding_id")}
    for key in (("restricted_area", "C0042"), ("seal_breach", "C0043"), ("over_capacity", "A11301")):
        told = by_case.get(ids[key], set())
        assert {"m1-dispatch", "qx-county"} <= told, (key, told)  # the regulator as well as the mine
    for key in (("seal_breach", "C0043"), ("work_continued", "F11301"), ("over_capacity", "A11301")):
        assert "m1-union" in by_case.get(ids[key], set()), key  # 双报告: the workforce channel too
    assert "m1-union" not in by_case.get(ids[("restricted_area", "C0042")], set())
    assert M1_UNION  # the workforce's phone of the test routing


@pytest.mark.parametrize(("rule", "at_once"), [("restricted_area", True), ("over_capacity", False)])
async def test_a_restricted_area_entry_is_sent_at_once_though_a_warning(harness: Harness, rule: str,
                                                                      at_once: bool) -> None:
    """rules.md §7: a restricted-area entry is raised immediately. Its finding is a `warning`,
    yet its notifications must not wait out the group window as a warning over_capacity does
    (a storm of those would join one message)."""
    h = harness
    await insert_finding(h.pool, rule=rule, subject="C0042" if rule == "restricted_area" else "A11302",
                         start=T0 - timedelta(seconds=30), level="warning", evidence={})
    await h.tick()
    receivers = {r["receiver"] for r in await outbox(h.pool, reason="raised")}
    assert receivers == ({"m1-dispatch", "m1-scada", "qx-county"} if at_once else set())
    await h.advance(timedelta(minutes=2))
    assert {r["receiver"] for r in await outbox(h.pool, reason="raised")} >= {"m1-dispatch", "qx-county"}


async def test_a_withdrawn_overtime_tells_its_case(harness: Harness) -> None:
    h = harness
    fid = await insert_finding(h.pool, rule="overtime", subject="C0044", start=T0 - timedelta(minutes=1),
                               level="warning", evidence={"card": "C0044"})
    await h.tick()
    cid = await h.pool.fetchval("SELECT id FROM cases")
    assert await h.pool.fetchval("SELECT level FROM cases WHERE id = $1", cid) == "mine"
    # The rules worker withdraws it: a late shaft read before entry + 10 h (superseded, no successor).
    async with h.pool.acquire() as conn, conn.transaction():
        await rules_store.supersede(conn, fid, None)
    await h.advance(timedelta(seconds=5))
    assert [r[0] for r in await history(h, cid)] == ["open", "finding_withdrawn"]
