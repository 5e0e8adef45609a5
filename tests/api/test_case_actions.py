"""POST /v1/cases/{id}/actions and alerting.actions.apply_action: roles, states, input, history and effects."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import httpx
import pytest

from alerting.actions import CaseNotFound, apply_action, effects_from_json
from alerting.lifecycle import Allowed, LiftOrder, Notify, Refused, StopEscalation
from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LATER = (NOW + timedelta(days=7)).isoformat()


async def _act(client: httpx.AsyncClient, world: World, label: str, case: str, action: str,
               **extra: str) -> httpx.Response:
    return await client.post(f"/v1/cases/{world.cases[case]}/actions", json={"action": action, **extra},
                             headers=auth(world, label))


async def test_full_lifecycle_of_an_order_case(client: httpx.AsyncClient, world: World, pool: asyncpg.Pool) -> None:
    # m1_order starts in rectifying at county level.
    steps = [("mine1", "submit", {"comment": "ventilation fixed, photos attached"}, "rectified"),
             ("county_qx", "reject", {"comment": "photos missing", "deadline": LATER}, "rectifying"),
             ("mine1", "submit", {"comment": "photos attached now"}, "rectified"),
             ("county_qx", "verify", {}, "verified"),
             ("county_qx", "close", {"comment": "done"}, "closed")]
    for label, action, extra, state in steps:
        r = await _act(client, world, label, "m1_order", action, **extra)
        assert r.status_code == 200, (action, r.text)
        assert r.json()["state"] == state
    d = r.json()
    assert [(h["action"], h["from_state"], h["to_state"], h["actor"], h["role"]) for h in d["history"]] == [
        ("submit", "rectifying", "rectified", "mine1-user", "mine"),
        ("reject", "rectified", "rectifying", "county_qx-user", "county"),
        ("submit", "rectifying", "rectified", "mine1-user", "mine"),
        ("verify", "rectified", "verified", "county_qx-user", "county"),
        ("close", "verified", "closed", "county_qx-user", "county")]
    assert d["closed_at"] is not None and d["deadline"] == LATER.replace("+00:00", "Z")
    assert d["history"][1]["detail"] == {"deadline": LATER}
    rows = await pool.fetch("SELECT action, effects, effects_done_at FROM case_history WHERE case_id = $1 ORDER BY id",
                            world.cases["m1_order"])
    effects = {r["action"]: effects_from_json(r["effects"]) for r in rows}
    assert all(r["effects_done_at"] is None for r in rows)  # left to the alerting worker
    assert StopEscalation("deadline") in effects["submit"]
    assert StopEscalation("all") in effects["close"]
    assert any(isinstance(e, Notify) for e in effects["verify"])
    # The order's minimum end has not passed, so verify does not lift it yet.
    assert not any(isinstance(e, LiftOrder) for e in effects["verify"])


async def test_mine_acknowledges_and_plans(client: httpx.AsyncClient, world: World) -> None:
    r = await _act(client, world, "mine1", "m1_open", "acknowledge")
    assert r.status_code == 200 and r.json()["acknowledged_at"] == NOW.isoformat().replace("+00:00", "Z")
    r = await _act(client, world, "mine1", "m1_open", "plan", comment="drain the upper corner")
    assert r.status_code == 422 and "deadline" in r.json()["detail"]  # plan without deadline
    r = await _act(client, world, "mine1", "m1_open", "plan", comment="drain", deadline=LATER)
    assert r.status_code == 200 and r.json()["state"] == "rectifying"


@pytest.mark.parametrize(("label", "case", "action", "extra", "status"), [
    ("mine1", "m3_open", "acknowledge", {}, 404),  # another mine's case: not even visible
    ("mine2", "m3_open", "acknowledge", {}, 404),
    ("county_gj", "m1_open", "verify", {}, 404),  # other county
    ("mine2", "m2_rectified", "verify", {}, 403),  # the mine never verifies its own work
    ("county_qx", "m2_rectified", "verify", {}, 403),  # supervised at city level
    ("county_qx", "m2_rectified", "acknowledge", {}, 403),  # regulators do not acknowledge
    ("county_gj", "m3_open", "verify", {}, 409),  # open: nothing to verify yet
    ("mine2", "m2_closed", "acknowledge", {}, 409),
    ("mine2", "m2_rectified", "submit", {}, 409),
    ("county_gj", "m3_open", "close", {}, 409),
    ("mine2", "m2_closed", "bless", {}, 422),  # unknown action
    ("mine2", "m2_closed", "acknowledge", {"deadline": "2030-01-01T00:00:00"}, 422),  # naive deadline
    ("mine2", "m2_closed", "acknowledge", {"comment": "a\u0000b"}, 422),
    ("mine2", "m2_closed", "acknowledge", {"comment": "x" * 4001}, 422),
    ("mine2", "m2_closed", "acknowledge", {"extra": "field"}, 422),
])
async def test_refusals(client: httpx.AsyncClient, world: World, label: str, case: str, action: str,
                        extra: dict[str, str], status: int) -> None:
    before = (await client.get(f"/v1/cases/{world.cases[case]}", headers=auth(world, "admin"))).json()
    r = await _act(client, world, label, case, action, **extra)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    slug = {403: "forbidden", 404: "not-found", 409: "conflict", 422: "validation"}[status]
    assert r.json()["type"] == f"https://minewatch.dev/problems/{slug}"
    after = (await client.get(f"/v1/cases/{world.cases[case]}", headers=auth(world, "admin"))).json()
    assert after == before  # nothing written


async def test_city_verifies_city_case_and_province_may_too(client: httpx.AsyncClient, world: World) -> None:
    r = await _act(client, world, "city", "m2_rectified", "verify")
    assert r.status_code == 200 and r.json()["state"] == "verified"
    r = await _act(client, world, "province", "m2_rectified", "reject", comment="not convincing", deadline=LATER)
    assert r.status_code == 200 and r.json()["state"] == "rectifying"


async def test_methane_case_needs_its_four_measures_to_close(pool: asyncpg.Pool, world: World) -> None:
    cid = world.cases["m3_open"]
    await pool.execute("UPDATE cases SET state = 'verified' WHERE id = $1", cid)
    async with pool.acquire() as conn:
        out = await apply_action(conn, case_id=cid, action="close", actor="gj", role="county",
                                 scope=frozenset({"140181"}), comment=None, deadline=None, now=NOW)
    assert isinstance(out.result, Refused) and out.result.reason == "conflict" and out.history_id is None
    assert await pool.fetchval("SELECT state FROM cases WHERE id = $1", cid) == "verified"


async def test_apply_action_records_in_one_transaction(pool: asyncpg.Pool, world: World) -> None:
    cid = await pool.fetchval(
        "INSERT INTO cases(mine_id, rule, level, state, opened_at, level_since, identity) "
        "VALUES ($1, 'stuck', 'mine', 'open', $2, $2, 'unit-test') RETURNING id", world.mine_ids[M1], NOW)
    async with pool.acquire() as conn:
        out = await apply_action(conn, case_id=cid, action="acknowledge", actor="duty", role="mine",
                                 scope=frozenset({M1}), comment="seen", deadline=None, now=NOW)
    assert isinstance(out.result, Allowed) and out.applied
    row = await pool.fetchrow("SELECT * FROM case_history WHERE id = $1", out.history_id)
    assert row is not None
    assert (row["actor"], row["role"], row["action"], row["from_state"], row["to_state"], row["comment"]) == (
        "duty", "mine", "acknowledge", "open", "acknowledged", "seen")
    # A mine-level case is supervised by the county: it hears of the acknowledgement.
    assert json.loads(row["effects"])[0] == {"type": "notify", "levels": ["county"], "reason": "state_changed"}
    assert await pool.fetchval("SELECT state FROM cases WHERE id = $1", cid) == "acknowledged"
    with pytest.raises(CaseNotFound):
        async with pool.acquire() as conn:
            await apply_action(conn, case_id=10**12, action="acknowledge", actor="duty", role="mine",
                               scope=frozenset({M1}), comment=None, deadline=None, now=NOW)


async def test_verify_after_min_end_emits_lift_order(pool: asyncpg.Pool, world: World) -> None:
    oid = world.orders[M1][0]
    cid = await pool.fetchval(
        "INSERT INTO cases(mine_id, rule, level, state, opened_at, level_since, identity, order_id) "
        "VALUES ($1, 'methane_repeat_week', 'county', 'rectified', $2, $2, 'lift-test', $3) RETURNING id",
        world.mine_ids[M1], NOW - timedelta(days=5), oid)
    async with pool.acquire() as conn:
        out = await apply_action(conn, case_id=cid, action="verify", actor="qx", role="county",
                                 scope=frozenset({"140121"}), comment=None, deadline=None,
                                 now=NOW + timedelta(days=2))  # past the order's min_end (NOW + 1 day)
    assert isinstance(out.result, Allowed)
    assert LiftOrder(str(oid)) in out.result.effects
    stored = await pool.fetchval("SELECT effects FROM case_history WHERE id = $1", out.history_id)
    assert {"type": "lift_order", "order_id": str(oid)} in json.loads(stored)
