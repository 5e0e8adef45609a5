"""Fixtures for console tests: the API tests' seeded world, a console user per role, signed-in clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import httpx
import pytest_asyncio

from api.app import create_app
from api.console.users import create_user
from minewatch.clock import FrozenClock
from tests.api import conftest as api_fixtures
from tests.api.conftest import NOW, settings_for
from tests.api.scenario import CITY, COUNTY_GJ, COUNTY_QX, M1, M2, PROVINCE, World, seed

PASSWORD = "correct horse battery staple"
# label -> (role, scope); the same labels as the API tests' tokens
USERS: dict[str, tuple[str, list[str]]] = {
    "admin": ("admin", []), "mine1": ("mine", [M1]), "mine2": ("mine", [M2]),
    "county_qx": ("county", [COUNTY_QX]), "county_gj": ("county", [COUNTY_GJ]),
    "city": ("city", [CITY]), "province": ("province", [PROVINCE]),
}


async def add_users(dsn: str, now: datetime) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for label, (role, scope) in USERS.items():
            await create_user(conn, username=label, password=PASSWORD, role=role, scope=scope, now=now,
                              display_name=f"{label} person")
    finally:
        await conn.close()


# The API tests' pool and frozen clock, shared rather than written again.
pool = api_fixtures.pool
clock = api_fixtures.clock


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(db: str) -> World:
    w = await seed(db, NOW)
    await add_users(db, NOW)
    return w


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def app_transport(db: str, pool: asyncpg.Pool, clock: FrozenClock, world: World
                        ) -> AsyncIterator[httpx.ASGITransport]:
    app = create_app(settings_for(db), pool=pool, clock=clock)
    async with app.router.lifespan_context(app):
        yield httpx.ASGITransport(app=app)


def new_client(transport: httpx.ASGITransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, base_url="http://console.test", follow_redirects=False)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """GET the sign-in form (its double-submit cookie and field), then POST it."""
    page = await client.get("/console/login")
    pre = re.search(r'name="pre" value="([^"]+)"', page.text)
    assert pre, page.text
    return await client.post("/console/login", data={"username": username, "password": password,
                                                     "pre": pre.group(1), "next": "/console/"})


def csrf_of(html: str) -> str:
    m = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert m, html[:500]
    return m.group(1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clients(app_transport: httpx.ASGITransport) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """A signed-in client per role label."""
    out: dict[str, httpx.AsyncClient] = {}
    try:
        for label in USERS:
            c = new_client(app_transport)
            r = await sign_in(c, label)
            assert r.status_code == 303, r.text
            out[label] = c
        yield out
    finally:
        for c in out.values():
            await c.aclose()
