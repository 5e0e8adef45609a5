"""The role x route scope matrix, route by route, with mines outside the city and the province.

The shared world puts every mine in one city and one province, so there a city or province token
sees what an admin sees and a scoping bug for those roles would go unnoticed. This module adds a
mine of another city (same province) and a mine of another province, each with a case, a dead
letter and an accident, and checks every token-scoped route for every role: exact sets for lists,
200 / 404 (problem+json) for single resources, and for writes who may (201 / 200), who is refused
(403) and who cannot even see the target (404), with nothing written on a refusal.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.api.conftest import NOW, auth
from tests.api.scenario import (
    ALL_MINES,
    COUNTY_GJ_MINES,
    COUNTY_QX_MINES,
    M1,
    M2,
    M3,
    PIT,
    TAILINGS,
    World,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OTHER_CITY = "140200000001"  # province 140000, city 140200: seen by the province token, not the city token
OTHER_PROVINCE = "150100000001"  # province 150000: seen by admins only
EXTRA_MINES = {OTHER_CITY, OTHER_PROVINCE}
EVERY_MINE = ALL_MINES | EXTRA_MINES
LABELS = ("admin", "province", "city", "county_qx", "county_gj", "mine1", "mine2")
SCOPES: dict[str, set[str]] = {
    "admin": EVERY_MINE, "province": ALL_MINES | {OTHER_CITY}, "city": ALL_MINES,
    "county_qx": COUNTY_QX_MINES, "county_gj": COUNTY_GJ_MINES, "mine1": {M1}, "mine2": {M2},
}
REGULATORS = ("province", "city", "county_qx", "county_gj")
MINE_ACTIONS = ("acknowledge", "plan", "submit")
REGULATOR_ACTIONS = ("verify", "reject", "close")
LATER = (NOW + timedelta(days=7)).isoformat()
_serial = itertools.count(1)


def _body(action: str) -> dict[str, str]:
    """A request body the action accepts when allowed (plan / reject need a deadline)."""
    body = {"action": action, "comment": f"audit {action}"}
    if action in ("plan", "reject"):
        body["deadline"] = LATER
    return body


async def _new_case(pool: asyncpg.Pool, mine: str, *, state: str, level: str = "county") -> int:
    """A case of its own for a test that changes state (identity unique per call)."""
    cid: int = await pool.fetchval(
        "INSERT INTO cases(mine_id, rule, level, state, title, opened_at, level_since, identity) "
        "SELECT id, 'stuck', $2, $3, 'audit', $4, $4, $5 FROM mines WHERE code = $1 RETURNING id",
        mine, level, state, NOW - timedelta(hours=3), f"audit:{mine}:{next(_serial)}")
    return cid


async def _case_row(pool: asyncpg.Pool, cid: int) -> tuple[str, int]:
    """State and number of history rows: what an action would change."""
    row = await pool.fetchrow("SELECT state, (SELECT count(*) FROM case_history h WHERE h.case_id = c.id) AS n "
                              "FROM cases c WHERE id = $1", cid)
    assert row is not None
    return row["state"], row["n"]


def _problem(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    slug = {403: "forbidden", 404: "not-found", 409: "conflict"}[status]
    assert r.json()["type"] == f"https://minewatch.dev/problems/{slug}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def extra(pool: asyncpg.Pool, world: World) -> dict[str, int]:
    """The two foreign mines with a case, a dead letter and an accident each; also an accident of
    M1 and M3, so per-mine accident lists have something to leak. Returns label -> case id."""
    cases: dict[str, int] = {}
    for code, county, city, province in ((OTHER_CITY, "140202", "140200", "140000"),
                                         (OTHER_PROVINCE, "150102", "150100", "150000")):
        mine_id = await pool.fetchval(
            "INSERT INTO mines(code, name, kind, county, city, province, approved_underground) "
            "VALUES ($1, $2, 'coal', $3, $4, $5, 100) RETURNING id", code, f"audit {code}", county, city, province)
        cases[code] = await pool.fetchval(
            "INSERT INTO cases(mine_id, rule, level, state, title, opened_at, level_since, identity) "
            "VALUES ($1, 'offline', 'county', 'open', 'audit', $2, $2, $3) RETURNING id",
            mine_id, NOW - timedelta(hours=5), f"audit-open:{code}")
        await pool.execute(
            "INSERT INTO dead_letters(received_at, source, topic, mine_code, reason, payload) "
            "VALUES ($1, 'mqtt', $2, $3, $4, '{}')", NOW - timedelta(minutes=4), f"mines/{code}/safety", code,
            f"audit_{code}")
    for code in (M1, M3, OTHER_CITY, OTHER_PROVINCE):
        await pool.execute(
            "INSERT INTO accidents(mine_id, occurred_at, severity, description, created_by, created_at) "
            "SELECT id, $2, 'general', $3, 'seed', $2 FROM mines WHERE code = $1",
            code, NOW - timedelta(days=2), f"seeded at {code}")
    return cases


def _case_mines(world: World, extra: dict[str, int]) -> dict[int, str]:
    """Every seeded case id -> its mine code."""
    of = {"m1_open": M1, "m1_order": M1, "m2_rectified": M2, "m2_closed": M2, "m3_open": M3}
    return {**{world.cases[k]: m for k, m in of.items()}, **{cid: m for m, cid in extra.items()}}


async def _walk(client: httpx.AsyncClient, path: str, headers: dict[str, str],
                **params: str) -> list[dict[str, object]]:
    """Every item of a paginated list, two at a time (so scoping holds across pages too)."""
    items: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {"limit": 2, **params}
        if cursor:
            query["cursor"] = cursor
        r = await client.get(path, params=query, headers=headers)
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


# --- lists ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", LABELS)
async def test_mines_list_is_exactly_the_scope(client: httpx.AsyncClient, world: World, extra: dict[str, int],
                                               label: str) -> None:
    codes = [str(m["code"]) for m in await _walk(client, "/v1/mines", auth(world, label))]
    assert sorted(codes) == sorted(SCOPES[label])


@pytest.mark.parametrize("label", LABELS)
async def test_cases_list_is_exactly_the_scope(client: httpx.AsyncClient, world: World, extra: dict[str, int],
                                               label: str) -> None:
    mine_of = _case_mines(world, extra)
    items = await _walk(client, "/v1/cases", auth(world, label))
    ids = {int(str(c["id"])) for c in items}
    # the module's own cases (made by the action tests) count too: compare through the database
    rows = await client.get("/v1/cases", params={"limit": 1000}, headers=auth(world, "admin"))
    every = {int(c["id"]): str(c["mine"]) for c in rows.json()["items"]}
    assert mine_of.items() <= every.items()
    assert ids == {cid for cid, mine in every.items() if mine in SCOPES[label]}
    assert {str(c["mine"]) for c in items} <= SCOPES[label]


@pytest.mark.parametrize("label", LABELS)
async def test_cases_mine_filter_outside_scope_is_empty(client: httpx.AsyncClient, world: World,
                                                        extra: dict[str, int], label: str) -> None:
    for code in sorted(EVERY_MINE - SCOPES[label]):
        r = await client.get("/v1/cases", params={"mine": code}, headers=auth(world, label))
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}, (code, r.text)


@pytest.mark.parametrize("label", LABELS)
async def test_dead_letters_are_exactly_the_scope(client: httpx.AsyncClient, world: World, extra: dict[str, int],
                                                  label: str) -> None:
    items = await _walk(client, "/v1/dead-letters", auth(world, label))
    seen = {d["mine"] for d in items}
    with_letters: set[str | None] = {M1, M3, OTHER_CITY, OTHER_PROVINCE}
    expected = {m for m in with_letters if m in SCOPES[label]} | ({None} if label == "admin" else set())
    assert seen == expected
    for code in sorted(EVERY_MINE - SCOPES[label]):
        r = await client.get("/v1/dead-letters", params={"mine": code}, headers=auth(world, label))
        assert r.status_code == 200 and r.json()["items"] == [], (code, r.text)


# --- per-mine reads ------------------------------------------------------------------------------

@pytest.mark.parametrize("label", LABELS)
async def test_every_per_mine_read_is_200_in_scope_and_404_outside(
        client: httpx.AsyncClient, pool: asyncpg.Pool, world: World, extra: dict[str, int], label: str) -> None:
    points = {r["code"]: r["point"] for r in await pool.fetch(
        "SELECT m.code, min(p.code) AS point FROM mines m JOIN points p ON p.mine_id = m.id GROUP BY m.code")}
    assert set(points) == ALL_MINES
    for code in sorted(EVERY_MINE):
        paths = [f"/v1/mines/{code}", f"/v1/mines/{code}/exceedances", f"/v1/mines/{code}/orders",
                 f"/v1/mines/{code}/personnel", f"/v1/mines/{code}/accidents"]
        if code in points:
            paths.append(f"/v1/mines/{code}/points/{points[code]}/readings")
        for path in paths:
            r = await client.get(path, headers=auth(world, label))
            if code in SCOPES[label]:
                assert r.status_code == 200, (label, path, r.text)
            else:
                assert r.status_code == 404, (label, path, r.text)
                assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("label", LABELS)
async def test_per_mine_lists_hold_only_that_mines_records(client: httpx.AsyncClient, world: World,
                                                           extra: dict[str, int], label: str) -> None:
    for code in sorted(SCOPES[label]):
        h = auth(world, label)
        for path in ("exceedances", "orders", "accidents"):
            items = await _walk(client, f"/v1/mines/{code}/{path}", h)
            assert {i["mine"] for i in items} <= {code}, (path, items)
        accidents = await _walk(client, f"/v1/mines/{code}/accidents", h)
        seeded = [a["description"] for a in accidents if a["created_by"] == "seed"]
        assert seeded == ([f"seeded at {code}"] if code in {M1, M3, OTHER_CITY, OTHER_PROVINCE} else [])
        events = await _walk(client, f"/v1/mines/{code}/exceedances", h)
        assert [e["id"] for e in events] == world.events.get(code, [])
        orders = await _walk(client, f"/v1/mines/{code}/orders", h)
        assert [o["id"] for o in orders] == world.orders.get(code, [])


@pytest.mark.parametrize("label", LABELS)
async def test_case_detail_is_200_in_scope_and_404_outside(client: httpx.AsyncClient, world: World,
                                                           extra: dict[str, int], label: str) -> None:
    for cid, code in sorted(_case_mines(world, extra).items()):
        r = await client.get(f"/v1/cases/{cid}", headers=auth(world, label))
        if code in SCOPES[label]:
            assert r.status_code == 200 and r.json()["mine"] == code, (cid, r.text)
        else:
            _problem(r, 404)


# --- writes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", LABELS)
async def test_recording_accidents_by_role_and_scope(client: httpx.AsyncClient, pool: asyncpg.Pool, world: World,
                                                     extra: dict[str, int], label: str) -> None:
    body = {"occurred_at": (NOW - timedelta(hours=6)).isoformat(), "severity": "general",
            "description": f"by {label}"}
    for code in sorted(EVERY_MINE):
        before = await pool.fetchval("SELECT count(*) FROM accidents")
        r = await client.post(f"/v1/mines/{code}/accidents", json=body, headers=auth(world, label))
        if code not in SCOPES[label]:
            _problem(r, 404)
        elif label.startswith("mine"):
            _problem(r, 403)
        else:
            assert r.status_code == 201, (code, r.text)
            assert r.json()["mine"] == code and r.json()["created_by"] == f"{label}-user"
        after = await pool.fetchval("SELECT count(*) FROM accidents")
        assert after == before + (1 if r.status_code == 201 else 0)


@pytest.mark.parametrize("label", ["mine1", "mine2"])
async def test_mine_token_cannot_act_on_another_mines_case(client: httpx.AsyncClient, pool: asyncpg.Pool,
                                                           world: World, extra: dict[str, int], label: str) -> None:
    own = SCOPES[label]
    for cid, code in sorted(_case_mines(world, extra).items()):
        if code in own:
            continue
        for action in MINE_ACTIONS + REGULATOR_ACTIONS:
            before = await _case_row(pool, cid)
            r = await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=auth(world, label))
            _problem(r, 404)
            assert await _case_row(pool, cid) == before


@pytest.mark.parametrize("label", REGULATORS)
async def test_regulator_cannot_act_outside_its_region(client: httpx.AsyncClient, pool: asyncpg.Pool, world: World,
                                                       extra: dict[str, int], label: str) -> None:
    outside = sorted(EVERY_MINE - SCOPES[label])
    assert outside
    for code in outside:
        cid = await _new_case(pool, code, state="rectified", level="county")
        for action in REGULATOR_ACTIONS:
            r = await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=auth(world, label))
            _problem(r, 404)
        assert await _case_row(pool, cid) == ("rectified", 0)


@pytest.mark.parametrize("label", ["mine1", "mine2"])
async def test_mine_acts_on_its_own_case_but_never_as_regulator(client: httpx.AsyncClient, pool: asyncpg.Pool,
                                                                world: World, label: str) -> None:
    (code,) = SCOPES[label]
    h = auth(world, label)
    cid = await _new_case(pool, code, state="rectified")
    for action in REGULATOR_ACTIONS:
        _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=h), 403)
    assert await _case_row(pool, cid) == ("rectified", 0)
    cid = await _new_case(pool, code, state="open")
    _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body("submit"), headers=h), 409)
    for action, state in (("acknowledge", "acknowledged"), ("plan", "rectifying"), ("submit", "rectified")):
        r = await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=h)
        assert r.status_code == 200 and r.json()["state"] == state, (action, r.text)
    assert await _case_row(pool, cid) == ("rectified", 3)


@pytest.mark.parametrize("label", [*REGULATORS, "admin"])
async def test_regulators_and_admin_never_take_mine_actions(client: httpx.AsyncClient, pool: asyncpg.Pool,
                                                            world: World, label: str) -> None:
    code = sorted(SCOPES[label])[0]
    for state, action in (("open", "acknowledge"), ("acknowledged", "plan"), ("rectifying", "submit")):
        cid = await _new_case(pool, code, state=state)
        _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=auth(world, label)), 403)
        assert await _case_row(pool, cid) == (state, 0)


@pytest.mark.parametrize(("label", "code", "level"), [
    ("admin", OTHER_PROVINCE, "province"), ("admin", M1, "county"), ("province", OTHER_CITY, "city"),
    ("province", M3, "province"), ("city", M2, "city"), ("county_gj", PIT, "county"),
    ("county_qx", TAILINGS, "mine"),  # a mine-level case is supervised by the county
])
async def test_supervisor_verifies_rejects_and_closes(client: httpx.AsyncClient, pool: asyncpg.Pool, world: World,
                                                      label: str, code: str, level: str) -> None:
    h = auth(world, label)
    cid = await _new_case(pool, code, state="open", level=level)
    _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body("verify"), headers=h), 409)
    _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body("close"), headers=h), 409)
    await pool.execute("UPDATE cases SET state = 'rectified' WHERE id = $1", cid)
    r = await client.post(f"/v1/cases/{cid}/actions", json=_body("reject"), headers=h)
    assert r.status_code == 200 and r.json()["state"] == "rectifying", r.text
    await pool.execute("UPDATE cases SET state = 'rectified' WHERE id = $1", cid)  # the mine resubmitted
    for action, state in (("verify", "verified"), ("close", "closed")):
        r = await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=h)
        assert r.status_code == 200 and r.json()["state"] == state, (action, r.text)
    assert [(x["action"], x["role"]) for x in r.json()["history"]] == [
        (a, label.split("_")[0]) for a in ("reject", "verify", "close")]
    _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body("verify"), headers=h), 409)


@pytest.mark.parametrize(("label", "code", "level"), [
    ("county_qx", M1, "city"), ("county_gj", M3, "province"), ("city", M2, "province"),
])
async def test_regulator_below_the_supervising_level_is_403(client: httpx.AsyncClient, pool: asyncpg.Pool,
                                                            world: World, label: str, code: str, level: str) -> None:
    cid = await _new_case(pool, code, state="rectified", level=level)
    for action in REGULATOR_ACTIONS:
        _problem(await client.post(f"/v1/cases/{cid}/actions", json=_body(action), headers=auth(world, label)), 403)
    assert await _case_row(pool, cid) == ("rectified", 0)


async def test_case_ids_do_not_reveal_existence(client: httpx.AsyncClient, world: World,
                                                extra: dict[str, int]) -> None:
    """An out-of-scope case answers exactly like a case that does not exist, for reads and actions."""
    hidden, missing = extra[OTHER_PROVINCE], 987654321
    for label in LABELS[1:]:
        h = auth(world, label)
        a = await client.get(f"/v1/cases/{hidden}", headers=h)
        b = await client.get(f"/v1/cases/{missing}", headers=h)
        assert a.status_code == b.status_code == 404
        assert a.json()["detail"].replace(str(hidden), "X") == b.json()["detail"].replace(str(missing), "X")
        a = await client.post(f"/v1/cases/{hidden}/actions", json=_body("close"), headers=h)
        b = await client.post(f"/v1/cases/{missing}/actions", json=_body("close"), headers=h)
        assert a.status_code == b.status_code == 404
        assert a.json()["detail"].replace(str(hidden), "X") == b.json()["detail"].replace(str(missing), "X")
