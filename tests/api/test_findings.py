"""GET /v1/mines/{mine}/findings: every rule family's findings, newest first; filters by rule, time
and openness; scope (404 for another mine, never a leak); pagination; refusals of bad parameters."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, M2, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

FIELDS = {"id", "rule", "mine", "subject", "start", "end", "level", "tier", "state", "withdrawn", "evidence"}
H = timedelta(hours=1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def m2_findings(pool: asyncpg.Pool, world: World) -> list[int]:
    """Findings of several families at mine 2, newest first: an open offline point, a closed stuck
    run, a withdrawn over-capacity span, an open tailings warning (two at the same start)."""
    mine = world.mine_ids[M2]
    rows = [  # rule, subject, start, end, level, state, superseded_by-null, evidence
        ("offline", f"{M2}_01MN0001_T0003", NOW - 1 * H, None, "warning", "open", {"silent_s": 900}),
        ("tailings_warning", "pond-1", NOW - 1 * H, None, "yellow", "open", {"members": ["B1", "B2", "B3", "B4"]}),
        ("stuck", f"{M2}_01MN0001_T0004", NOW - 5 * H, NOW - 2 * H, "warning", "closed", {"value": 0.12}),
        ("over_capacity", "area-7", NOW - 30 * H, NOW - 29 * H, "warning", "superseded", {"count": 11, "limit": 10}),
    ]
    ids = []
    for rule, subject, start, end, level, state, evidence in rows:
        ids.append(await pool.fetchval(
            "INSERT INTO findings(rule, mine_id, subject, start_ts, end_ts, level, state, evidence) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb) RETURNING id",
            rule, mine, subject, start, end, level, state, json.dumps(evidence)))
    # Same start: the higher id is newer (the tie-breaker of the order and of the cursor).
    return [ids[1], ids[0], ids[2], ids[3]]


async def test_all_families_newest_first_with_the_contract_fields(
        client: httpx.AsyncClient, world: World, m2_findings: list[int]) -> None:
    r = await client.get(f"/v1/mines/{M2}/findings", headers=auth(world, "admin"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [f["id"] for f in items] == m2_findings
    assert all(set(f) == FIELDS for f in items)
    tailings, offline, stuck, crowd = items
    assert tailings["rule"] == "tailings_warning" and tailings["level"] == "yellow" and tailings["mine"] == M2
    assert tailings["evidence"] == {"members": ["B1", "B2", "B3", "B4"]} and tailings["end"] is None
    assert offline["start"].endswith("Z") and stuck["end"].endswith("Z")
    assert (stuck["state"], stuck["withdrawn"]) == ("closed", False)
    assert (crowd["state"], crowd["withdrawn"]) == ("superseded", True)


@pytest.mark.parametrize(("query", "expect"), [
    ("rule=stuck", [2]),
    ("open=true", [0, 1]),
    ("open=false", [2, 3]),
    ("rule=offline&open=false", []),
    ("since=NOW-5h", [0, 1, 2]),  # inclusive
    ("until=NOW-5h", [3]),  # exclusive
    ("since=NOW-6h&until=NOW-1h", [2]),
])
async def test_filters(client: httpx.AsyncClient, world: World, m2_findings: list[int], query: str,
                       expect: list[int]) -> None:
    for label, delta in (("NOW-5h", 5 * H), ("NOW-6h", 6 * H), ("NOW-1h", H)):
        query = query.replace(label, (NOW - delta).isoformat())
    r = await client.get(f"/v1/mines/{M2}/findings", params=dict(p.split("=", 1) for p in query.split("&")),
                         headers=auth(world, "admin"))
    assert r.status_code == 200, r.text
    assert [f["id"] for f in r.json()["items"]] == [m2_findings[i] for i in expect]


async def test_pages_walk_every_finding_once(client: httpx.AsyncClient, world: World, m2_findings: list[int]) -> None:
    seen: list[int] = []
    params: dict[str, str] = {"limit": "1"}
    for _ in range(10):
        r = await client.get(f"/v1/mines/{M2}/findings", params=params, headers=auth(world, "admin"))
        assert r.status_code == 200, r.text
        seen += [f["id"] for f in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        params = {"limit": "1", "cursor": cursor}
    assert seen == m2_findings


async def test_scope(client: httpx.AsyncClient, world: World, m2_findings: list[int]) -> None:
    """Another mine's user gets the 404 of a mine that does not exist; its own mine's findings only."""
    r = await client.get(f"/v1/mines/{M2}/findings", headers=auth(world, "mine1"))
    assert r.status_code == 404, r.text
    missing = await client.get("/v1/mines/149999999999/findings", headers=auth(world, "admin"))
    assert missing.status_code == 404 and r.json()["detail"] == missing.json()["detail"].replace(
        "149999999999", M2)
    own = await client.get(f"/v1/mines/{M1}/findings", headers=auth(world, "mine1"))
    assert own.status_code == 200 and own.json()["items"], own.text
    assert {f["mine"] for f in own.json()["items"]} == {M1}
    assert not set(m2_findings) & {f["id"] for f in own.json()["items"]}
    assert (await client.get(f"/v1/mines/{M2}/findings")).status_code == 401


@pytest.mark.parametrize("query", ["rule=no_such_rule", "rule=Methane", "rule=" + "x" * 41, "open=maybe",
                                   "since=yesterday", "limit=0", "limit=1001", "cursor=garbage", "colour=red"])
async def test_bad_parameters_are_refused_with_a_problem(client: httpx.AsyncClient, world: World, query: str) -> None:
    key, _, value = query.partition("=")
    r = await client.get(f"/v1/mines/{M2}/findings", params={key: value}, headers=auth(world, "admin"))
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if key == "rule" and value == "no_such_rule":
        assert "methane_exceedance" in r.json()["detail"]  # the allowed ids are named
