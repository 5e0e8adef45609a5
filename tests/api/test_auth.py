"""Bearer tokens: 401 problems with a challenge, hashed storage, revocation, token creation rules, CLI."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx
import pytest

from api.auth.tokens import TokenError, create_token, hash_token, revoke_token
from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, PEPPER, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic dXNlcjpwdw=="},
    {"Authorization": "Bearer " + "x" * 5000}, {b"Authorization": "Bearer mwt_\u00e9".encode("latin-1")},
])
async def test_unauthenticated_is_401_problem(client: httpx.AsyncClient, headers: dict[str, str] | dict[bytes, bytes]) -> None:
    for path in ("/v1/mines", f"/v1/mines/{M1}", "/v1/cases/1", "/v1/dead-letters"):
        r = await client.get(path, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "https://minewatch.dev/problems/unauthorized"
    r = await client.post("/v1/cases/1/actions", json={"action": "acknowledge"}, headers=headers)
    assert r.status_code == 401


async def test_tokens_are_stored_hashed(pool: asyncpg.Pool, world: World) -> None:
    stored = {r["token_hash"] for r in await pool.fetch("SELECT token_hash FROM api_tokens")}
    for token in world.tokens.values():
        assert token not in stored and hash_token(token, PEPPER) in stored
        assert hash_token(token, "another pepper") not in stored


async def test_revoked_token_stops_working_at_once(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tid, token = await create_token(conn, name="temp", role="mine", scope=[M1], pepper=PEPPER, now=NOW)
    h = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/mines", headers=h)).status_code == 200
    assert await pool.fetchval("SELECT last_used_at FROM api_tokens WHERE id = $1", tid) == NOW
    async with pool.acquire() as conn:
        assert await revoke_token(conn, token_id=tid, now=NOW)
        assert not await revoke_token(conn, token_id=tid, now=NOW)  # already revoked
    assert (await client.get("/v1/mines", headers=h)).status_code == 401


@pytest.mark.parametrize(("role", "scope", "message"), [
    ("mine", [], "needs the mine codes"), ("mine", ["999"], "unknown mine"), ("county", ["140100"], "not a known"),
    ("county", [], "exactly one"), ("city", ["140121"], "not a known"), ("admin", [M1], "takes no scope"),
    ("king", [], "role must be"),
])
async def test_create_token_validates(pool: asyncpg.Pool, role: str, scope: list[str], message: str) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(TokenError, match=message):
            await create_token(conn, name="x", role=role, scope=scope, pepper=PEPPER, now=NOW)


async def test_last_used_is_written_at_most_once_a_minute(client: httpx.AsyncClient, pool: asyncpg.Pool,
                                                          world: World) -> None:
    tid = world.token_ids["province"]
    await pool.execute("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", tid, NOW - timedelta(seconds=30))
    await client.get("/v1/mines", headers=auth(world, "province"))
    assert await pool.fetchval("SELECT last_used_at FROM api_tokens WHERE id = $1", tid) == NOW - timedelta(seconds=30)
    await pool.execute("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1", tid, NOW - timedelta(minutes=5))
    await client.get("/v1/mines", headers=auth(world, "province"))
    assert await pool.fetchval("SELECT last_used_at FROM api_tokens WHERE id = $1", tid) == NOW
