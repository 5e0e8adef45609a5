"""An in-process ingest on a real broker and database, for tests that publish exact bytes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry

from ingest.consumer import MqttSource
from ingest.metrics import IngestMetrics
from ingest.service import IngestService, Totals
from minewatch.clock import SystemClock
from minewatch.registry import load_registry
from tests.conftest import SAMPLE_REGISTRY
from tests.mqtt_helpers import publish_all


@dataclass
class Running:
    """The ingest under test: its service, the task running it, its metrics registry."""

    service: IngestService
    task: asyncio.Task[Any]
    source: MqttSource
    registry: CollectorRegistry


@contextlib.asynccontextmanager
async def running_ingest(dsn: str, url: str, prefix: str, *, field_variant: bool = False,
                         source_kw: dict[str, Any] | None = None, **service_kw: Any) -> AsyncIterator[Running]:
    """Start an IngestService on `prefix`; on exit check it is still running, then stop it."""
    registry = CollectorRegistry()
    source = MqttSource(url, client_id=f"h-{prefix.strip('/')}", topic_prefix=prefix, share_group=None,
                        field_variant=field_variant, **(source_kw or {}))
    service = IngestService(source, dsn, clock=SystemClock(), metrics=IngestMetrics(registry), **service_kw)
    task = asyncio.create_task(service.run())
    assert await asyncio.to_thread(source.connected.wait, 10)
    await asyncio.sleep(0.3)  # SUBACK
    try:
        yield Running(service, task, source, registry)
        assert not task.done(), f"the ingest stopped: {task.exception() if task.done() else ''}"
    finally:
        service.stop()
        await asyncio.wait_for(task, 20)


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError("timed out waiting for the ingest")
        await asyncio.sleep(0.1)


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    """(readings, dead letters) in the database."""
    r = await conn.fetchval("SELECT count(*) FROM readings")
    d = await conn.fetchval("SELECT count(*) FROM dead_letters")
    return int(r), int(d)


def registry_codes() -> tuple[str, list[str]]:
    """The first sample mine's code and its point codes."""
    reg, _ = load_registry(SAMPLE_REGISTRY)
    m = reg.mines[0]
    return m.code, [p.code for p in m.points]


async def ingest_published(dsn: str, url: str, prefix: str, client_id: str, messages: list[tuple[str, bytes]], *,
                           expect: int | None = None, field_variant: bool = False,
                           settle_s: float = 1.0, timeout: float = 60.0) -> Totals:
    """Run an IngestService on `prefix` while `messages` are published; stop it once `expect`
    messages (default: all of them) are written and acknowledged and `settle_s` more pass with
    nothing new (a message too many would show), and return its totals.

    Waiting for the count, not for the ingest to fall idle: an idle timer decides *when the test
    looks*, and on a loaded machine the pure-Python amqtt broker delivered a burst's last message
    more than the 2 s idle after the one before it (CI lost the tail twice that way)."""
    source = MqttSource(url, client_id=client_id, topic_prefix=prefix, field_variant=field_variant)
    service = IngestService(source, dsn, clock=SystemClock(), metrics=IngestMetrics(CollectorRegistry()))
    task = asyncio.create_task(service.run())
    try:
        assert await asyncio.to_thread(source.connected.wait, 20), "ingest did not connect"
        await asyncio.sleep(0.5)  # SUBACK
        if messages:
            await asyncio.to_thread(publish_all, url, messages)
        want = len(messages) if expect is None else expect

        async def arrived() -> bool:
            assert not task.done(), f"the ingest stopped: {task.exception() if task.done() else ''}"
            return service.totals.messages >= want

        await wait_until(arrived, timeout)
        seen = -1
        while seen != service.totals.messages:
            seen = service.totals.messages
            await asyncio.sleep(settle_s)
    finally:
        service.stop()
    return await asyncio.wait_for(task, 60)
