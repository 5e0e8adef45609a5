"""The hourly rollup's primary key carries the row (plain PostgreSQL): 30 days of one point in
~10 index pages instead of 720 heap pages.

The refresher materialises hour by hour for every point, so one point's rows lie one per heap
page; `readings_1h_parts` reading 720 of them was half of a 30-day hourly page's time in
PostgreSQL (~2.9 ms of ~6 ms on the benchmark data). With the row in the key's INCLUDE list
the scan is index-only (the refresher's rows are all-visible after autovacuum). The rollup is
small (~120 MB for 50 mines x 40 points x 30 days); the key is rebuilt in seconds there.
"""

from __future__ import annotations

from typing import Any

from minewatch.db import ident


async def up(conn: Any, ctx: Any) -> None:
    if ctx.backend != "plain":
        return
    name = await conn.fetchval(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'readings_1h_rollup'::regclass AND contype = 'p'")
    if name is not None:
        await conn.execute(f"ALTER TABLE readings_1h_rollup DROP CONSTRAINT {ident(name)}")
    await conn.execute("ALTER TABLE readings_1h_rollup ADD PRIMARY KEY (point_id, bucket) "
                       "INCLUDE (min, max, sum, n, last)")
