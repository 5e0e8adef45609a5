"""Hostile and malformed requests answer 4xx problems, never 500; the OpenAPI document declares them."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import auth
from tests.api.scenario import M1, T0_POINT, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

PROBLEM_TYPES = {f"https://minewatch.dev/problems/{s}" for s in (
    "validation", "not-found", "bad-cursor", "unauthorized", "forbidden", "conflict", "method-not-allowed",
    "bad-request")}

HOSTILE_GETS = [
    f"/v1/mines/{M1}%00",
    "/v1/mines/" + "1" * 500,
    f"/v1/mines/{M1}/exceedances?since=99999-01-01T00:00:00Z",
    f"/v1/mines/{M1}/exceedances?since=2026-13-45T00:00:00Z",
    f"/v1/mines/{M1}/exceedances?since=1e400",
    f"/v1/mines/{M1}/exceedances?since=99999999999999999999999",
    f"/v1/mines/{M1}/exceedances?until=0001-01-01T00:00:00%2B14:00",
    f"/v1/mines/{M1}/exceedances?gas=%00",
    f"/v1/mines/{M1}/exceedances?limit=99999999999999999999999999",
    f"/v1/mines/{M1}/exceedances?limit=abc",
    f"/v1/mines/{M1}/exceedances?cursor=%00%01",
    f"/v1/mines/{M1}/points/{T0_POINT}/readings?step=99999999h",
    f"/v1/mines/{M1}/points/{T0_POINT}/readings?step=1h&since=9999-12-31T23:59:59Z",
    f"/v1/mines/{M1}/points/{T0_POINT}/readings?until=1900-01-01T00:00:00Z",
    "/v1/cases?mine=%00&state=open",
    "/v1/cases?rule=%F0%9F%92%A3",
    "/v1/cases?level=%ED%A0%80",
    "/v1/cases/9223372036854775807",
    "/v1/cases/00000000000000000000000000000000000001",
    "/v1/dead-letters?since=2026-01-01T00:00:00Z&reason=x%00y",
    "/v1/nope",
]


@pytest.mark.parametrize("path", HOSTILE_GETS)
async def test_hostile_gets_never_fail_the_server(client: httpx.AsyncClient, world: World, path: str) -> None:
    r = await client.get(path, headers=auth(world, "admin"))
    assert r.status_code < 500, (path, r.status_code, r.text)
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] in PROBLEM_TYPES


@pytest.mark.parametrize("body", [
    b"", b"{", b"null", b"[]", b'{"action": null}', b'{"action": "acknowledge", "comment": 12}',
    b'{"action": "plan", "deadline": "99999-01-01T00:00:00Z"}',
    b'{"action": "plan", "deadline": 1e999}',
    b'{"action": "plan", "deadline": 99999999999999999999999999999}',
    b'{"action": "acknowledge", "comment": "\\u0000"}',
    b'{"action": "acknowledge", "comment": "\\udfff"}',
    b'\xff\xfe\x00',
    json.dumps({"action": "acknowledge", "comment": "x" * 100_000}).encode(),
])
async def test_hostile_bodies_are_client_errors(client: httpx.AsyncClient, world: World, body: bytes) -> None:
    r = await client.post("/v1/cases/1/actions", content=body,
                          headers={**auth(world, "admin"), "Content-Type": "application/json"})
    # A body that is not even JSON text is a 400; anything parseable but wrong is a 422.
    assert r.status_code == (400 if body.startswith(b"\xff") else 422), (body[:60], r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"


async def test_unknown_query_parameters_are_422(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(f"/v1/mines/{M1}/exceedances", params={"sinse": "2026-01-01T00:00:00Z"},
                         headers=auth(world, "admin"))
    assert r.status_code == 422 and "sinse" in r.json()["detail"]
    assert (await client.get("/healthz", params={"probe": "k8s"})).status_code == 200


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient, world: World) -> None:
    r = await client.delete("/v1/mines", headers=auth(world, "admin"))
    assert r.status_code == 405 and r.json()["type"].endswith("/method-not-allowed")
    # The Allow header names every method of the path, though FastAPI keeps one route per method.
    r = await client.put(f"/v1/mines/{M1}/accidents", headers=auth(world, "admin"))
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, POST"


async def test_openapi_declares_every_error(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            if path.startswith("/v1/"):
                assert {"400", "401", "404", "422", "503"} <= codes, (path, method, codes)
                assert len(codes & {"200", "201"}) == 1
                for code in codes - {"200", "201"}:
                    content = op["responses"][code]["content"]
                    assert list(content) == ["application/problem+json"], (path, code)
                    assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
                # The SMS provider's reply webhook has its own shared secret, not an API token.
                if path != "/v1/alerting/sms/replies":
                    assert op["security"] == [{"HTTPBearer": []}]
                assert "$ref" in json.dumps(op["responses"].get("200", op["responses"].get("201")))
    actions = doc["paths"]["/v1/cases/{case_id}/actions"]["post"]["responses"]
    assert {"403", "409"} <= set(actions)
    assert "WWW-Authenticate" in actions["401"]["headers"]
