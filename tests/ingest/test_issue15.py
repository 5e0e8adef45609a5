"""Issue 15 over real MQTT into real PostgreSQL: hostile input must not stop, blind or rob the ingest.

Each test reproduces one attack and shows the ingest keeps running, every valid
neighbour is stored, the bad item is dead-lettered with its reason, nothing leaks.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from ingest import validate as v
from launcher.embedded import stop_process
from tests.conftest import start_ingest
from tests.ingest.harness import counts, registry_codes, running_ingest, wait_until
from tests.mqtt_helpers import publish_all

pytestmark = pytest.mark.integration


def _now_ms(offset: timedelta = timedelta(minutes=-10)) -> int:
    return int((datetime.now(UTC) + offset).timestamp() * 1000)


def _item(point: str, ts: int | str, value: float) -> bytes:
    return json.dumps({"point": point, "ts": ts, "value": value}).encode()


async def _stored(conn: asyncpg.Connection) -> set[tuple[str, int, float]]:
    rows = await conn.fetch("SELECT p.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms, r.value "
                            "FROM readings r JOIN points p ON p.id = r.point_id")
    return {(r["code"], int(r["ms"]), r["value"]) for r in rows}


async def _partitions(conn: asyncpg.Connection) -> int:
    """Partitions (plain) or chunks (TimescaleDB) of the time-series tables that start more than
    two days ago: the good readings of these tests are minutes old, so any such partition was
    made for a reading that should have been refused."""
    horizon = datetime.now(UTC) - timedelta(days=2)
    if await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"):
        return int(await conn.fetchval(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name IN "
            "('readings', 'card_reads', 'station_states') AND range_start < $1", horizon))
    names = await conn.fetch("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                             "JOIN pg_class p ON p.oid = i.inhparent "
                             "WHERE p.relname IN ('readings', 'card_reads', 'station_states')")
    days = [str(r["relname"]).rsplit("_p", 1)[-1] for r in names]
    return sum(1 for d in days if d.isdigit() and d < f"{horizon:%Y%m%d}")


async def test_invalid_utf8_costs_only_its_item_and_the_worker_goes_on(fresh_db: str, mqtt_url: str,
                                                                       topic_prefix: str) -> None:
    mine, points = registry_codes()
    base = _now_ms()
    bad_item = b'{"point": "' + points[0].encode() + b'\xff\xfe", "ts": ' + str(base).encode() + b', "value": 1}'
    good = [(points[1], base + i, float(i)) for i in range(3)]
    messages = [
        (f"{topic_prefix}mines/{mine}/safety",
         b"[" + b",".join([_item(*good[0]), bad_item, _item(*good[1])]) + b"]"),
        (f"{topic_prefix}mines/{mine}/safety", b'{"point": "\xc3\x28", "ts": 1, "value": 1}'),  # whole message
        (f"{topic_prefix}mines/{mine}/safety", b"[" + _item(*good[2]) + b"]"),
        (f"{topic_prefix}/{mine}/01", b'{"timestamp": ' + str(base).encode() + b', "systemcode": "01", "values": '
         b'[{"code": "\xff", "v": 1}, {"code": "' + points[2].encode() + b'", "v": 7}]}'),
    ]
    async with running_ingest(fresh_db, mqtt_url, topic_prefix, field_variant=True):
        await asyncio.to_thread(publish_all, mqtt_url, messages)
        conn = await asyncpg.connect(fresh_db)
        try:
            await wait_until(lambda: _done(conn, 4, 3))
            assert await _stored(conn) == {*good, (points[2], base, 7.0)}
            dl = await conn.fetch("SELECT reason, payload, payload_raw, payload_bytes FROM dead_letters ORDER BY id")
            assert sorted(r["reason"] for r in dl) == [v.MALFORMED_JSON] * 3
            raws = {bytes(r["payload_raw"]) for r in dl}
            # the item's own bytes, not the message's; the original kept as bytes, the text repaired
            assert bad_item in raws
            assert b'{"code": "\xff", "v": 1}' in raws
            assert all("\ufffd" in r["payload"] for r in dl)
        finally:
            await conn.close()


async def _done(conn: asyncpg.Connection, readings: int, dead: int) -> bool:
    r, d = await counts(conn)
    return r >= readings and d >= dead


async def test_nul_bytes_are_dead_lettered_storably_and_do_not_wedge_the_batch(fresh_db: str, mqtt_url: str,
                                                                            topic_prefix: str) -> None:
    mine, points = registry_codes()
    base = _now_ms()
    nul_escaped = b'{"point": "X\\u0000Y", "ts": ' + str(base).encode() + b', "value": 1}'  # unknown point
    nul_raw = b'{"point": "X\x00Y", "ts": 1, "value": 1}'  # a raw NUL: not JSON
    good = [(points[0], base + i, 1.5) for i in range(50)]
    messages = [(f"{topic_prefix}mines/{mine}/safety", _item(*g)) for g in good[:25]]
    messages += [(f"{topic_prefix}mines/{mine}/safety", nul_escaped), (f"{topic_prefix}mines/{mine}/safety", nul_raw),
                 # Mosquitto drops a publisher that puts NUL or a control character in a topic; U+202E passes
                 (f"{topic_prefix}mines/{mine}\u202e/nonsense", b"\x00" * 10)]
    messages += [(f"{topic_prefix}mines/{mine}/safety", _item(*g)) for g in good[25:]]
    async with running_ingest(fresh_db, mqtt_url, topic_prefix):
        await asyncio.to_thread(publish_all, mqtt_url, messages)
        conn = await asyncpg.connect(fresh_db)
        try:
            await wait_until(lambda: _done(conn, 50, 3))
            assert await _stored(conn) == set(good)
            dl = {r["reason"]: r for r in await conn.fetch("SELECT * FROM dead_letters")}
            assert set(dl) == {v.UNKNOWN_POINT, v.MALFORMED_JSON, v.UNKNOWN_TOPIC}
            assert dl[v.MALFORMED_JSON]["payload"] == nul_raw.decode().replace("\x00", "\ufffd")
            assert bytes(dl[v.MALFORMED_JSON]["payload_raw"]) == nul_raw
            assert dl[v.UNKNOWN_TOPIC]["payload"] == "\ufffd" * 10
            assert bytes(dl[v.UNKNOWN_TOPIC]["payload_raw"]) == b"\x00" * 10
        finally:
            await conn.close()


async def test_a_batch_the_database_refuses_is_split_until_the_poisoned_message_is_alone(
        fresh_db: str, mqtt_url: str, topic_prefix: str) -> None:
    """A data error (here a CHECK constraint, SQLSTATE 23514) must not make the ingest retry the
    same batch forever: the batch is bisected, the poisoned message dead-lettered, the rest stored."""
    mine, points = registry_codes()
    base = _now_ms()
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("ALTER TABLE readings ADD CONSTRAINT poison CHECK (value <> 666)")
        good = [(points[i % len(points)], base + i, float(i % 100)) for i in range(2_000)]
        poison = b"[" + _item(points[0], base - 1, 666) + b"," + _item(points[1], base - 1, 1) + b"]"
        messages = [(f"{topic_prefix}mines/{mine}/safety", _item(*g)) for g in good]
        messages.insert(1_234, (f"{topic_prefix}mines/{mine}/safety", poison))
        async with running_ingest(fresh_db, mqtt_url, topic_prefix, batch_max_age_s=0.5) as ing:
            await asyncio.to_thread(publish_all, mqtt_url, messages)
            await wait_until(lambda: _done(conn, len(good), 1))
            await asyncio.sleep(0.5)
            assert await _stored(conn) == set(good)  # the poisoned message's good neighbour item goes with it
            dl = await conn.fetch("SELECT reason, payload, topic FROM dead_letters")
            assert [(r["reason"], r["payload"].encode()) for r in dl] == [(v.UNSTORABLE, poison)]
            assert ing.service.totals.rejected[v.UNSTORABLE] == 1
            assert ing.service.totals.messages == len(messages)
    finally:
        await conn.close()


async def test_old_times_are_too_old_and_create_no_partition(fresh_db: str, mqtt_url: str, topic_prefix: str) -> None:
    mine, points = registry_codes()
    base = _now_ms()
    old = [_item(points[0], 0, 1), _item(points[0], 1, 1), _item(points[0], "0001-01-01T00:00:00Z", 1),
           _item(points[0], "1970-01-01T00:00:00+08:00", 1),
           _item(points[0], int((datetime.now(UTC) - timedelta(days=800)).timestamp() * 1000), 1)]
    good = [(points[1], base, 2.0), (points[2], base, 3.0)]
    messages = [(f"{topic_prefix}mines/{mine}/safety", b"[" + b",".join([_item(*good[0]), *old, _item(*good[1])]) + b"]"),
                (f"{topic_prefix}mines/{mine}/geotech", b"[" + b",".join(old) + b"]"),
                (f"{topic_prefix}mines/{mine}/stations", b'{"station": "x", "ts": "0001-01-01T00:00:00Z", "state": 0}')]
    conn = await asyncpg.connect(fresh_db)
    try:
        before = await _partitions(conn)
        async with running_ingest(fresh_db, mqtt_url, topic_prefix):
            await asyncio.to_thread(publish_all, mqtt_url, messages)
            await wait_until(lambda: _done(conn, 2, 2 * len(old) + 1))
        assert await _stored(conn) == set(good)
        reasons = [r["reason"] for r in await conn.fetch("SELECT reason FROM dead_letters")]
        assert reasons == [v.TOO_OLD] * len(reasons) and len(reasons) == 2 * len(old) + 1
        assert await _partitions(conn) == before == 0  # nothing for 0001 .. now
    finally:
        await conn.close()


async def test_a_message_over_the_cap_is_too_large_with_a_capped_preview(fresh_db: str, mqtt_url: str,
                                                                        topic_prefix: str) -> None:
    mine, points = registry_codes()
    base = _now_ms()
    big = b"[" + b",".join([_item(points[0], base + i, 1) for i in range(20_000)]) + b"]"  # ~1.3 MB
    cap = 256 * 1024
    messages = [(f"{topic_prefix}mines/{mine}/safety", big), (f"{topic_prefix}mines/{mine}/safety", _item(points[1], base, 5))]
    async with running_ingest(fresh_db, mqtt_url, topic_prefix, max_message_bytes=cap):
        await asyncio.to_thread(publish_all, mqtt_url, messages)
        conn = await asyncpg.connect(fresh_db)
        try:
            await wait_until(lambda: _done(conn, 1, 1))
            assert await _stored(conn) == {(points[1], base, 5.0)}
            r = await conn.fetchrow("SELECT reason, octet_length(payload) AS n, payload_bytes FROM dead_letters")
            assert (r["reason"], r["payload_bytes"]) == (v.TOO_LARGE, len(big))
            assert r["n"] <= 64 * 1024
        finally:
            await conn.close()


async def test_item_rejects_of_a_big_message_hold_their_own_bytes(fresh_db: str, mqtt_url: str,
                                                                 topic_prefix: str) -> None:
    """8: 5 000 bad items of a 400 kB message are 5 000 small dead letters, not 5 000 copies of it."""
    mine, _ = registry_codes()
    base = _now_ms()
    items = [_item(f"NOPE{i}", base + i, 1) for i in range(5_000)]
    payload = b"[" + b",".join(items) + b"]"
    async with running_ingest(fresh_db, mqtt_url, topic_prefix):
        await asyncio.to_thread(publish_all, mqtt_url, [(f"{topic_prefix}mines/{mine}/safety", payload)])
        conn = await asyncpg.connect(fresh_db)
        try:
            await wait_until(lambda: _done(conn, 0, len(items)))
            total = await conn.fetchval("SELECT sum(octet_length(payload)) FROM dead_letters")
            assert total == sum(len(i) for i in items)
        finally:
            await conn.close()


@pytest.mark.parametrize(("env", "stored"), [({}, True), ({"MINEWATCH_RETENTION_DAYS": "2"}, False),
                                             ({"MINEWATCH_INGEST_MAX_AGE_DAYS": "2"}, False)])
def test_the_horizon_is_the_retention_period_unless_set(fresh_db: str, mqtt_url: str, topic_prefix: str,
                                                        tmp_path: Path, env: dict[str, str], stored: bool) -> None:
    """The `minewatch ingest` process takes its too_old horizon from the settings: the retention
    period by default, MINEWATCH_INGEST_MAX_AGE_DAYS when set. A three-day-old reading is kept
    under the defaults (730 days) and refused under a two-day horizon."""
    mine, points = registry_codes()
    ts = _now_ms(timedelta(days=-3))
    proc = start_ingest(fresh_db, mqtt_url, topic_prefix, tmp_path / "ingest.log",
                        client_id=f"h-{topic_prefix.strip('/')}", env=env)
    try:
        publish_all(mqtt_url, [(f"{topic_prefix}mines/{mine}/safety", b"[" + _item(points[0], ts, 0.4) + b"]")])

        async def check() -> tuple[int, list[str]]:
            conn = await asyncpg.connect(fresh_db)
            try:
                await wait_until(lambda: _done(conn, int(stored), int(not stored)))
                return len(await _stored(conn)), [r["reason"] for r in await conn.fetch("SELECT reason FROM dead_letters")]
            finally:
                await conn.close()
        n, reasons = asyncio.run(check())
        assert (n, reasons) == ((1, []) if stored else (0, [v.TOO_OLD]))
        assert proc.poll() is None
    finally:
        stop_process(proc)
