"""Hostile card reads through the real ingest process while a rules worker runs: every hostile item is a
dead letter with its reason, every valid read is stored once, and the worker keeps judging.

Mine 149900000021 of tests/rules/db/data/registry_personnel.yaml, plus a second mine (149900000022,
one station, one card) so that a station or a card of another mine exists. Over MQTT, into a
real `minewatch ingest` process, with a `RuleWorker` running beside it:

1. valid reads of two cards that go down and come up again (one read sent twice), mixed in the
   same messages with hostile items — an unknown card, an unknown station, a station and a card
   of the other mine, a time in the future, naive, unparsable, out of range and older than the
   ingest keeps, wrong types, missing fields, items that are no objects, invalid UTF-8, a lone
   surrogate, 300 kB and 2 MB strings — and hostile messages: malformed JSON, 100 000 nested
   brackets, an empty payload, a valid read on the other mine's topic, an unknown topic family;
2. once every one of those is a dead letter and the worker has no window left: a visit of the
   restricted old working (A_OLD), mixed with more hostile items, and an earlier read again at
   another station (a conflicting duplicate: the first stored value is kept).

The worker must then hold exactly one finding, that visit, written after the first phase's dead
letters; its task and the ingest process must still be running.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml

from ingest.validate import REASONS
from launcher.embedded import stop_process
from minewatch.clock import FrozenClock
from minewatch.rule_ids import PERSONNEL
from minewatch.text import MAX_DETAIL_CHARS, MAX_PAYLOAD_BYTES
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.conftest import _create_db, _drop_db, start_ingest
from tests.mqtt_helpers import publish_all
from tests.polling import wait_for as poll
from tests.rules.db.helpers import DATA, load_test_registry

pytestmark = [pytest.mark.integration]

MINE = "149900000021"
OTHER = "149900000022"
SHAFT, F1, OLD, ROAD = (f"{MINE}S000{k}" for k in (1, 2, 3, 4))
MIN_MS = 60_000


def registry_with_another_mine(path: Path) -> None:
    """The personnel test registry plus a second mine with one station and one card."""
    data = yaml.safe_load((DATA / "registry_personnel.yaml").read_text(encoding="utf-8"))
    first = data["mines"][0]
    data["mines"].append({"code": OTHER, "name": "另一煤矿", "kind": "coal", "county": first["county"],
                          "city": first["city"], "province": first["province"],
                          "stations": [{"code": f"{OTHER}S0001"}], "cards": [{"code": "X01"}]})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


@pytest.fixture
def hostile_db(pg_dsn: str, tmp_path: Path) -> Iterator[str]:
    registry = tmp_path / "registry.yaml"
    registry_with_another_mine(registry)
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    asyncio.run(load_test_registry(dsn, registry))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


def item(card: object, ts: object, station: object) -> bytes:
    return json.dumps({"card": card, "ts": ts, "station": station}, separators=(",", ":")).encode()


def batch(*items: bytes) -> bytes:
    """A JSON array of exactly these item bytes (the ingest dead-letters a bad item's own bytes)."""
    return b"[" + b",".join(items) + b"]"


class Plan:
    """Messages to publish, with what each must become: stored reads, and dead letters
    (topic, exact bytes, reason)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.messages: list[tuple[str, bytes]] = []
        self.valid: list[tuple[str, int, str]] = []  # (card, ts ms, station)
        self.dead: list[tuple[str, bytes, str]] = []

    def topic(self, mine: str = MINE, family: str = "personnel") -> str:
        return f"{self.prefix}mines/{mine}/{family}"

    def send(self, parts: list[tuple[bytes, str | None]], topic: str | None = None) -> None:
        """One message of these items; each with the reason it must be refused for (None: valid)."""
        t = topic or self.topic()
        self.messages.append((t, batch(*(b for b, _ in parts))))
        for b, reason in parts:
            if reason is None:
                d = json.loads(b)
                self.valid.append((d["card"], d["ts"], d["station"]))
            else:
                self.dead.append((t, b, reason))

    def resend(self, *items: bytes) -> None:
        """A message of valid reads already sent (at-least-once delivery): stored once."""
        self.messages.append((self.topic(), batch(*items)))

    def send_whole(self, payload: bytes, reason: str, topic: str | None = None) -> None:
        """A message refused whole."""
        t = topic or self.topic()
        self.messages.append((t, payload))
        self.dead.append((t, payload, reason))


def phase_one(plan: Plan, t0: int, now_ms: int) -> None:
    """C01 and C02 go down and come up; hostile items among them, hostile messages beside them."""
    ok = [item("C01", t0, SHAFT), item("C02", t0 + 10_000, SHAFT), item("C01", t0 + MIN_MS, ROAD),
          item("C02", t0 + MIN_MS + 10_000, F1), item("C01", t0 + 3 * MIN_MS, SHAFT),
          item("C02", t0 + 4 * MIN_MS, SHAFT)]
    plan.send([(ok[0], None),
               (item("C99", t0 + 1, ROAD), "unknown_card"),
               (item("C03", t0 + 2, f"{MINE}S0099"), "unknown_station"),
               (item("C03", t0 + 3, f"{OTHER}S0001"), "mine_mismatch"),
               (item("X01", t0 + 4, ROAD), "mine_mismatch"),
               (ok[1], None)])
    plan.send([(item("C04", now_ms + 120 * MIN_MS, ROAD), "future_time"),
               (ok[2], None),
               (item("C04", "2026-11-23T08:15:00", ROAD), "naive_time"),
               (item("C04", "yesterday", ROAD), "bad_time"),
               (item("C04", 10**16, ROAD), "bad_time"),
               (item("C04", 1.5e12, ROAD), "bad_time"),
               (item("C04", "1990-01-01T00:00:00+08:00", ROAD), "too_old"),
               (ok[3], None)])
    plan.send([(item(123, t0 + 5, ROAD), "bad_type"),
               (item(["C04"], t0 + 6, ROAD), "bad_type"),
               (item("C04", t0 + 7, None), "bad_type"),
               (json.dumps({"card": "C04", "ts": t0 + 8}).encode(), "missing_field"),
               (b"5", "not_object"),
               (b'"C04"', "not_object"),
               (ok[4], None),
               (b'{"card":"\xff\xfe","ts":1,"station":"x"}', "malformed_json"),
               (b'{"card":"\\ud800","ts":%d,"station":"%s"}' % (t0 + 9, ROAD.encode()), "malformed_json")])
    plan.send([(item("C" * 2_000_000, t0 + 10, ROAD), "unknown_card"),
               (ok[5], None),
               (item("C04", t0 + 11, "S" * 300_000), "unknown_station")])
    plan.resend(ok[2])
    plan.send_whole(b'[{"card": "C01", "ts": 17', "malformed_json")
    plan.send_whole(b"[" * 100_000, "malformed_json")
    plan.send_whole(b"", "malformed_json")
    # A valid read of this mine on the other mine's topic; a family no topic has.
    plan.send([(item("C05", t0 + 12, ROAD), "mine_mismatch")], topic=plan.topic(OTHER))
    plan.send_whole(batch(item("C05", t0 + 13, ROAD)), "unknown_topic", topic=plan.topic(family="people"))


def phase_two(plan: Plan, t1: int, t0: int, now_ms: int) -> tuple[int, int]:
    """C05 visits the restricted old working; returns the visit's (start, end) in ms."""
    plan.send([(item("C05", t1, SHAFT), None),
               (item("C98", t1 + 1, OLD), "unknown_card"),
               (item("C05", t1 + MIN_MS, ROAD), None),
               (item("C05", now_ms + 120 * MIN_MS, OLD), "future_time")])
    plan.send([(item("C05", t1 + 2 * MIN_MS, OLD), None),
               (item("C05", t1 + 3 * MIN_MS, f"{OTHER}S0001"), "mine_mismatch"),
               (item(None, t1 + 3 * MIN_MS, OLD), "bad_type")])
    plan.send([(item("C05", t1 + 5 * MIN_MS, ROAD), None), (item("C05", t1 + 6 * MIN_MS, SHAFT), None)])
    # C01's road read again, at another station: the first stored value is kept, and the
    # refused one is a dead letter holding the row it would have been (checked on its own).
    plan.resend(item("C01", t0 + MIN_MS, F1))
    return t1 + 2 * MIN_MS, t1 + 5 * MIN_MS


wait_until = functools.partial(poll, timeout=90)


async def dead_letters(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT topic, reason, detail, payload, payload_raw, payload_bytes, mine_code, received_at FROM dead_letters "
        "ORDER BY id"))


def check_dead_letters(rows: list[asyncpg.Record], expected: list[tuple[str, bytes, str]]) -> None:
    """Each expected (topic, bytes, reason) is exactly one dead letter, and there are no others."""
    got: Counter[tuple[str, bytes, str]] = Counter()
    for r in rows:
        stored = bytes(r["payload_raw"]) if r["payload_raw"] is not None else r["payload"].encode()
        assert len(r["detail"]) <= MAX_DETAIL_CHARS + 1  # cut, with a mark
        assert len(stored) <= MAX_PAYLOAD_BYTES
        # A payload over the cap is kept as its head, with the size that arrived.
        match = [e for e in expected if e[0] == r["topic"] and e[2] == r["reason"] and len(e[1]) == r["payload_bytes"]
                 and e[1][:len(stored)] == stored]
        assert match, (r["topic"], r["reason"], stored[:120])
        got[match[0]] += 1
    assert got == Counter(expected)


async def test_hostile_card_reads_are_dead_letters_and_the_worker_keeps_judging(
    hostile_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    now_ms = int(now.timestamp() * 1000)
    t0 = now_ms - 3 * 60 * MIN_MS
    t1 = t0 + 30 * MIN_MS
    plan1, plan2 = Plan(topic_prefix), Plan(topic_prefix)
    phase_one(plan1, t0, now_ms)
    visit = phase_two(plan2, t1, t0, now_ms)
    assert {reason for _, _, reason in plan1.dead + plan2.dead} <= set(REASONS)
    conn = await asyncpg.connect(hostile_db)
    ingest = start_ingest(hostile_db, mqtt_url, topic_prefix, tmp_path / "ingest.log",
                          client_id=f"hostile-{topic_prefix.strip('/')}", suback_s=0.3)
    # The clock stands after all the data (an hour before the wall clock): the clock pass has
    # nothing to find, and every stay has ended.
    worker = RuleWorker(hostile_db, builtin_pack("default"), clock=FrozenClock(now - timedelta(hours=1)),
                        settings=RulesSettings(poll_s=0.2, clock_s=0.5))
    running = asyncio.create_task(worker.run())

    async def count(sql: str) -> int:
        n: int = await conn.fetchval(sql)
        return n

    async def settled(n_dead: int, n_reads: int) -> bool:
        return (await count("SELECT count(*) FROM dead_letters") >= n_dead
                and await count("SELECT count(*) FROM card_reads") >= n_reads
                and not await count("SELECT count(*) FROM dirty_windows"))

    async def stored_reads() -> Counter[tuple[str, int, str]]:
        return Counter((r["card"], int(r["ts"].timestamp() * 1000), r["station"]) for r in await conn.fetch(
            "SELECT c.code AS card, r.ts, s.code AS station FROM card_reads r JOIN cards c ON c.id = r.card_id "
            "JOIN stations s ON s.id = r.station_id"))

    async def findings() -> set[tuple[object, ...]]:
        return {(r["rule"], r["subject"], r["start_ts"], r["end_ts"], r["level"], r["evidence"].get("area"))
                for r in await conn.fetch("SELECT rule, subject, start_ts, end_ts, level, evidence FROM findings "
                                          "WHERE state <> 'superseded' AND rule = ANY($1::text[])", sorted(PERSONNEL))}

    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        await asyncio.to_thread(publish_all, mqtt_url, plan1.messages)
        await wait_until("phase 1 stored, dead-lettered and judged", lambda: settled(len(plan1.dead), len(plan1.valid)))
        first = await dead_letters(conn)
        check_dead_letters(first, plan1.dead)
        assert await stored_reads() == Counter(plan1.valid)
        assert await findings() == set()  # two short stays with nothing wrong in them
        assert not running.done() and ingest.poll() is None

        await asyncio.to_thread(publish_all, mqtt_url, plan2.messages)
        expected = {("restricted_area", "C05", datetime.fromtimestamp(visit[0] / 1000, UTC),
                     datetime.fromtimestamp(visit[1] / 1000, UTC), "warning", "A_OLD")}

        async def judged() -> bool:
            return await settled(len(plan1.dead) + len(plan2.dead), len(plan1.valid) + len(plan2.valid)) \
                and await findings() == expected

        try:
            await wait_until("the restricted-area visit judged", judged)
        except AssertionError:
            assert await findings() == expected
            raise
        rows = await dead_letters(conn)
        check_dead_letters([r for r in rows if r["reason"] != "duplicate_conflict"], plan1.dead + plan2.dead)
        (conflict,) = [r for r in rows if r["reason"] == "duplicate_conflict"]
        ids = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM stations")}
        refused = json.loads(conflict["payload"])
        assert (conflict["topic"], refused["station_id"]) == (plan2.topic(), ids[F1])
        assert datetime.fromisoformat(refused["ts"]) == datetime.fromtimestamp((t0 + MIN_MS) / 1000, UTC)
        assert f"station_id={ids[ROAD]}" in conflict["detail"]
        assert await stored_reads() == Counter(plan1.valid + plan2.valid)  # the conflicting duplicate kept the first
        written = await conn.fetchval("SELECT created_at FROM findings WHERE rule = 'restricted_area'")
        assert written > max(r["received_at"] for r in first)
        assert not running.done(), "the rules worker stopped"
        assert ingest.poll() is None, "the ingest stopped"
        assert worker.tally.windows > 0
    finally:
        worker.stop()
        await running
        stop_process(ingest)
        await conn.close()
