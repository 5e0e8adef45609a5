"""Time-partitioned tables: hypertables on TimescaleDB, daily range partitions otherwise."""

from __future__ import annotations

from typing import Any

from minewatch.db import timeseries


async def up(conn: Any, ctx: Any) -> None:
    await timeseries.create_tables(conn, ctx.backend)
