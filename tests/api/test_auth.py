"""Bearer tokens: 401 problems with a challenge, hashed storage, revocation, token creation rules, CLI."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import httpx
import pytest

from api.auth.principal import authenticate
from api.auth.tokens import TokenError, create_token, hash_token, revoke_token
from api.errors import NotFound
from api.mines.service import visible_mine
from api.readings.service import find_point
from minewatch.db import create_pool
from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, M2, PEPPER, T1_POINT, World

T2_POINT = f"{M2}_01MN0001_T0003"  # a methane point of M2 (sample registry)

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


@pytest.mark.parametrize(("label", "mine", "point", "expected"), [
    # an admin names a mine and a point of it: both ids, for any mine
    ("admin", M2, T2_POINT, (M2, True, T2_POINT, True)),
    # a point of another mine under this mine's path: no such point here
    ("admin", M2, T1_POINT, (M2, True, T1_POINT, False)),
    ("admin", "NOPE", T1_POINT, ("NOPE", False, T1_POINT, False)),  # no such mine, so no such point
    ("admin", "x" * 41, T1_POINT, (None, False, None, False)),  # longer than any code: not looked up
    ("admin", M2 + "\x00", T1_POINT, (None, False, None, False)),  # not a code's alphabet: not looked up
    ("admin", M2, "T\x00", (M2, True, None, False)),
    # resolved whatever the scope: visibility is decided by the scope afterwards (visible_mine)
    ("mine1", M2, T2_POINT, (M2, True, T2_POINT, True)),
])
async def test_the_token_lookup_resolves_the_paths_mine_and_point(
        pool: asyncpg.Pool, world: World, label: str, mine: str, point: str,
        expected: tuple[str | None, bool, str | None, bool]) -> None:
    principal = await authenticate(pool, world.tokens[label], pepper=PEPPER, now=NOW, mine=mine, point=point)
    assert principal is not None
    p = principal.path
    assert (p.mine_code, p.mine_id is not None, p.point_code, p.point is not None) == expected
    if p.mine_id is not None:
        assert p.mine_id == await pool.fetchval("SELECT id FROM mines WHERE code = $1", mine)
    if p.point is not None:
        assert p.point == tuple(await pool.fetchrow(
            "SELECT p.id, p.unit FROM points p JOIN mines m ON m.id = p.mine_id WHERE m.code = $1 AND p.code = $2",
            mine, point))


async def test_an_admins_path_mine_and_point_cost_no_further_query(db: str, pool: asyncpg.Pool, world: World) -> None:
    """What the token lookup resolved is used as it is: with a closed pool, any further query
    would raise. A code the path did not name is still looked up, and scope still decides."""
    admin = await authenticate(pool, world.tokens["admin"], pepper=PEPPER, now=NOW, mine=M2, point=T2_POINT)
    mine1 = await authenticate(pool, world.tokens["mine1"], pepper=PEPPER, now=NOW, mine=M2, point=T2_POINT)
    assert admin is not None and mine1 is not None
    closed = await create_pool(db, min_size=1, max_size=1)
    await closed.close()
    ref = await visible_mine(pool=closed, principal=admin, code=M2)
    point = await find_point(pool=closed, mine_id=ref.id, code=T2_POINT, path=admin.path)
    assert (ref.id, point.id) == (admin.path.mine_id, admin.path.point and admin.path.point[0])
    with pytest.raises(NotFound):  # resolved, and out of this mine token's scope
        await visible_mine(pool=closed, principal=mine1, code=M2)
    with pytest.raises(asyncpg.InterfaceError):  # not the path's mine: a query, on the closed pool
        await visible_mine(pool=closed, principal=admin, code=M1)
    with pytest.raises(asyncpg.InterfaceError):  # not the path's point
        await find_point(pool=closed, mine_id=ref.id, code=T1_POINT, path=admin.path)
