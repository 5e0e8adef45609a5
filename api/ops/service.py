"""Dependency checks for readiness: a query on the pool, a TCP connect to the broker."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

import asyncpg

from api.ops.schemas import Check

# Short: a readiness probe that hangs is worse than one that says "not ready".
DB_TIMEOUT_S = 2.0
BROKER_TIMEOUT_S = 1.0
_DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883, "ws": 80, "wss": 443}


async def check_database(pool: asyncpg.Pool) -> Check:
    """The database answers a trivial query within the timeout."""
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            await pool.fetchval("SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return Check(ok=False, detail=f"database unreachable: {type(exc).__name__}")
    return Check(ok=True, detail="")


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of an mqtt:// (or mqtts://, tcp://) URL."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 1883)
    return host, port


async def check_broker(url: str | None) -> Check:
    """The broker accepts a TCP connection within the timeout (no MQTT session is opened)."""
    if not url:
        return Check(ok=True, detail="no broker configured (MQTT_URL unset); not checked")
    try:
        host, port = broker_address(url)
    except ValueError as exc:
        return Check(ok=False, detail=f"bad MQTT_URL: {exc}")
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (TimeoutError, OSError) as exc:
        return Check(ok=False, detail=f"broker {host}:{port} unreachable: {type(exc).__name__}")
    writer.close()
    # The broker may reset a connection that never said CONNECT; it was reachable all the same.
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Check(ok=True, detail="")
