"""Throw-away databases for the test suite and the benchmarks: create (migrated, optionally with a
registry loaded), copy from a template, drop. Names are generated here, never taken from input."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path

import asyncpg

from minewatch.db import ident, timeseries
from minewatch.db.migrate import migrate
from minewatch.db.registry_store import sync_registry
from minewatch.registry import load_registry


def with_db(dsn: str, name: str) -> str:
    """`dsn` with its database replaced by `name` (query parameters kept)."""
    base, _, _ = dsn.rpartition("/")
    query = ""
    if "?" in dsn.rsplit("/", 1)[-1]:
        query = "?" + dsn.rsplit("?", 1)[-1]
    return f"{base}/{name}{query}"


def db_name(dsn: str) -> str:
    """The database a DSN names."""
    return dsn.rsplit("/", 1)[-1].split("?")[0]


async def create_db(server_dsn: str, *, registry: Path | None, now: datetime, backend: str = "auto",
                    prefix: str = "mw_test") -> str:
    """A new database `<prefix>_<random>`, migrated, with partitions around `now` and, when given,
    the registry file loaded; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"CREATE DATABASE {ident(name)}")
    finally:
        await admin.close()
    dsn = with_db(server_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, backend=backend)
        await timeseries.maintain(conn, now=now, ahead_days=2, retention_days=3650)
        if registry is not None:
            reg, checksum = load_registry(registry)
            await sync_registry(conn, reg, checksum=checksum, source=str(registry), now=now)
    finally:
        await conn.close()
    return dsn


async def drop_db(server_dsn: str, dsn: str) -> None:
    """Drop the database `dsn` names, whoever is still connected to it."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {ident(db_name(dsn))} WITH (FORCE)")
    finally:
        await admin.close()


async def copy_db(server_dsn: str, template_dsn: str, name: str) -> str:
    """Create database `name` as a copy of the template database; returns its DSN.

    TimescaleDB's background scheduler connects to every database that has the extension, and
    CREATE DATABASE ... TEMPLATE refuses a template anyone is connected to. So the template is
    closed to new connections, whoever is on it is asked to leave, and the copy is retried
    until the last session has gone (a few ms on the plain path, where nobody is there)."""
    template = db_name(template_dsn)
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f"ALTER DATABASE {ident(template)} WITH ALLOW_CONNECTIONS false")
        for attempt in range(100):
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = $1 AND pid <> pg_backend_pid()", template)
            try:
                await admin.execute(f"CREATE DATABASE {ident(name)} TEMPLATE {ident(template)}")
                break
            except asyncpg.ObjectInUseError:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.05)
        await admin.execute(f"ALTER DATABASE {ident(name)} WITH ALLOW_CONNECTIONS true")
    finally:
        await admin.close()
    return with_db(server_dsn, name)
