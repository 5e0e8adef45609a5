"""One index on `readings`, not two, on plain PostgreSQL: the primary key covers the value.

0032 added `readings_point_ts_cover_idx (point_id, ts) INCLUDE (value, status)` next to the
primary key `(point_id, ts)`: the same key twice, so every stored reading was inserted into
two btrees. Profiling the ingest showed the write path bound by PostgreSQL's index
maintenance (a binary COPY into `readings` ran 4-8x slower than into a bare table). A primary
key with INCLUDE serves both purposes: it is the ON CONFLICT arbiter of the ingest and gives
the API its index-only scans. TimescaleDB is left as it is (0032 skipped it too).

The key is rebuilt on every partition: on a large existing table this takes a while and locks
writes; run `minewatch migrate` in a maintenance window there.
"""

from __future__ import annotations

from typing import Any

from minewatch.db import ident


async def up(conn: Any, ctx: Any) -> None:
    if ctx.backend != "plain":
        return
    await conn.execute("DROP INDEX IF EXISTS readings_point_ts_cover_idx")
    name = await conn.fetchval(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'readings'::regclass AND contype = 'p'")
    if name is not None:
        await conn.execute(f"ALTER TABLE readings DROP CONSTRAINT {ident(name)}")
    await conn.execute("ALTER TABLE readings ADD PRIMARY KEY (point_id, ts) INCLUDE (value, status)")
