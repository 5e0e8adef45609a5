"""POST /v1/cases/{id}/measures and a methane case walked from open to closed through the API.

The case is raised by the real pipeline: readings stored as the ingest stores them, the rules
worker (burst) turning them into an exceedance event and its finding, the alerting case step
(`alerting.cases.sync_findings`) opening the case. Then only HTTP, with scoped tokens.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from alerting.cases import run_timers, sync_findings
from alerting.escalation import EscalationPolicy
from alerting.messages import load_templates
from alerting.routing import load_routing
from alerting.settings import sample_routing_path
from api.auth.tokens import create_token
from minewatch.timeutil import to_ns
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.api.conftest import NOW, auth
from tests.api.scenario import M3, PEPPER, World
from tests.rules.db.helpers import insert_readings, series

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

CORNER = f"{M3}_01MN0001_T0003"  # 古交 屯兰: 11301回风隅角, alarm at 1.0 %
FACE = f"{M3}_01MN0001_T0004"  # 11301工作面
LATER = (NOW + timedelta(days=7)).isoformat()
MEASURES = ("power_off_evacuate", "analyse_cause", "stop_rectify", "hold_accountable")


async def _raise_case(db: str, pool: asyncpg.Pool, point: str, start_ago: timedelta) -> int:
    """Readings of one methane point rising to 1.3 % for 3 min, starting `start_ago` before NOW,
    through the rules worker and the case step at NOW; returns the id of the case opened."""
    start = to_ns(NOW - start_ago)
    conn = await asyncpg.connect(db)
    try:
        await insert_readings(conn, series(point, start, [0.4] * 10 + [1.3] * 6 + [0.4] * 10))
    finally:
        await conn.close()
    await RuleWorker(db, builtin_pack("default")).run(burst=True)
    before = set(await pool.fetchval("SELECT coalesce(array_agg(id), '{}') FROM cases"))
    async with pool.acquire() as conn:
        while await sync_findings(conn, now=NOW, routing=load_routing(sample_routing_path()),
                                  templates=load_templates("zh"), batch=200):
            pass
    new = await pool.fetch("SELECT id FROM cases WHERE rule = 'methane_exceedance' AND NOT (id = ANY($1::bigint[]))",
                           list(before))
    assert len(new) == 1, new
    return int(new[0]["id"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def m3_token(db: str, world: World) -> dict[str, str]:
    """The seeded world has no token for mine 3: its own users' token."""
    conn = await asyncpg.connect(db)
    try:
        _, token = await create_token(conn, name="mine3-user", role="mine", scope=[M3], pepper=PEPPER,
                                      now=NOW - timedelta(days=1))
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def methane_case(db: str, pool: asyncpg.Pool, world: World) -> int:
    return await _raise_case(db, pool, CORNER, timedelta(minutes=20))


async def _act(client: httpx.AsyncClient, headers: dict[str, str], cid: int, action: str, **extra: str
               ) -> httpx.Response:
    return await client.post(f"/v1/cases/{cid}/actions", json={"action": action, **extra}, headers=headers)


async def _measure(client: httpx.AsyncClient, headers: dict[str, str], cid: int, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/cases/{cid}/measures", json=body, headers=headers)


def _ok(r: httpx.Response, state: str) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["state"] == state
    return body


def _problem(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    for word in words:
        assert word in r.json()["detail"], r.json()


async def test_a_methane_case_walks_from_open_to_closed_with_its_four_measures(
        client: httpx.AsyncClient, world: World, m3_token: dict[str, str], methane_case: int) -> None:
    cid, mine, county = methane_case, m3_token, auth(world, "county_gj")
    case = (await client.get(f"/v1/cases/{cid}", headers=county)).json()
    # Raised by the pipeline: a 1.3 % peak is the county's (rules.md §5); nothing recorded yet.
    assert (case["mine"], case["rule"], case["level"], case["state"], case["late_report"]) == (
        M3, "methane_exceedance", "county", "open", False)
    assert [f["rule"] for f in case["findings"]] == ["methane_exceedance"]
    assert [(i["measure"], i["recorded"]) for i in case["checklist"]] == [(m, False) for m in MEASURES]

    # Wrong roles: the regulator does not acknowledge for the mine, the mine never verifies or
    # closes its own case, and another mine's users do not even see it.
    _problem(await _act(client, county, cid, "acknowledge"), 403, "only the mine's own users")
    _problem(await _act(client, mine, cid, "verify"), 403, "supervising regulator")
    r = await _act(client, auth(world, "mine1"), cid, "acknowledge")
    assert r.status_code == 404, r.text
    _ok(await _act(client, mine, cid, "acknowledge", comment="收到"), "acknowledged")
    _ok(await _act(client, mine, cid, "plan", comment="加强通风", deadline=LATER), "rectifying")
    _ok(await _act(client, mine, cid, "submit", comment="局扇已更换"), "rectified")
    # The regulator refuses a verification while measures are missing: all four are named.
    _problem(await _act(client, county, cid, "verify"), 409,
             "missing: power_off_evacuate, analyse_cause, stop_rectify, hold_accountable")
    _ok(await _act(client, county, cid, "reject", comment="四项措施未落实", deadline=LATER), "rectifying")

    done_at = NOW - timedelta(minutes=15)
    for measure in MEASURES[:3]:
        _ok(await _measure(client, mine, cid, measure=measure, comment=f"已落实 {measure}",
                                  done_at=done_at.isoformat()), "rectifying")
    _ok(await _act(client, mine, cid, "submit", comment="四项措施已落实三项"), "rectified")
    _problem(await _act(client, county, cid, "verify"), 409, "missing: hold_accountable")
    # A measure may be recorded in any state before closing; done_at defaults to now.
    _ok(await _measure(client, mine, cid, measure="hold_accountable", comment="对值班员罚款"), "rectified")
    _ok(await _act(client, county, cid, "verify"), "verified")
    _problem(await _act(client, mine, cid, "close", comment="自行销号"), 403)
    closed = _ok(await _act(client, county, cid, "close", comment="销号"), "closed")

    stamp = NOW.isoformat().replace("+00:00", "Z")
    checklist = {i["measure"]: i for i in closed["checklist"]}
    assert checklist["analyse_cause"] == {
        "measure": "analyse_cause", "recorded": True, "by": "mine3-user", "at": stamp,
        "done_at": done_at.isoformat().replace("+00:00", "Z"), "note": "已落实 analyse_cause", "by_data": False,
        "data_verdict": None}
    assert (checklist["hold_accountable"]["done_at"], checklist["hold_accountable"]["note"]) == (stamp, "对值班员罚款")
    # Measure 1 carries the data's verdict beside the person's word; no rule has judged it yet.
    assert checklist["power_off_evacuate"]["data_verdict"] == {
        "power_off": {"status": "not_checked", "rule": "power_off_failure", "checked_at": None, "finding_id": None,
                      "detail": None},
        "evacuation": {"status": "not_checked", "rule": "work_continued", "checked_at": None, "finding_id": None,
                       "detail": None}}
    assert [(h["action"], h["actor"], h["role"], h["from_state"], h["to_state"]) for h in closed["history"]] == [
        ("open", "minewatch", "system", None, "open"),
        ("acknowledge", "mine3-user", "mine", "open", "acknowledged"),
        ("plan", "mine3-user", "mine", "acknowledged", "rectifying"),
        ("submit", "mine3-user", "mine", "rectifying", "rectified"),
        ("reject", "county_gj-user", "county", "rectified", "rectifying"),
        *[("measure", "mine3-user", "mine", "rectifying", "rectifying")] * 3,
        ("submit", "mine3-user", "mine", "rectifying", "rectified"),
        ("measure", "mine3-user", "mine", "rectified", "rectified"),
        ("verify", "county_gj-user", "county", "rectified", "verified"),
        ("close", "county_gj-user", "county", "verified", "closed")]
    lines = [h for h in closed["history"] if h["action"] == "measure"]
    assert [(h["comment"], h["detail"]["measure"]) for h in lines] == [
        *[(f"已落实 {m}", m) for m in MEASURES[:3]], ("对值班员罚款", "hold_accountable")]
    assert lines[0]["detail"]["done_at"] == done_at.isoformat() and lines[3]["detail"]["done_at"] == NOW.isoformat()

    # Closed: nothing more is recorded, no action is taken.
    _problem(await _measure(client, mine, cid, measure="analyse_cause", comment="again"), 409, "closed")
    _problem(await _act(client, mine, cid, "acknowledge"), 409)
    after = (await client.get(f"/v1/cases/{cid}", headers=county)).json()
    assert after == closed


async def test_measure_refusals(client: httpx.AsyncClient, world: World, db: str, pool: asyncpg.Pool,
                                m3_token: dict[str, str]) -> None:
    cid = await _raise_case(db, pool, FACE, timedelta(hours=3))
    before = (await client.get(f"/v1/cases/{cid}", headers=auth(world, "admin"))).json()
    good = {"measure": "analyse_cause", "comment": "局部通风机故障"}
    # Regulators and admin see the case but never record a measure: 403.
    for label in ("county_gj", "city", "province", "admin"):
        _problem(await _measure(client, auth(world, label), cid, **good), 403, "only the mine's own users")
    # Another mine's users and another county do not even see it: 404, as for every read.
    for label in ("mine1", "mine2", "county_qx"):
        r = await _measure(client, auth(world, label), cid, **good)
        assert r.status_code == 404 and r.json()["type"] == "https://minewatch.dev/problems/not-found", r.text
    r = await client.post("/v1/cases/999999999/measures", json=good, headers=m3_token)
    assert r.status_code == 404
    # The request itself: unknown measure, a time in the future or without an offset, stray keys.
    future = (NOW + timedelta(seconds=1)).isoformat()
    for body, words in (({"measure": "pray"}, ("measure",)),
                        ({**good, "done_at": future}, ("in the future",)),
                        ({**good, "done_at": "2026-01-01T08:00:00"}, ()),
                        ({**good, "extra": 1}, ()),
                        ({**good, "comment": "a\u0000b"}, ()),
                        ({"comment": "no measure"}, ())):
        r = await _measure(client, m3_token, cid, **body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert all(w in r.text for w in words), r.text
    # Not a methane case: no checklist to record on.
    r = await _measure(client, auth(world, "mine2"), world.cases["m2_rectified"], **good)
    _problem(r, 409, "only methane cases")
    assert (await client.get(f"/v1/cases/{cid}", headers=auth(world, "admin"))).json() == before  # nothing written
    # done_at exactly now is allowed, and recording again replaces the entry (history keeps both).
    _ok(await _measure(client, m3_token, cid, **good, done_at=NOW.isoformat()), "open")
    r = await _measure(client, m3_token, cid, measure="analyse_cause", comment="更正：瓦斯涌出异常")
    item = r.json()["checklist"][1]
    assert (item["recorded"], item["note"]) == (True, "更正：瓦斯涌出异常")
    lines = [h for h in r.json()["history"] if h["action"] == "measure"]
    assert [h["detail"]["replaces"] for h in lines] == [False, True]


async def test_a_two_month_old_backfill_opens_a_late_report_that_does_not_escalate(
        client: httpx.AsyncClient, world: World, db: str, pool: asyncpg.Pool) -> None:
    """Issue 14 point 5 through the real pipeline: readings two months old arrive today."""
    point = f"{M3}_01MN0001_T0005"
    cid = await _raise_case(db, pool, point, timedelta(days=61))
    county = auth(world, "county_gj")
    case = (await client.get(f"/v1/cases/{cid}", headers=county)).json()
    assert (case["state"], case["level"], case["late_report"]) == ("open", "county", True)
    listed = (await client.get("/v1/cases", params={"mine": M3, "state": "open"}, headers=county)).json()["items"]
    assert {c["id"]: c["late_report"] for c in listed}[cid] is True
    opened = case["history"][0]
    assert opened["detail"]["late_report"] is True and opened["detail"]["found_after_s"] > 60 * 86400
    # Today's clock, hours past any ack window: nothing escalates it.
    async with pool.acquire() as conn:
        await run_timers(conn, now=NOW + timedelta(hours=6), policy=EscalationPolicy())
    after = (await client.get(f"/v1/cases/{cid}", headers=county)).json()
    assert after["level"] == "county"
    assert [h["action"] for h in after["history"]] == ["open"]
