"""Fixtures for API tests: a seeded database per module, the app on a real pool, clients per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from api.app import create_app
from minewatch.clock import FrozenClock
from minewatch.db import create_pool
from minewatch.settings import Settings
from tests.api.scenario import PEPPER, World, seed

# The suite's clock: now, to the second (partitions are kept around the real date).
NOW = datetime.now(UTC).replace(microsecond=0)


def settings_for(dsn: str, mqtt_url: str | None = None) -> Settings:
    return Settings(database_url=dsn, mqtt_url=mqtt_url, token_pepper=SecretStr(PEPPER))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(db: str) -> World:
    return await seed(db, NOW)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool(db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(db, min_size=1, max_size=5)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture(scope="module")
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def client(db: str, pool: asyncpg.Pool, clock: FrozenClock, world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(db), pool=pool, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            yield c


def auth(world: World, label: str) -> dict[str, str]:
    """Headers carrying the token of one of the world's roles."""
    return {"Authorization": f"Bearer {world.tokens[label]}"}
