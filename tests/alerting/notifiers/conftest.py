"""Fixtures: one local HTTP server per test module, and an httpx client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from tests.alerting.notifiers.servers import Running, local_server


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with local_server() as running:
        yield running


# The project runs async fixtures on the session loop by default; a client must live on the
# loop of the test that uses it, or its connections outlive their loop unclosed.
@pytest_asyncio.fixture(loop_scope="function")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env off: a proxy configured on the machine must not intercept 127.0.0.1 traffic
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c
