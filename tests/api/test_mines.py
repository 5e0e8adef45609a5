"""GET /v1/mines and /v1/mines/{mine}: the scope matrix, status, pagination and cursors."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.api.conftest import auth
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

SCOPES = {
    "admin": ALL_MINES, "province": ALL_MINES, "city": ALL_MINES, "county_qx": COUNTY_QX_MINES,
    "county_gj": COUNTY_GJ_MINES, "mine1": {M1}, "mine2": {M2},
}


async def _all_codes(client: httpx.AsyncClient, world: World, label: str, limit: int = 100) -> list[str]:
    codes: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/v1/mines", params=params, headers=auth(world, label))
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        codes += [m["code"] for m in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return codes


@pytest.mark.parametrize("label", sorted(SCOPES))
async def test_list_shows_exactly_the_mines_in_scope(client: httpx.AsyncClient, world: World, label: str) -> None:
    codes = await _all_codes(client, world, label)
    assert set(codes) == SCOPES[label]
    assert codes == sorted(codes)


@pytest.mark.parametrize("label", ["admin", "county_qx"])
async def test_pages_of_two_walk_the_same_list(client: httpx.AsyncClient, world: World, label: str) -> None:
    assert await _all_codes(client, world, label, limit=2) == await _all_codes(client, world, label)


async def test_status(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get("/v1/mines", headers=auth(world, "admin"))
    status = {m["code"]: m["status"] for m in r.json()["items"]}
    # M1: active order; M2: a rectified (open) case; M3: an open case; the others: nothing open.
    assert status == {M1: "under_order", M2: "warning", M3: "warning", TAILINGS: "normal", PIT: "normal"}
    open_cases = {m["code"]: m["open_cases"] for m in r.json()["items"]}
    assert open_cases == {M1: 2, M2: 1, M3: 1, TAILINGS: 0, PIT: 0}


@pytest.mark.parametrize("label", sorted(SCOPES))
async def test_single_mine_visible_only_in_scope(client: httpx.AsyncClient, world: World, label: str) -> None:
    for code in sorted(ALL_MINES):
        r = await client.get(f"/v1/mines/{code}", headers=auth(world, label))
        if code in SCOPES[label]:
            assert r.status_code == 200, r.text
            assert r.json()["code"] == code
        else:
            assert r.status_code == 404
            assert r.headers["content-type"] == "application/problem+json"


async def test_out_of_scope_answers_like_nonexistent(client: httpx.AsyncClient, world: World) -> None:
    hidden = await client.get(f"/v1/mines/{M3}", headers=auth(world, "mine1"))
    missing = await client.get("/v1/mines/999999999999", headers=auth(world, "mine1"))
    assert hidden.status_code == missing.status_code == 404
    a, b = hidden.json(), missing.json()
    assert a.keys() == b.keys()
    assert a["type"] == b["type"] == "https://minewatch.dev/problems/not-found"
    assert a["detail"].replace(M3, "X") == b["detail"].replace("999999999999", "X")


async def test_detail_has_summary_cases_and_active_order(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/v1/mines/{M1}", headers=auth(world, "county_qx"))
    d = r.json()
    assert d["status"] == "under_order"
    assert d["county"] == "140121" and d["kind"] == "coal" and d["approved_underground"] == 450
    assert d["registry"] == {"stations": 6, "points": 43, "areas": 6, "cards": 150}
    assert [c["id"] for c in d["cases"]] == [world.cases["m1_open"], world.cases["m1_order"]]
    order = d["active_order"]
    assert order["id"] == world.orders[M1][0] and order["state"] == "active"
    assert order["min_end"].endswith("Z")
    quiet = (await client.get(f"/v1/mines/{PIT}", headers=auth(world, "admin"))).json()
    assert quiet["status"] == "normal" and quiet["cases"] == [] and quiet["active_order"] is None


async def test_lifted_order_is_not_active(client: httpx.AsyncClient, world: World) -> None:
    d = (await client.get(f"/v1/mines/{M3}", headers=auth(world, "admin"))).json()
    assert d["active_order"] is None and d["status"] == "warning"


async def test_tampered_and_foreign_cursors_are_400(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get("/v1/mines", params={"limit": 1}, headers=auth(world, "admin"))
    cursor = r.json()["next_cursor"]
    raw = bytearray(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    raw[-2] ^= 1  # change one bit of the key
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in (tampered, "not-a-cursor", "AAAA", cursor[:-3]):
        r = await client.get("/v1/mines", params={"cursor": bad}, headers=auth(world, "admin"))
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["type"] == "https://minewatch.dev/problems/bad-cursor"
    # A genuine cursor of another list is refused too.
    cases = await client.get("/v1/cases", params={"limit": 1}, headers=auth(world, "admin"))
    r = await client.get("/v1/mines", params={"cursor": cases.json()["next_cursor"]}, headers=auth(world, "admin"))
    assert r.status_code == 400


@pytest.mark.parametrize("limit", [0, 1001, -1])
async def test_limit_bounds(client: httpx.AsyncClient, world: World, limit: int) -> None:
    r = await client.get("/v1/mines", params={"limit": limit}, headers=auth(world, "admin"))
    assert r.status_code == 422
    assert r.json()["type"] == "https://minewatch.dev/problems/validation"


async def test_default_limit_is_100_and_max_1000_accepted(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get("/v1/mines", params={"limit": 1000}, headers=auth(world, "admin"))
    assert r.status_code == 200 and r.json()["next_cursor"] is None
