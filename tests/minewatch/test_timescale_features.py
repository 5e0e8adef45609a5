"""TimescaleDB's features on its own path: hypertables and policies, late data into compressed chunks, retention.

Everything here skips on plain PostgreSQL (tests/minewatch/test_timeseries.py covers its daily
partitions; tests/api/test_readings_both_paths.py compares both paths' API answers). Rows go in
through the ingest's own `BatchStore` (the MQTT column path and the tuple path), so what is
tested is what production writes: COPY straight into the hypertable, and on a duplicate the
staging table with INSERT ... ON CONFLICT DO NOTHING.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from ingest.store import BatchStore, TableBatch, WriteResult
from minewatch.db import ident, timeseries
from minewatch.db.timeseries import PartitionKeeper
from minewatch.timeutil import to_ns
from rules.backfill import backfill
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import copy_readings, copy_station_states, new_db, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

PACK = builtin_pack("default")
M1, M2 = "149900000001", "149900000002"
A = f"{M1}_01MN0001_T0001"  # upper corner methane, face F1
B = f"{M1}_01MN0001_T0002"  # face methane, F1
C = f"{M2}_01MN0001_T0001"  # another mine: its readings must come through untouched
# A past Monday, far beyond the 7-day compression horizon (the policy would have compressed it).
DAY0 = datetime(2026, 10, 5, tzinfo=UTC)
STEP = timedelta(seconds=30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TABLES = ("readings", "card_reads", "station_states")


def us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


@pytest_asyncio.fixture
async def ts_db(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh database with the rules tests' registry (3 mines x 6 points), on TimescaleDB only."""
    dsn = await new_db(pg_dsn)
    try:
        conn = await asyncpg.connect(dsn)
        try:
            backend = await timeseries.current_backend(conn)
        finally:
            await conn.close()
        if backend != "timescale":
            pytest.skip("plain PostgreSQL: these are TimescaleDB features")
        yield dsn
    finally:
        await _drop_db(pg_dsn, dsn)


class Writer:
    """Writes readings, card reads and station states as the ingest does (BatchStore)."""

    def __init__(self, conn: asyncpg.Connection, ids: dict[str, tuple[int, int]], stations: dict[str, tuple[int, int]]):
        self.conn, self.ids, self.stations = conn, ids, stations

    async def write(self, readings: Sequence[tuple[str, datetime, float]],
                    cards: Sequence[tuple[int, datetime, str]] = (), states: Sequence[tuple[str, datetime, int]] = (),
                    *, columns: bool = True) -> WriteResult:
        batches: dict[str, TableBatch] = {}
        if readings:
            b = batches.setdefault("readings", TableBatch())
            by_mine: dict[int, list[tuple[str, datetime, float]]] = {}
            for r in readings:
                by_mine.setdefault(self.ids[r[0]][1], []).append(r)
            for mine_id, rows in by_mine.items():
                if columns:  # the MQTT hot path: columns, binary COPY
                    t = [us(ts) for _, ts, _ in rows]
                    b.extend_columns([self.ids[c][0] for c, _, _ in rows], t, [v for _, _, v in rows], [0] * len(rows),
                                     ("topic", M1), mine_id, min(t), max(t))
                else:  # the file source: tuples
                    b.extend([(self.ids[c][0], ts, v, 0) for c, ts, v in rows], ("f.txt", M1), mine_id,
                             min(ts for _, ts, _ in rows), max(ts for _, ts, _ in rows))
        if cards:
            b = batches.setdefault("card_reads", TableBatch())
            for card, ts, station in cards:
                sid, mine_id = self.stations[station]
                b.extend([(card, ts, sid, mine_id)], ("topic", M1), mine_id, ts, ts)
        if states:
            b = batches.setdefault("station_states", TableBatch())
            for station, ts, state in states:
                sid, mine_id = self.stations[station]
                b.extend([(sid, ts, state, 1)], ("topic", M1), mine_id, ts, ts)
        store = BatchStore(self.conn, PartitionKeeper("timescale"), source="mqtt" if columns else "file")
        return await store.write(batches, [], now=datetime.now(UTC))


async def writer(conn: asyncpg.Connection) -> Writer:
    ids = {r["code"]: (r["id"], r["mine_id"]) for r in await conn.fetch("SELECT code, id, mine_id FROM points")}
    stations = {r["code"]: (r["id"], r["mine_id"]) for r in await conn.fetch("SELECT code, id, mine_id FROM stations")}
    return Writer(conn, ids, stations)


async def compress_all(conn: asyncpg.Connection) -> int:
    """Compress every chunk of the three tables, as the policy does past 7 days."""
    n = 0
    for t in TABLES:
        n += len(await conn.fetch("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks($1::regclass) c", t))
    return n


async def chunk_states(conn: asyncpg.Connection) -> dict[tuple[str, str], bool]:
    return {(r["hypertable_name"], r["chunk_name"]): r["is_compressed"] for r in await conn.fetch(
        "SELECT hypertable_name, chunk_name, is_compressed FROM timescaledb_information.chunks "
        "WHERE hypertable_name = ANY($1::text[])", list(TABLES))}


async def table_rows(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "readings": [tuple(r) for r in await conn.fetch("SELECT point_id, ts, value FROM readings ORDER BY 1, 2")],
        "card_reads": [tuple(r) for r in await conn.fetch("SELECT card_id, ts, station_id FROM card_reads ORDER BY 1, 2")],
        "station_states": [tuple(r) for r in await conn.fetch(
            "SELECT station_id, ts, state FROM station_states ORDER BY 1, 2")],
    }


async def test_time_tables_are_hypertables_with_compression_and_retention_policies(ts_db: str) -> None:
    conn = await asyncpg.connect(ts_db)
    try:
        hyper = {r["hypertable_name"]: r["compression_enabled"] for r in await conn.fetch(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables")}
        assert {t: hyper.get(t) for t in TABLES} == dict.fromkeys(TABLES, True)
        dims = {r["hypertable_name"]: (r["column_name"], r["time_interval"]) for r in await conn.fetch(
            "SELECT hypertable_name, column_name, time_interval FROM timescaledb_information.dimensions")}
        assert {t: dims[t] for t in TABLES} == dict.fromkeys(TABLES, ("ts", timedelta(days=1)))
        seg = {(r["hypertable_name"], r["attname"]): (r["segmentby_column_index"], r["orderby_asc"]) for r in
               await conn.fetch("SELECT hypertable_name, attname, segmentby_column_index, orderby_asc "
                                "FROM timescaledb_information.compression_settings")}
        for t, key in (("readings", "point_id"), ("card_reads", "card_id"), ("station_states", "station_id")):
            assert seg[(t, key)] == (1, None) and seg[(t, "ts")] == (None, False), (t, seg)

        async def jobs(proc: str) -> dict[str, dict[str, Any]]:
            return {r["hypertable_name"]: json.loads(r["config"]) for r in await conn.fetch(
                "SELECT hypertable_name, config::text FROM timescaledb_information.jobs WHERE proc_name = $1", proc)}
        compression = await jobs("policy_compression")
        assert {t: compression[t]["compress_after"] for t in TABLES} == dict.fromkeys(TABLES, "7 days")
        # the test databases are made with a 3650-day retention (minewatch.db.scratch)
        retention = await jobs("policy_retention")
        assert {t: retention[t]["drop_after"] for t in TABLES} == dict.fromkeys(TABLES, "3650 days")
        # a changed MINEWATCH_RETENTION_DAYS takes effect at the next maintain(), as on the plain path
        await timeseries.maintain(conn, now=datetime.now(UTC), ahead_days=2, retention_days=730)
        retention = await jobs("policy_retention")
        assert {t: retention[t]["drop_after"] for t in TABLES} == dict.fromkeys(TABLES, "730 days")
        caggs = {r["view_name"]: r["materialized_only"] for r in await conn.fetch(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates")}
        assert caggs == {"readings_1m": False, "readings_1h": False}  # real-time: nothing hidden above the watermark
        # and the aggregates keep no bucket longer than the readings they summarise
        assert {v: retention[v]["drop_after"] for v in caggs} == dict.fromkeys(caggs, "730 days")
        refresh = await jobs("policy_refresh_continuous_aggregate")
        assert len(refresh) == 2
    finally:
        await conn.close()


def series(code: str, start: datetime, values: list[float]) -> list[tuple[str, datetime, float]]:
    return [(code, start + k * STEP, v) for k, v in enumerate(values)]


async def test_late_data_into_compressed_chunks_is_stored_once_and_re_evaluated(pg_dsn: str, ts_db: str) -> None:
    """A substation's buffer arrives two months late, into chunks the policy has compressed: every
    row is stored once (a redelivered duplicate is still refused, a conflicting one is a dead
    letter and the first value stays), the window is marked dirty, the rules worker re-evaluates
    it to exactly what a back-fill of the same readings gives, and no other row is touched."""
    conn = await asyncpg.connect(ts_db)
    try:
        w = await writer(conn)
        t0 = DAY0 + timedelta(hours=6)
        gap_lo, gap_hi = t0 + timedelta(minutes=60), t0 + timedelta(minutes=75)  # 15 min the link was down
        first: list[tuple[str, datetime, float]] = []
        for code in (A, B, C):
            first += [r for r in series(code, t0, [0.4] * 240) if not gap_lo <= r[1] < gap_hi]
        cards = [(9001, t0 + timedelta(minutes=m), f"{M1}S0001") for m in range(0, 120, 7)]
        states = [(f"{M1}S0001", t0 + timedelta(minutes=m), 0) for m in range(0, 120, 10)]
        res = await w.write(first, cards, states)
        assert res.stored == {"readings": len(first), "card_reads": len(cards), "station_states": len(states)}
        await RuleWorker(ts_db, PACK).run(burst=True)
        assert await conn.fetchval("SELECT count(*) FROM dirty_windows") == 0
        assert await conn.fetchval("SELECT count(*) FROM episodes") == 0

        assert await compress_all(conn) >= 3
        before = await chunk_states(conn)
        assert before and all(before.values()), before

        # The late buffer: A's and B's readings for the gap (A past power-off for 6 min, B past the
        # alarm level), late card reads and a station state, each with a redelivered row that is
        # already stored (same values) and one reading that conflicts with a stored one.
        late = (series(A, gap_lo, [0.5] * 4 + [1.7] * 12 + [0.5] * 14)
                + series(B, gap_lo, [0.6] * 6 + [1.2] * 8 + [0.6] * 16))
        redelivered = first[10]
        conflicting = (first[300][0], first[300][1], 3.9)
        late_cards = [(9001, gap_lo + timedelta(minutes=m, seconds=11), f"{M1}S0001") for m in (1, 5, 9)]
        late_states = [(f"{M1}S0001", gap_lo + timedelta(minutes=3, seconds=1), 2)]
        res = await w.write([*late, redelivered, conflicting], [*late_cards, cards[0]], [*late_states, states[0]])
        assert res.stored == {"readings": len(late), "card_reads": len(late_cards), "station_states": 1}
        assert res.duplicates == {"readings": 1, "card_reads": 1, "station_states": 1}
        assert res.conflicts == {"readings": 1, "card_reads": 0, "station_states": 0}
        assert res.dead_letters == 1
        # A second delivery of the whole late buffer (a broker redelivering after a reconnect) stores nothing.
        again = await w.write(late, late_cards, late_states, columns=False)
        assert again.stored == {"readings": 0, "card_reads": 0, "station_states": 0}

        # Stored once, readable, and nothing else lost or changed (the conflict kept the first value).
        rows = await table_rows(conn)
        ids = w.ids
        expected_readings = sorted((ids[c][0], ts, v) for c, ts, v in [*first, *late])
        assert rows["readings"] == expected_readings
        sid = w.stations[f"{M1}S0001"][0]
        assert rows["card_reads"] == sorted((card, ts, sid) for card, ts, _ in [*cards, *late_cards])
        assert rows["station_states"] == sorted((sid, ts, s) for _, ts, s in [*states, *late_states])
        assert await conn.fetchval("SELECT count(*) FROM readings WHERE ts >= $1 AND ts < $2", gap_lo, gap_hi) == len(late)
        # The rows landed in the compressed chunks (partially compressed now), not in new chunks.
        after = await chunk_states(conn)
        assert set(after) == set(before), "late rows must go into the existing chunks"

        # The window is dirty for mine 1 only, spanning the late rows.
        windows = await conn.fetch("SELECT m.code, min(min_ts) AS lo, max(max_ts) AS hi FROM dirty_windows d "
                                   "JOIN mines m ON m.id = d.mine_id WHERE d.kind = 'readings' GROUP BY 1")
        assert [(r["code"], r["lo"], r["hi"]) for r in windows] == [(M1, gap_lo, gap_lo + 29 * STEP)]
        await RuleWorker(ts_db, PACK).run(burst=True)
        assert await conn.fetchval("SELECT count(*) FROM dirty_windows WHERE kind = 'readings'") == 0
        episodes = await conn.fetch("SELECT p.code, e.start_ts, e.level, e.peak FROM episodes e "
                                    "JOIN points p ON p.id = e.point_id ORDER BY 1")
        assert [(r["code"], r["start_ts"], r["level"], r["peak"]) for r in episodes] == [
            (A, gap_lo + 4 * STEP, "power_off", 1.7), (B, gap_lo + 6 * STEP, "alarm", 1.2)]
        assert await conn.fetchval("SELECT count(*) FROM findings WHERE state <> 'superseded'") > 0
    finally:
        await conn.close()

    # Exactly what a back-fill gives: a second database holding the same readings and station
    # states (the integrity rules judge both), never compressed, back-filled in one pass,
    # decides the same; and a back-fill here changes nothing.
    since, until = to_ns(t0 - timedelta(hours=1)), to_ns(t0 + timedelta(hours=3))
    filled = await new_db(pg_dsn)
    try:
        assert await copy_readings(ts_db, filled) == len(expected_readings)
        await copy_station_states(ts_db, filled)
        await backfill(filled, PACK, since_ns=since, until_ns=until)
        streamed, reference = await snapshot(ts_db), await snapshot(filled)
        assert streamed == reference
        assert reference["episodes"] and reference["findings"]
    finally:
        await _drop_db(pg_dsn, filled)
    assert (await backfill(ts_db, PACK, since_ns=since, until_ns=until)).changes() == 0


async def test_retention_policy_drops_old_chunks_of_every_table(ts_db: str) -> None:
    """maintain() sets the retention policies from the setting; their jobs drop whole chunks past
    the horizon, of all three tables and of both continuous aggregates, and leave the newer
    ones (compressed or not)."""
    conn = await asyncpg.connect(ts_db)
    try:
        w = await writer(conn)
        now = datetime.now(UTC).replace(microsecond=0)
        old, recent = now - timedelta(days=60), now - timedelta(days=10)
        res = await w.write(series(A, old, [0.3] * 20) + series(A, recent, [0.4] * 20),
                            [(7, old, f"{M1}S0001"), (7, recent, f"{M1}S0001")],
                            [(f"{M1}S0001", old, 0), (f"{M1}S0001", recent, 0)])
        assert res.stored == {"readings": 40, "card_reads": 2, "station_states": 2}
        await compress_all(conn)
        await timeseries.refresh_aggregates(conn)
        for view in ("readings_1m", "readings_1h"):
            assert await conn.fetchval(f"SELECT count(*) FROM {ident(view)} WHERE bucket < $1", now - timedelta(days=30)) > 0
        await timeseries.maintain(conn, now=now, ahead_days=2, retention_days=30)
        for job in await conn.fetch("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention'"):
            await conn.execute("CALL run_job($1)", job["job_id"])
        for view in ("readings_1m", "readings_1h"):  # the aggregates dropped the same days
            assert await conn.fetchval(f"SELECT count(*) FROM {ident(view)} WHERE bucket < $1", now - timedelta(days=30)) == 0
            assert await conn.fetchval(f"SELECT count(*) FROM {ident(view)} WHERE bucket >= $1", now - timedelta(days=30)) > 0
        for t in TABLES:
            assert await conn.fetchval(f"SELECT count(*) FROM {ident(t)} WHERE ts < $1", now - timedelta(days=30)) == 0, t
            assert await conn.fetchval(f"SELECT count(*) FROM {ident(t)} WHERE ts >= $1", now - timedelta(days=30)) > 0, t
            assert await conn.fetchval("SELECT min(range_start) FROM timescaledb_information.chunks "
                                       "WHERE hypertable_name = $1", t) >= now - timedelta(days=31)
    finally:
        await conn.close()
