"""GET /v1/mines/{mine}/exceedances and /orders: contract fields, filters, order, scope, pagination."""

from __future__ import annotations

from datetime import timedelta, timezone

import httpx
import pytest

from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, M2, M3, T0_POINT, T1_POINT, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

EVENT_FIELDS = {"id", "mine", "gas", "scope", "scope_key", "start", "end", "peak", "peak_at", "level", "tier",
                "order_id", "episodes"}
EPISODE_FIELDS = {"id", "point", "location", "start", "end", "end_reason", "peak", "peak_at", "level",
                  "thresholds", "thresholds_from"}


async def test_events_newest_first_with_episodes(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/v1/mines/{M1}/exceedances", headers=auth(world, "mine1"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [e["id"] for e in items] == world.events[M1]
    assert all(set(e) == EVENT_FIELDS for e in items)
    opened = items[0]
    assert opened["end"] is None and opened["mine"] == M1 and opened["level"] == "alarm"
    assert [ep["point"] for ep in opened["episodes"]] == [T1_POINT]
    mid = items[2]
    assert mid["level"] == "power_off" and mid["scope"] == "face" and mid["scope_key"] == "F11301"
    assert [ep["point"] for ep in mid["episodes"]] == [T0_POINT, T1_POINT]
    ep = mid["episodes"][0]
    assert set(ep) == EPISODE_FIELDS
    assert ep["location"] == "11301回风隅角" and ep["thresholds"] == {"alarm_hi": 1.0, "poweroff_hi": 1.5}
    assert ep["start"].endswith("Z") and ep["end"].endswith("Z") and ep["end_reason"] == "cleared"


async def test_filters(client: httpx.AsyncClient, world: World) -> None:
    h = auth(world, "admin")
    url = f"/v1/mines/{M1}/exceedances"
    co = (await client.get(url, params={"gas": "co"}, headers=h)).json()["items"]
    assert [e["gas"] for e in co] == ["co"]
    power = (await client.get(url, params={"level": "power_off"}, headers=h)).json()["items"]
    assert [e["id"] for e in power] == [world.events[M1][2]]
    since = (NOW - timedelta(days=3)).isoformat()
    until = (NOW - timedelta(hours=2)).isoformat()
    window = (await client.get(url, params={"since": since, "until": until}, headers=h)).json()["items"]
    assert [e["id"] for e in window] == world.events[M1][1:3]
    # An offset other than Z means the same instant.
    local = (NOW - timedelta(days=3)).astimezone(timezone(timedelta(hours=8))).isoformat()
    assert local.endswith("+08:00")
    same = (await client.get(url, params={"since": local, "until": until}, headers=h)).json()["items"]
    assert same == window


async def test_naive_time_and_bad_level_are_422(client: httpx.AsyncClient, world: World) -> None:
    h = auth(world, "admin")
    for params in ({"since": "2026-01-01T00:00:00"}, {"level": "extreme"}, {"gas": "CH4;drop"},
                   {"until": "not a time"}):
        r = await client.get(f"/v1/mines/{M1}/exceedances", params=params, headers=h)
        assert r.status_code == 422, params
        assert r.json()["errors"], r.json()


async def test_pagination_is_stable(client: httpx.AsyncClient, world: World) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get(f"/v1/mines/{M1}/exceedances", params=params, headers=auth(world, "admin"))).json()
        seen += [e["id"] for e in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == world.events[M1]


@pytest.mark.parametrize(("label", "mine", "visible"), [
    ("mine1", M1, True), ("mine1", M2, False), ("mine2", M1, False), ("county_qx", M2, True),
    ("county_qx", M3, False), ("county_gj", M3, True), ("county_gj", M1, False), ("province", M3, True),
])
async def test_scope(client: httpx.AsyncClient, world: World, label: str, mine: str, visible: bool) -> None:
    for path in ("exceedances", "orders"):
        r = await client.get(f"/v1/mines/{mine}/{path}", headers=auth(world, label))
        assert r.status_code == (200 if visible else 404), (path, r.text)


async def test_orders_with_events(client: httpx.AsyncClient, world: World) -> None:
    body = (await client.get(f"/v1/mines/{M1}/orders", headers=auth(world, "mine1"))).json()
    (order,) = body["items"]
    assert {"id", "mine", "rule", "start", "min_end", "state", "events"} <= set(order)
    assert order["state"] == "active" and order["mine"] == M1 and order["rule"] == "methane_repeat_week"
    e_open, _, e_mid, e_old = world.events[M1]
    assert order["events"] == sorted([e_old, e_mid, e_open])
    assert order["trigger_events"] == sorted([e_old, e_mid])
    lifted = (await client.get(f"/v1/mines/{M3}/orders", headers=auth(world, "admin"))).json()["items"]
    assert [o["state"] for o in lifted] == ["lifted"] and lifted[0]["lifted_at"].endswith("Z")
    assert (await client.get(f"/v1/mines/{M2}/orders", headers=auth(world, "admin"))).json() == {
        "items": [], "next_cursor": None}
