"""A methane case walked through the console from open to closed, by the mine and the county,
with each refusal the API would give explained in the page (the same service, the same reasons)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx
import pytest

from alerting.checklist import MEASURES
from tests.api.scenario import World
from tests.console.conftest import NOW, csrf_of

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _post(c: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    page = await c.get("/console/")
    return await c.post(path, data=data, headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"})


async def test_walk_a_methane_case(clients: dict[str, httpx.AsyncClient], world: World, pool: asyncpg.Pool) -> None:
    cid = world.cases["m1_open"]
    mine, county = clients["mine1"], clients["county_qx"]
    act = f"/console/cases/{cid}/actions"

    r = await _post(county, act, {"action": "acknowledge"})
    assert r.status_code == 403 and "无权办理（403）" in r.text and "only the mine&#39;s own users" in r.text
    r = await _post(mine, act, {"action": "verify"})
    assert r.status_code == 403 and "supervising regulator" in r.text

    assert (await _post(mine, act, {"action": "acknowledge"})).status_code == 200
    r = await _post(mine, act, {"action": "plan", "comment": "ventilate"})
    assert r.status_code == 422 and "plan needs a deadline" in r.text
    deadline = (NOW + timedelta(days=3)).astimezone().strftime("%Y-%m-%dT%H:%M")
    r = await _post(mine, act, {"action": "plan", "deadline": deadline, "comment": "ventilate F11301"})
    assert r.status_code == 200 and "整改中" in r.text
    r = await _post(mine, act, {"action": "submit", "comment": "fan repaired, readings normal"})
    assert r.status_code == 200
    # rules.md §4: verification is refused while a measure is missing (and so closing is too).
    r = await _post(county, act, {"action": "verify"})
    assert r.status_code == 409 and "four measures" in r.text
    r = await _post(county, f"/console/cases/{cid}/measures", {"measure": "analyse_cause"})
    assert r.status_code == 403 and "only the mine&#39;s own users record" in r.text
    for m in MEASURES:
        r = await _post(mine, f"/console/cases/{cid}/measures", {"measure": m.value, "note": f"done {m.value}"})
        assert r.status_code == 200, r.text
    r = await _post(county, act, {"action": "verify"})
    assert r.status_code == 200
    r = await _post(county, act, {"action": "close", "comment": "all four measures in place"})
    assert r.status_code == 200 and "已销号" in r.text

    history = await pool.fetch("SELECT actor, action, to_state FROM case_history WHERE case_id = $1 ORDER BY id", cid)
    assert [h["action"] for h in history] == ["acknowledge", "plan", "submit", *["measure"] * 4, "verify", "close"]
    assert {h["actor"] for h in history} == {"mine1", "county_qx"}
    # the API shows the same case the console left
    row = await pool.fetchrow("SELECT state, checklist FROM cases WHERE id = $1", cid)
    assert row["state"] == "closed" and '"recorded": true' in row["checklist"]
    page = await county.get(f"/console/cases/{cid}")
    assert "可办理的操作" in page.text and "当前状态下您无可办理的操作" in page.text
