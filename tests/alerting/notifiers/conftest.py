"""Fixtures: one local HTTP server per test module, and each client per test (httpx and the lean HTTP/1.1 one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from alerting.notifiers.h1 import H1Client
from tests.alerting.notifiers.servers import Running, local_server


@pytest.fixture(scope="module")
def server() -> Iterator[Running]:
    with local_server() as running:
        yield running


# The project runs async fixtures on the session loop by default; a client must live on the
# loop of the test that uses it, or its connections outlive their loop unclosed.
# Every notifier test runs with both clients the notifiers accept: httpx, and the lean
# HTTP/1.1 client the alerting worker uses (alerting/notifiers/h1.py).
@pytest_asyncio.fixture(loop_scope="function", params=["httpx", "h1"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient | H1Client]:
    if request.param == "h1":
        async with H1Client(max_connections=4) as h1:
            yield h1
        return
    # trust_env off: a proxy configured on the machine must not intercept 127.0.0.1 traffic
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c
