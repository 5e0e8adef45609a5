"""/healthz, /readyz (database and broker reachable) and /metrics labelled by route template."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from api.app import create_app
from launcher.embedded import free_port
from minewatch.settings import Settings
from tests.api.conftest import auth, settings_for
from tests.api.scenario import M1, T0_POINT, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def listener() -> AsyncIterator[int]:
    """A real TCP listener standing in for the broker (readiness only opens a TCP connection)."""
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def _client_for(db: str, pool: asyncpg.Pool, mqtt_url: str | None,
                      registry: CollectorRegistry | None = None) -> tuple[object, httpx.AsyncClient]:
    app = create_app(settings_for(db, mqtt_url), pool=pool, registry=registry)
    return app, httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


async def test_healthz_and_ready(db: str, pool: asyncpg.Pool, listener: int) -> None:
    app, client = await _client_for(db, pool, f"mqtt://127.0.0.1:{listener}")
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ready" and r.json()["database"]["ok"] and r.json()["broker"]["ok"]


async def test_not_ready_without_broker(db: str, pool: asyncpg.Pool) -> None:
    app, client = await _client_for(db, pool, f"mqtt://127.0.0.1:{free_port()}")
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        r = await client.get("/readyz")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not_ready" and body["database"]["ok"] and not body["broker"]["ok"]


async def test_not_ready_without_database(db: str, listener: int) -> None:
    dead = await asyncpg.create_pool(db, min_size=0, max_size=1)
    app, client = await _client_for(db, dead, f"mqtt://127.0.0.1:{listener}")
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        await dead.close()
        r = await client.get("/readyz")
        assert r.status_code == 503 and not r.json()["database"]["ok"] and r.json()["broker"]["ok"]


async def test_metrics_by_route_template(db: str, pool: asyncpg.Pool, world: World) -> None:
    registry = CollectorRegistry()
    app, client = await _client_for(db, pool, None, registry)
    async with app.router.lifespan_context(app), client:  # type: ignore[attr-defined]
        h = auth(world, "admin")
        await client.get(f"/v1/mines/{M1}", headers=h)
        await client.get("/v1/mines/140100000002", headers=h)
        await client.get(f"/v1/mines/{M1}/points/{T0_POINT}/readings", headers=h)
        await client.get("/v1/nothing/here", headers=h)
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert M1 not in text and "140100000002" not in text and "/v1/nothing" not in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    key = ("minewatch_api_requests_total", (("method", "GET"), ("route", "/v1/mines/{mine}"), ("status", "200")))
    assert samples[key] == 2
    readings = ("minewatch_api_request_seconds_count",
                (("method", "GET"), ("route", "/v1/mines/{mine}/points/{point}/readings")))
    assert samples[readings] == 1
    assert samples[("minewatch_api_requests_total",
                    (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))] == 1


@pytest.mark.parametrize(("env", "size"), [(None, 4), ("1", 1), ("12", 12)])
async def test_the_database_pool_is_sized_by_the_setting(db: str, world: World, monkeypatch: pytest.MonkeyPatch,
                                                         env: str | None, size: int) -> None:
    """MINEWATCH_API_POOL_SIZE bounds the API's connections (default 4 per process); requests
    beyond it wait for a connection instead of failing."""
    if env is not None:
        monkeypatch.setenv("MINEWATCH_API_POOL_SIZE", env)
    app = create_app(settings_for(db))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        pool = app.state.minewatch.pool
        assert pool.get_max_size() == size
        url = f"/v1/mines/{M1}/points/{T0_POINT}/readings"
        answers = await asyncio.gather(*(client.get(url, headers=auth(world, "admin")) for _ in range(3 * size)))
        assert [r.status_code for r in answers] == [200] * (3 * size)
        busy = await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'minewatch-api' "
                                   "AND datname = current_database()")
        assert 1 <= busy <= size


async def test_a_pool_size_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINEWATCH_API_POOL_SIZE", "0")
    with pytest.raises(ValidationError, match="api_pool_size"):
        Settings()


async def test_a_statement_over_the_time_limit_is_a_503_and_frees_its_connection(
        db: str, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request stuck in the database (here: waiting on a lock another session holds) is
    cancelled at MINEWATCH_API_STATEMENT_TIMEOUT_S with a 503 problem, and the connection
    serves the next request."""
    monkeypatch.setenv("MINEWATCH_API_STATEMENT_TIMEOUT_S", "0.3")
    monkeypatch.setenv("MINEWATCH_API_POOL_SIZE", "1")  # the next request must reuse that connection
    app = create_app(settings_for(db))
    url = f"/v1/mines/{M1}/exceedances"
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        assert await app.state.minewatch.pool.fetchval("SHOW statement_timeout") == "300ms"
        blocker = await asyncpg.connect(db)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE exceedance_events IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                r = await asyncio.wait_for(client.get(url, headers=auth(world, "admin")), 5)
                waited = time.monotonic() - started
        finally:
            await blocker.close()
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"].endswith("/unavailable") and "time limit" in r.json()["detail"]
        assert 0.3 <= waited < 5
        assert (await client.get(url, headers=auth(world, "admin"))).status_code == 200


async def test_the_default_statement_time_limit(db: str) -> None:
    app = create_app(settings_for(db))
    async with app.router.lifespan_context(app):
        assert await app.state.minewatch.pool.fetchval("SHOW statement_timeout") == "15s"
