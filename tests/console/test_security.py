"""Console security: sessions required everywhere, CSRF on every POST, scope walls between mines,
passwords never shown or logged, sign-in throttled, session cookies hardened and stored hashed."""

from __future__ import annotations

import logging
import re

import asyncpg
import httpx
import pytest

from api.console.sessions import MAX_FAILURES
from api.console.users import create_user
from tests.api.scenario import ALL_MINES, COUNTY_GJ_MINES, COUNTY_QX_MINES, M1, M2, World
from tests.console.conftest import NOW, PASSWORD, USERS, csrf_of, new_client, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

# What each role label may see (the sample registry: one province, one city, two counties).
VISIBLE: dict[str, set[str]] = {"admin": ALL_MINES, "province": ALL_MINES, "city": ALL_MINES,
                                "county_qx": COUNTY_QX_MINES, "county_gj": COUNTY_GJ_MINES,
                                "mine1": {M1}, "mine2": {M2}}
CASE_MINE = {"m1_open": M1, "m1_order": M1, "m2_rectified": M2, "m2_closed": M2, "m3_open": "140100000003"}


def pages(world: World) -> list[str]:
    """Every GET route of the console that shows data, for every mine and case of the world."""
    out = ["/console/", "/console/cases", "/console/cases?state=closed"]
    for mine in sorted(ALL_MINES):
        out += [f"/console/mines/{mine}", f"/console/mines/{mine}/live", f"/console/mines/{mine}/exceedances",
                f"/console/mines/{mine}/exceedances?format=csv", f"/console/mines/{mine}/exceedances?format=xlsx",
                f"/console/cases?mine={mine}"]
    out += [f"/console/cases/{cid}" for cid in world.cases.values()]
    return out


async def test_nothing_answers_without_a_session(app_transport: httpx.ASGITransport, world: World) -> None:
    async with new_client(app_transport) as anon:
        for path in pages(world):
            r = await anon.get(path)
            assert r.status_code == 303 and r.headers["location"].startswith("/console/login?next="), path
            assert M1 not in r.text
            r = await anon.get(path, headers={"HX-Request": "true"})
            assert r.status_code == 401 and r.headers["HX-Redirect"] == "/console/login", path
        cid = world.cases["m1_open"]
        for path, data in ((f"/console/cases/{cid}/actions", {"action": "acknowledge"}),
                           (f"/console/cases/{cid}/measures", {"measure": "analyse_cause"})):
            r = await anon.post(path, data=data)
            assert r.status_code == 401, path
        anon.cookies.set("mw_session", "forged-or-expired")
        r = await anon.get("/console/")
        assert r.status_code == 303


async def test_scope_matrix(clients: dict[str, httpx.AsyncClient], world: World, pool: asyncpg.Pool) -> None:
    """Every route with every role: a mine outside the scope answers 404 and its code, name and
    cases appear nowhere; lists show only the scope."""
    names = {r["code"]: r["name"] for r in await pool.fetch("SELECT code, name FROM mines")}
    case_ids = {cid: CASE_MINE[label] for label, cid in world.cases.items()}
    for label, client in clients.items():
        visible = VISIBLE[label]
        hidden = ALL_MINES - visible
        for path in pages(world):
            r = await client.get(path)
            mine = next((m for m in ALL_MINES if f"/mines/{m}" in path or path.endswith(f"mine={m}")), None)
            case = next((cid for cid in case_ids if path == f"/console/cases/{cid}"), None)
            owner = mine or (case_ids[case] if case else None)
            if owner is not None and owner not in visible:
                assert r.status_code == 404 or (path.endswith(f"mine={owner}") and r.status_code == 200), (label, path)
            else:
                assert r.status_code == 200, (label, path, r.status_code)
            body = r.text if "xlsx" not in path else ""
            if "mine=" in path:  # the filter form echoes what was asked for; that is not the mine's data
                body = body.replace(f'value="{path.rsplit("=", 1)[1]}"', "")
            for m in hidden:
                assert m not in body and names[m] not in body, (label, path, m)
            for cid, cmine in case_ids.items():
                if cmine not in visible:
                    assert f"/console/cases/{cid}\"" not in body, (label, path, cid)
        # a case of another mine cannot be acted on either: 404, and nothing changes
        for cid, cmine in case_ids.items():
            if cmine in visible:
                continue
            page = await client.get("/console/")
            r = await client.post(f"/console/cases/{cid}/actions", data={"action": "acknowledge"},
                                  headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"})
            assert r.status_code == 404, (label, cid)
            r = await client.post(f"/console/cases/{cid}/measures", data={"measure": "analyse_cause"},
                                  headers={"X-CSRF-Token": csrf_of(page.text), "HX-Request": "true"})
            assert r.status_code == 404, (label, cid)


async def test_csrf_token_required(clients: dict[str, httpx.AsyncClient], world: World, pool: asyncpg.Pool) -> None:
    c = clients["mine1"]
    cid = world.cases["m1_open"]
    before = await pool.fetchval("SELECT state FROM cases WHERE id = $1", cid)
    for headers, data in (({}, {"action": "acknowledge"}),
                          ({"X-CSRF-Token": "wrong"}, {"action": "acknowledge"}),
                          ({}, {"action": "acknowledge", "csrf": "wrong"})):
        r = await c.post(f"/console/cases/{cid}/actions", data=data, headers=headers)
        assert r.status_code == 403 and "CSRF" in r.text
        r = await c.post(f"/console/cases/{cid}/measures", data={**data, "measure": "analyse_cause"}, headers=headers)
        assert r.status_code == 403
    # another user's token is not this session's token
    other = csrf_of((await clients["mine2"].get("/console/")).text)
    r = await c.post(f"/console/cases/{cid}/actions", data={"action": "acknowledge"}, headers={"X-CSRF-Token": other})
    assert r.status_code == 403
    assert await pool.fetchval("SELECT state FROM cases WHERE id = $1", cid) == before
    # the sign-in form has its own guard: without the double-submit value it is refused
    async with new_client(clients["mine1"]._transport) as anon:  # type: ignore[arg-type]
        r = await anon.post("/console/login", data={"username": "mine1", "password": PASSWORD, "pre": "x"})
        assert r.status_code == 403 and "mw_session" not in r.cookies


async def test_session_cookie_is_hardened_and_stored_hashed(app_transport: httpx.ASGITransport,
                                                            pool: asyncpg.Pool) -> None:
    async with new_client(app_transport) as c:
        r = await sign_in(c, "county_gj")
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
        value = c.cookies["mw_session"]
        assert len(value) >= 40
        stored = await pool.fetchval("SELECT count(*) FROM console_sessions WHERE id_hash = $1", value)
        assert stored == 0  # only its hash is stored
        page = await c.get("/console/")
        assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
            "content-security-policy"]
        r = await c.post("/console/logout")
        assert r.status_code == 303
        c.cookies.set("mw_session", value)
        assert (await c.get("/console/")).status_code == 303  # the session is gone server-side


async def test_passwords_never_logged_or_returned(app_transport: httpx.ASGITransport, pool: asyncpg.Pool,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    secret = "a-very-secret-password-77"
    async with new_client(app_transport) as c:
        with caplog.at_level(logging.DEBUG):
            bad = await sign_in(c, "city", secret)
            good = await sign_in(c, "city")
            page = await c.get("/console/")
    assert bad.status_code == 401 and good.status_code == 303
    for text in (bad.text, page.text, caplog.text):
        assert secret not in text and PASSWORD not in text
        assert "$argon2" not in text
    stored = await pool.fetchval("SELECT password_hash FROM console_users WHERE username = 'city'")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_sign_in_is_throttled(app_transport: httpx.ASGITransport, pool: asyncpg.Pool) -> None:
    conn = await pool.acquire()
    try:
        await create_user(conn, username="throttled", password=PASSWORD, role="mine", scope=[M1], now=NOW)
    finally:
        await pool.release(conn)
    async with new_client(app_transport) as c:
        for _ in range(MAX_FAILURES):
            r = await sign_in(c, "throttled", "wrong password!")
            assert r.status_code == 401 and "用户名或密码错误" in r.text
        r = await sign_in(c, "throttled")  # even the right password, for the rest of the window
        assert r.status_code == 429 and "mw_session" not in r.cookies
        assert re.search("15", r.text)
        # another user from the same address is not locked out
        assert (await sign_in(c, "mine2")).status_code == 303
    rows = await pool.fetchval("SELECT count(*) FROM console_login_failures WHERE username = 'throttled'")
    assert rows == MAX_FAILURES  # held in the database: every worker sees the same count


async def test_disabled_user_loses_its_sessions(app_transport: httpx.ASGITransport, pool: asyncpg.Pool) -> None:
    from api.console.users import disable_user

    conn = await pool.acquire()
    try:
        await create_user(conn, username="leaver", password=PASSWORD, role="county", scope=["140121"], now=NOW)
        async with new_client(app_transport) as c:
            assert (await sign_in(c, "leaver")).status_code == 303
            assert (await c.get("/console/")).status_code == 200
            assert await disable_user(conn, username="leaver", now=NOW)
            assert (await c.get("/console/")).status_code == 303
            assert (await sign_in(c, "leaver")).status_code == 401
    finally:
        await pool.release(conn)


async def test_user_roles_match_token_roles() -> None:
    """One owner of the roles: the console's users take exactly the API tokens' roles."""
    from api.auth.tokens import ROLES

    assert {role for role, _ in USERS.values()} == set(ROLES)
