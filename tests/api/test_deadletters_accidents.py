"""GET /v1/dead-letters (scope by claimed mine) and POST/GET /v1/mines/{mine}/accidents."""

from __future__ import annotations

import json
from datetime import timedelta

import asyncpg
import httpx
import pytest

from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, M2, M3, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _reasons(client: httpx.AsyncClient, world: World, label: str, **params: str) -> set[str]:
    r = await client.get("/v1/dead-letters", params=params, headers=auth(world, label))
    assert r.status_code == 200, r.text
    return {d["reason"] for d in r.json()["items"]}


async def test_dead_letters_scope(client: httpx.AsyncClient, world: World) -> None:
    assert await _reasons(client, world, "admin") == {"unknown_point", "bad_type", "bad_json"}
    assert await _reasons(client, world, "province") == {"unknown_point", "bad_type"}  # no mine: admin only
    assert await _reasons(client, world, "county_qx") == {"unknown_point"}
    assert await _reasons(client, world, "county_gj") == {"bad_type"}
    assert await _reasons(client, world, "mine1") == {"unknown_point"}
    assert await _reasons(client, world, "mine2") == set()


async def test_dead_letters_since_and_fields(client: httpx.AsyncClient, world: World) -> None:
    assert await _reasons(client, world, "admin", since=NOW.isoformat()) == set()
    assert await _reasons(client, world, "admin", mine=M3) == {"bad_type"}
    r = await client.get("/v1/dead-letters", params={"since": (NOW - timedelta(hours=1)).isoformat()},
                         headers=auth(world, "mine1"))
    (d,) = r.json()["items"]
    assert d["mine"] == M1 and d["payload"] == '{"x": 1}' and d["source"] == "mqtt" and d["topic"] == f"mines/{M1}/safety"


async def test_accidents_recorded_by_regulators(client: httpx.AsyncClient, world: World, pool: asyncpg.Pool) -> None:
    body = {"occurred_at": (NOW - timedelta(days=1)).isoformat(), "severity": "general", "description": "roof fall"}
    r = await client.post(f"/v1/mines/{M1}/accidents", json=body, headers=auth(world, "county_qx"))
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["mine"] == M1 and a["severity"] == "general" and a["created_by"] == "county_qx-user"
    stored = await pool.fetchrow("SELECT mine_id, severity, description FROM accidents WHERE id = $1", a["id"])
    assert stored is not None
    assert tuple(stored) == (world.mine_ids[M1], "general", "roof fall")
    r = await client.post(f"/v1/mines/{M1}/accidents", json={**body, "severity": "major"}, headers=auth(world, "admin"))
    assert r.status_code == 201
    listed = (await client.get(f"/v1/mines/{M1}/accidents", headers=auth(world, "mine1"))).json()["items"]
    assert [x["severity"] for x in listed] == ["major", "general"]  # same time: the later record first


@pytest.mark.parametrize(("label", "mine", "patch", "status"), [
    ("mine1", M1, {}, 403),  # the mine does not record its own accidents
    ("mine2", M1, {}, 404),
    ("county_gj", M1, {}, 404),
    ("county_qx", M2, {"occurred_at": (NOW + timedelta(hours=1)).isoformat()}, 422),
    ("county_qx", M2, {"severity": "minor"}, 422),
    ("county_qx", M2, {"occurred_at": "2026-01-01T00:00:00"}, 422),
    ("county_qx", M2, {"description": "\ud800"}, 422),
])
async def test_accident_refusals(client: httpx.AsyncClient, world: World, pool: asyncpg.Pool, label: str, mine: str,
                                 patch: dict[str, str], status: int) -> None:
    before = await pool.fetchval("SELECT count(*) FROM accidents")
    body = {"occurred_at": (NOW - timedelta(days=1)).isoformat(), "severity": "general", **patch}
    # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it.
    r = await client.post(f"/v1/mines/{mine}/accidents", content=json.dumps(body),
                          headers={**auth(world, label), "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert await pool.fetchval("SELECT count(*) FROM accidents") == before
