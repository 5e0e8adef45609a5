"""Both storage paths give the API the same answers: late data after materialisation, compressed chunks, retention.

The suite runs once per path (plain PostgreSQL, then TimescaleDB in CI), so "the same answers"
is shown by checking each path against one plain-Python reference on the same data. What
test_readings.py does not cover is covered here: readings written through the ingest's
BatchStore, hours materialised (the plain rollup refreshed; the continuous aggregates
refreshed and the chunk compressed on TimescaleDB) *before* late readings arrive into them,
an extreme value, a chunk 9 days old (past the 7-day compression horizon) next to recent
hours, and retention dropping a day the API then no longer returns.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api.readings import service
from ingest.store import BatchStore, TableBatch, WriteResult
from minewatch.db import ident, rollup, timeseries
from minewatch.db.timeseries import PartitionKeeper, current_backend
from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, World
from tests.api.test_readings import _close, _z, reference_buckets

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

POINT = f"{M1}_01MN0001_T0005"  # no readings in the shared scenario: this module's series only
URL = f"/v1/mines/{M1}/points/{POINT}/readings"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
STEP = timedelta(seconds=30)
# Old hours: 9 days back, past the 7-day compression horizon; recent hours: the last three.
OLD = service.align(NOW - timedelta(days=9), HOUR) - 3 * HOUR
RECENT = service.align(NOW, HOUR) - 3 * HOUR
EXTREME = 1e200  # finite, so the ingest takes it; its square overflows float8


def value(k: int) -> float:
    """Deterministic, uneven values (so min, max, last and avg all differ per bucket)."""
    return round(0.3 + ((k * 7919) % 97) / 100, 2)


def first_series() -> list[tuple[datetime, float]]:
    rows: list[tuple[datetime, float]] = []
    for region in (OLD, RECENT):
        for k in range(3 * 120):
            t = region + k * STEP
            if region == RECENT and t >= NOW - timedelta(minutes=5):
                break
            rows.append((t, value(k)))
    # the extreme reading alone in its minute (the minute's other readings left out), and inside an hour
    m = OLD + timedelta(minutes=70)
    rows = [r for r in rows if not m <= r[0] < m + timedelta(minutes=1)]
    rows.append((m + timedelta(seconds=10), EXTREME))
    return sorted(rows)


def late_series() -> list[tuple[datetime, float]]:
    """Readings that arrive after their hours were materialised: between the stored ones (new
    min, max and last of their minutes), a whole missing minute, and in both regions."""
    rows = []
    for region in (OLD, RECENT):
        for minute in (3, 4, 61, 122, 150):
            t = region + timedelta(minutes=minute)
            if t >= NOW - timedelta(minutes=5):
                continue
            rows += [(t + timedelta(seconds=15), 0.01), (t + timedelta(seconds=45), 3.99 + minute / 1000),
                     (t + timedelta(seconds=59, microseconds=999_999), 2.5)]
    return sorted(rows)


async def write(conn: asyncpg.Connection, rows: list[tuple[datetime, float]], *, columns: bool = True) -> WriteResult:
    """Through the ingest's BatchStore, as MQTT (columns, binary COPY) or as the file source (tuples)."""
    row = await conn.fetchrow("SELECT id, mine_id FROM points WHERE code = $1", POINT)
    assert row is not None
    pid, mine_id = row["id"], row["mine_id"]
    b = TableBatch()
    if columns:
        t = [(ts - EPOCH) // timedelta(microseconds=1) for ts, _ in rows]
        b.extend_columns([pid] * len(rows), t, [v for _, v in rows], [0] * len(rows), ("topic", M1), mine_id,
                         min(t), max(t))
    else:
        b.extend([(pid, ts, v, 0) for ts, v in rows], ("f.txt", M1), mine_id, rows[0][0], rows[-1][0])
    store = BatchStore(conn, PartitionKeeper(await current_backend(conn)), source="mqtt" if columns else "file")
    return await store.write({"readings": b}, [], now=NOW)


async def materialise(conn: asyncpg.Connection) -> None:
    """What each path's background refresh does: the rollup refresher (plain), the continuous
    aggregates' refresh (TimescaleDB)."""
    if await current_backend(conn) == "plain":
        await rollup.refresh_until_idle(conn, now=NOW)
    else:
        await timeseries.refresh_aggregates(conn)


async def get_all(client: httpx.AsyncClient, world: World, params: dict[str, str]) -> list[dict[str, object]]:
    """Every item of a range, following the cursor."""
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        p = {**params, "limit": "1000", **({"cursor": cursor} if cursor else {})}
        r = await client.get(URL, params=p, headers=auth(world, "admin"))
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


async def check_api(client: httpx.AsyncClient, world: World, readings: list[tuple[datetime, float]]) -> None:
    """Raw, 1m, 1h and 2h answers of both regions (and 1h across both) against the reference."""
    for lo, hi in ((OLD, OLD + 3 * HOUR), (RECENT, NOW)):
        raw = await get_all(client, world, {"since": lo.isoformat(), "until": hi.isoformat()})
        assert [(i["ts"], i["value"]) for i in raw] == [(_z(t), v) for t, v in readings if lo <= t < hi]
        for step in ("1m", "1h", "2h"):
            got = await get_all(client, world, {"step": step, "since": lo.isoformat(), "until": hi.isoformat()})
            _close(got, reference_buckets(readings, service.parse_step(step), lo, hi))
    # one 1h series over 9 days: compressed (TimescaleDB) and recent hours in one answer
    got = await get_all(client, world, {"step": "1h", "since": OLD.isoformat(), "until": NOW.isoformat()})
    _close(got, reference_buckets(readings, HOUR, OLD, NOW))


async def check_views(conn: asyncpg.Connection, readings: list[tuple[datetime, float]]) -> None:
    """readings_1m / readings_1h (continuous aggregates or plain views) and, on the plain path,
    the materialised rollup: each equal to the reference."""
    pid = await conn.fetchval("SELECT id FROM points WHERE code = $1", POINT)
    sources = [("readings_1m", timedelta(minutes=1)), ("readings_1h", HOUR)]
    if await current_backend(conn) == "plain":
        sources.append(("readings_1h_rollup", HOUR))
    for view, width in sources:
        rows = await conn.fetch(f"SELECT bucket, min, max, sum / n AS avg, last, n FROM {ident(view)} "
                                "WHERE point_id = $1 ORDER BY bucket", pid)
        got = [{"bucket": _z(r["bucket"]), "min": r["min"], "max": r["max"], "avg": r["avg"], "last": r["last"],
                "n": r["n"]} for r in rows]
        expected = reference_buckets(readings, width, OLD, NOW)
        if view == "readings_1h_rollup":  # materialised hours only: up to the refresher's lag
            hi = await conn.fetchval("SELECT hi FROM readings_1h_state")
            expected = [e for e in expected if datetime.fromisoformat(str(e["bucket"])) < hi]
        _close(got, expected)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def conn(db: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(db)
    try:
        yield c
    finally:
        await c.close()


async def test_late_data_after_materialisation_gives_the_reference_answers(
        client: httpx.AsyncClient, world: World, conn: asyncpg.Connection) -> None:
    first = first_series()
    res = await write(conn, first)
    assert res.stored == {"readings": len(first)}
    await materialise(conn)
    backend = await current_backend(conn)
    if backend == "timescale":
        # as the policy does past 7 days: the old hours now live in a compressed chunk
        compressed = await conn.fetch(
            "SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('readings', older_than => $1::timestamptz) c",
            NOW - timedelta(days=7))
        assert compressed
        assert await conn.fetchval(
            "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings' "
            "AND range_end <= $1", NOW - timedelta(days=7))
    else:
        assert await conn.fetchval("SELECT count(*) FROM readings_1h_rollup WHERE bucket >= $1", OLD) > 0
    await check_api(client, world, first)
    await check_views(conn, first)

    # Late readings into the materialised (and, on TimescaleDB, compressed) hours, with a
    # redelivery of stored ones: the API answers them at once, without a refresh.
    late = late_series()
    res = await write(conn, [*late, *first[:5]], columns=False)
    assert res.stored == {"readings": len(late)} and res.duplicates == {"readings": 5}
    everything = sorted([*first, *late])
    await check_api(client, world, everything)
    # The extreme value: its minute and its hour, exact.
    minute = await get_all(client, world, {"step": "1m", "since": (OLD + timedelta(minutes=70)).isoformat(),
                                           "until": (OLD + timedelta(minutes=71)).isoformat()})
    assert [(i["min"], i["max"], i["avg"], i["last"], i["n"]) for i in minute] == [(EXTREME, EXTREME, EXTREME, EXTREME, 1)]
    # The bucket views and the rollup after the next refresh, equal to the reference too.
    await materialise(conn)
    await check_views(conn, everything)


async def test_an_extreme_value_beside_another_in_one_minute(client: httpx.AsyncClient, world: World,
                                                             conn: asyncpg.Connection) -> None:
    t = OLD - 2 * HOUR
    assert (await write(conn, [(t, 0.5), (t + STEP / 2, EXTREME)])).stored == {"readings": 2}
    r = await client.get(URL, params={"step": "1m", "since": t.isoformat(), "until": (t + HOUR).isoformat()},
                         headers=auth(world, "admin"))
    assert r.status_code == 200, r.text
    (b,) = r.json()["items"]
    assert (b["min"], b["max"], b["last"], b["n"]) == (0.5, EXTREME, EXTREME, 2)
    assert math.isclose(b["avg"], EXTREME / 2)


async def test_retention_drops_old_days_and_the_api_no_longer_returns_them(
        client: httpx.AsyncClient, world: World, conn: asyncpg.Connection, db: str) -> None:
    """Retention (daily partitions dropped by maintain(); TimescaleDB's policy job dropping
    chunks) removes a 60-day-old day, materialised and (TimescaleDB) compressed before: raw and
    bucketed answers for it are empty afterwards, and the newer days are all still there."""
    day = service.align(NOW - timedelta(days=60), timedelta(days=1)) + 6 * HOUR
    old = [(day + k * STEP, value(k)) for k in range(240)]
    assert (await write(conn, old)).stored == {"readings": len(old)}
    await materialise(conn)
    backend = await current_backend(conn)
    if backend == "timescale":
        await conn.fetch("SELECT compress_chunk(c, if_not_compressed => true) "
                         "FROM show_chunks('readings', older_than => $1::timestamptz) c", NOW - timedelta(days=7))
    params = {"since": day.isoformat(), "until": (day + 2 * HOUR).isoformat()}
    assert len(await get_all(client, world, params)) == 240
    assert len(await get_all(client, world, {**params, "step": "1h"})) == 2
    for view in ("readings_1m", "readings_1h"):
        assert await conn.fetchval(f"SELECT count(*) FROM {ident(view)} WHERE bucket >= $1 AND bucket < $2",
                                   day, day + 2 * HOUR) > 0
    keep = await get_all(client, world, {"step": "1h", "since": OLD.isoformat(), "until": NOW.isoformat()})
    try:
        await timeseries.maintain(conn, now=NOW, ahead_days=2, retention_days=30)
        if backend == "timescale":
            for job in await conn.fetch("SELECT job_id FROM timescaledb_information.jobs "
                                        "WHERE proc_name = 'policy_retention'"):
                await conn.execute("CALL run_job($1)", job["job_id"])
        assert await conn.fetchval("SELECT count(*) FROM readings WHERE ts < $1", NOW - timedelta(days=30)) == 0
        assert await get_all(client, world, params) == []
        assert await get_all(client, world, {**params, "step": "1h"}) == []
        assert await get_all(client, world, {**params, "step": "1m"}) == []
        assert await get_all(client, world, {"step": "1h", "since": OLD.isoformat(), "until": NOW.isoformat()}) == keep
        # the bucket views (continuous aggregates on TimescaleDB) and the rollup forget the day too
        for view in ("readings_1m", "readings_1h", *(("readings_1h_rollup",) if backend == "plain" else ())):
            assert await conn.fetchval(f"SELECT count(*) FROM {ident(view)} WHERE bucket < $1", NOW - timedelta(days=30)) == 0
    finally:
        await timeseries.maintain(conn, now=NOW, ahead_days=2, retention_days=3650)
