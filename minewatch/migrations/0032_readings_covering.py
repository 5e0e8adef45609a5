"""A covering index for one point's readings over a range, on plain PostgreSQL (index-only scans).

Readings arrive time-major (every point at t, then every point at t + 30 s), so one point's
rows lie one per heap page: a 30-day series of one point (86 400 rows) would touch 86 400
pages through the (point_id, ts) key. With the value and status in the index the same
series is a few contiguous leaf pages. TimescaleDB serves 1m/1h from continuous aggregates
and compresses chunks after a week (where btree indexes do not apply), so it is skipped there.
"""

from __future__ import annotations

from typing import Any


async def up(conn: Any, ctx: Any) -> None:
    if ctx.backend != "plain":
        return
    await conn.execute(
        "CREATE INDEX IF NOT EXISTS readings_point_ts_cover_idx ON readings (point_id, ts) INCLUDE (value, status)")
