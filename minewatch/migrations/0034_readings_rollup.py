"""The hourly rollup behind `readings_1h_parts(point, lo, hi)`: a refreshed table with an
invalidation log on plain PostgreSQL, the real-time continuous aggregate on TimescaleDB
(minewatch/db/timeseries.py, `create_hourly_rollup`). On plain PostgreSQL the table starts
empty; minewatch.db.rollup's refresher fills it forward from now and back through history."""

from __future__ import annotations

from typing import Any

from minewatch.db import timeseries


async def up(conn: Any, ctx: Any) -> None:
    await timeseries.create_hourly_rollup(conn, ctx.backend)
