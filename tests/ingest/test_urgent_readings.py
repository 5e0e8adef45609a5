"""Readings at or beyond their point's alarm level mark their mine's dirty window urgent.

The rules worker claims urgent windows first (rules.store.claim_mine, migration 0092), so a
methane rise at a face is judged before the other mines' routine readings. The ingest decides
from its registry lookup (refreshed every 30 s): the alarm levels of each point's threshold
version in effect. Both write paths mark the window: COPY straight in, and the staging path a
duplicate sends the batch down. The levels are the test registry's defaults by location type
(tests/rules/db/data/registry.yaml): 1.0 %CH4 at an upper corner (T0), O2 alarming at 20.0 % and below.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from ingest.service import _Accumulator, _Outcome
from ingest.store import BatchStore
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.registry.db import AlarmTable, Lookup, load_lookup
from tests.conftest import _drop_db
from tests.rules.db.helpers import new_db

pytestmark = pytest.mark.integration
M1, M2 = "149900000001", "149900000002"
CH4, O2 = f"{M1}_01MN0001_T0001", f"{M1}_01MN0012_T0006"
CH4_2 = f"{M2}_01MN0001_T0001"
T = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)


def test_alarm_table_finds_the_mines_with_a_reading_at_or_beyond_a_level() -> None:
    nan = math.nan
    table = AlarmTable.build([1, 2, 4], [10, 20, 40], [1.0, nan, nan], [nan, 18.0, nan])
    assert table.mines_of(np.array([1, 1, 2]), np.array([0.2, 0.99, 20.9])) == set()
    assert table.mines_of(np.array([1]), np.array([1.0])) == {10}  # at the level
    assert table.mines_of(np.array([2, 1]), np.array([18.0, 1.5])) == {10, 20}
    assert table.mines_of(np.array([3, 4]), np.array([99.0, 99.0])) == set()  # no levels
    assert table.mines_of(np.array([7]), np.array([99.0])) == set()  # beyond the table (a newer point)
    assert AlarmTable.build([], [], [], []).mines_of(np.array([1]), np.array([5.0])) == set()


@pytest.fixture
def db(pg_dsn: str) -> Iterator[str]:
    import asyncio
    dsn = asyncio.run(new_db(pg_dsn))
    yield dsn
    asyncio.run(_drop_db(pg_dsn, dsn))


async def write(conn: asyncpg.Connection, lk: Lookup, mine: str, rows: list[tuple[str, datetime, float]]) -> None:
    """One MQTT message of readings of one mine, through the hot path's accumulator and the store."""
    acc = _Accumulator(tables={}, dead=[], rejected=Tally(), received=Tally())
    pids = [lk.points[code][0] for code, _, _ in rows]
    tss = [int(ts.timestamp() * 1_000_000) for _, ts, _ in rows]
    acc.add(_Outcome(topic=f"mines/{mine}/safety", fast=((pids, tss, [v for _, _, v in rows], [0] * len(rows)),
                                                         (mine, "safety"))), lk)  # as the MQTT hot path does
    await BatchStore(conn, PartitionKeeper(await current_backend(conn))).write(acc.tables, [], now=datetime.now(UTC))


async def windows(conn: asyncpg.Connection) -> list[tuple[str, bool]]:
    rows = await conn.fetch("SELECT m.code, w.urgent FROM dirty_windows w JOIN mines m ON m.id = w.mine_id ORDER BY w.id")
    await conn.execute("DELETE FROM dirty_windows")
    return [(r["code"], r["urgent"]) for r in rows]


async def test_a_reading_at_its_alarm_level_makes_the_window_urgent_on_both_write_paths(db: str) -> None:
    conn = await asyncpg.connect(db)
    try:
        lk = await load_lookup(conn)
        assert lk.alarms is not None
        ch4, o2 = lk.points[CH4][0], lk.points[O2][0]
        assert lk.alarms.hi[ch4] == 1.0 and math.isnan(lk.alarms.lo[ch4])
        assert math.isnan(lk.alarms.hi[o2]) and lk.alarms.lo[o2] == 20.0
        await conn.execute("DELETE FROM dirty_windows")

        await write(conn, lk, M1, [(CH4, T, 0.4), (O2, T, 20.9)])
        assert await windows(conn) == [(M1, False)]
        await write(conn, lk, M1, [(CH4, T + timedelta(seconds=10), 1.0), (O2, T + timedelta(seconds=10), 20.9)])
        assert await windows(conn) == [(M1, True)]
        await write(conn, lk, M1, [(O2, T + timedelta(seconds=20), 19.5)])
        assert await windows(conn) == [(M1, True)]
        # A duplicate of a stored reading: the staging path, which marks the window too.
        await write(conn, lk, M1, [(CH4, T + timedelta(seconds=10), 1.0), (CH4, T + timedelta(seconds=30), 1.2)])
        assert await conn.fetchval("SELECT count(*) FROM readings") == 6
        assert await windows(conn) == [(M1, True)]
        # Only the mine whose reading alarms: the other mine's window of the same batch is not urgent.
        await write(conn, lk, M2, [(CH4_2, T + timedelta(seconds=40), 0.3)])
        assert await windows(conn) == [(M2, False)]
    finally:
        await conn.close()
