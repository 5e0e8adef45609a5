"""Getting a database ready: migrations, time partitions and, when asked, the registry file."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from minewatch.db import timeseries
from minewatch.db.migrate import migrate
from minewatch.db.registry_store import sync_registry
from minewatch.registry import load_registry
from minewatch.settings import Settings


async def prepare_db(dsn: str, settings: Settings, *, now: datetime, load_registry_file: bool = True) -> None:
    """Migrate, keep partitions, and load the registry file (`settings.registry_path`), printing
    what it did for the operator."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn, backend=settings.timeseries_backend)
        for name in applied:
            print(f"  applied migration {name}")
        await timeseries.maintain(conn, now=now, ahead_days=settings.partitions_ahead_days,
                                  retention_days=settings.retention_days)
        if load_registry_file:
            reg, checksum = load_registry(settings.registry_path)
            s = await sync_registry(conn, reg, checksum=checksum, source=str(settings.registry_path), now=now)
            print(f"  registry {settings.registry_path.name}: {s.mines} mines, {s.points} points, "
                  f"{s.cards} cards, {s.threshold_versions_added} threshold versions added")
    finally:
        await conn.close()
