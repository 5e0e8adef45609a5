"""Hostile input over real MQTT into real PostgreSQL: never crash, store every valid item, dead-letter the rest."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from ingest import validate as v
from ingest.consumer import MqttSource
from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from minewatch.clock import SystemClock
from minewatch.registry import load_registry
from tests.conftest import SAMPLE_REGISTRY
from tests.mqtt_helpers import publish_all

pytestmark = pytest.mark.integration

PER_REASON = 1000


def _registry_codes() -> tuple[str, list[str], str, list[str], list[str], str]:
    reg, _ = load_registry(SAMPLE_REGISTRY)
    m1, m2 = reg.mines[0], reg.mines[1]
    return (m1.code, [p.code for p in m1.points], m2.points[0].code, [c.code for c in m1.cards],
            [s.code for s in m1.stations], m2.cards[0].code)


def build_messages(prefix: str, now: datetime) -> tuple[list[tuple[str, bytes]], set[tuple[str, int]], Counter[str], set[tuple[str, int]]]:
    """Messages mixing valid items with >= PER_REASON invalid ones of every reason."""
    rng = random.Random(7)
    mine, points, foreign_point, cards, stations, foreign_card = _registry_codes()
    base_ms = int((now - timedelta(hours=1)).timestamp() * 1000)
    valid: set[tuple[str, int]] = set()
    valid_cards: set[tuple[str, int]] = set()
    expected: Counter[str] = Counter()
    safety: list[bytes] = []
    personnel: list[bytes] = []
    raw_messages: list[tuple[str, bytes]] = []
    seq = 0

    def good() -> bytes:
        nonlocal seq
        seq += 1
        p = points[seq % len(points)]
        ts = base_ms + seq * 10
        valid.add((p, ts))
        return json.dumps({"point": p, "ts": ts, "value": round(rng.uniform(0, 1), 3)}).encode()

    bad_makers: dict[str, object] = {
        v.MISSING_FIELD: lambda i: {"point": points[0], "value": 1},
        v.BAD_TYPE: lambda i: {"point": points[0], "ts": base_ms + i, "value": "high"},
        v.BAD_TIME: lambda i: {"point": points[0], "ts": "not a time", "value": 1},
        v.NAIVE_TIME: lambda i: {"point": points[0], "ts": "2026-11-23T08:15:00", "value": 1},
        v.FUTURE_TIME: lambda i: {"point": points[0], "ts": int((now + timedelta(hours=1)).timestamp() * 1000) + i, "value": 1},
        v.UNKNOWN_POINT: lambda i: {"point": f"{mine}_01MN0001_X{i:04d}", "ts": base_ms + i, "value": 1},
        v.MINE_MISMATCH: lambda i: {"point": foreign_point, "ts": base_ms + i, "value": 1},
        v.BAD_VALUE: lambda i: {"point": points[0], "ts": base_ms + i, "value": 1, "status": -i - 1},
        v.NOT_OBJECT: lambda i: [i, "x"],
    }
    for reason, make in bad_makers.items():
        for i in range(PER_REASON):
            safety.append(json.dumps(make(i)).encode())  # type: ignore[operator]
            expected[reason] += 1
            safety.append(good())
    # personnel reasons
    for i in range(PER_REASON):
        personnel.append(json.dumps({"card": f"CX{i}", "ts": base_ms + i, "station": stations[1]}).encode())
        personnel.append(json.dumps({"card": cards[i % len(cards)], "ts": base_ms + i, "station": "NOPE"}).encode())
        personnel.append(json.dumps({"card": foreign_card, "ts": base_ms + i, "station": stations[1]}).encode())
        c = cards[i % len(cards)]
        ts = base_ms + 100_000 + i * 1000
        valid_cards.add((c, ts))
        personnel.append(json.dumps({"card": c, "ts": ts, "station": stations[1]}).encode())
    expected[v.UNKNOWN_CARD] += PER_REASON
    expected[v.UNKNOWN_STATION] += PER_REASON
    expected[v.MINE_MISMATCH] += PER_REASON
    # whole-message reasons
    for i in range(PER_REASON):
        raw_messages.append((f"{prefix}mines/{mine}/safety", b'[{"point": "x", "ts": ' + str(i).encode()))
        raw_messages.append((f"{prefix}mines/{mine}/nonsense", b'{"point": "x"}'))
    expected[v.MALFORMED_JSON] += PER_REASON
    expected[v.UNKNOWN_TOPIC] += PER_REASON
    # hostile strings: SQL, control characters, huge strings, deep nesting, all must be stored verbatim as dead letters
    recent = str(base_ms).encode()
    hostile = [b'{"point": "\'; DROP TABLE readings; --", "ts": ' + recent + b', "value": 1}',
               b'{"point": "\\u0000\\u202e", "ts": ' + recent + b', "value": 1}',
               b'{"point": "' + b"A" * 100_000 + b'", "ts": ' + recent + b', "value": 1}',
               b"[" * 5000 + b"]" * 5000]
    for h in hostile:
        raw_messages.append((f"{prefix}mines/{mine}/safety", h))
    expected[v.UNKNOWN_POINT] += 3
    expected[v.MALFORMED_JSON] += 0  # deep nesting: see below (msgspec may reject as malformed or not_object)
    messages: list[tuple[str, bytes]] = []
    for i in range(0, len(safety), 50):
        messages.append((f"{prefix}mines/{mine}/safety", b"[" + b",".join(safety[i:i + 50]) + b"]"))
    for i in range(0, len(personnel), 40):
        messages.append((f"{prefix}mines/{mine}/personnel", b"[" + b",".join(personnel[i:i + 40]) + b"]"))
    messages.extend(raw_messages)
    rng.shuffle(messages)
    return messages, valid, expected, valid_cards


async def test_hostile_input_is_dead_lettered_and_valid_input_stored(fresh_db: str, mqtt_url: str,
                                                                     topic_prefix: str) -> None:
    now = datetime.now(UTC)
    messages, valid, expected, valid_cards = build_messages(topic_prefix, now)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    source = MqttSource(mqtt_url, client_id=f"hostile-{topic_prefix}", topic_prefix=topic_prefix, share_group=None)
    service = IngestService(source, fresh_db, clock=SystemClock(), metrics=metrics)
    task = asyncio.create_task(service.run())
    assert await asyncio.to_thread(source.connected.wait, 10)
    await asyncio.sleep(0.3)  # subscription acknowledged
    await asyncio.to_thread(publish_all, mqtt_url, messages)
    conn = await asyncpg.connect(fresh_db)
    try:
        want = len(valid) + len(valid_cards)
        for _ in range(600):
            got = await conn.fetchval("SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM card_reads)")
            dl = await conn.fetchval("SELECT count(*) FROM dead_letters")
            if got >= want and dl >= sum(expected.values()) + 1:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert not task.done(), "ingest must never crash on hostile input"
        service.stop()
        await asyncio.wait_for(task, 15)

        stored = {(r["code"], int(r["ms"])) for r in await conn.fetch(
            "SELECT p.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms FROM readings r JOIN points p ON p.id = r.point_id")}
        assert stored == valid
        stored_cards = {(r["code"], int(r["ms"])) for r in await conn.fetch(
            "SELECT c.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms FROM card_reads r JOIN cards c ON c.id = r.card_id")}
        assert stored_cards == valid_cards

        by_reason = Counter({r["reason"]: r["n"] for r in await conn.fetch(
            "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")})
        nesting = by_reason[v.MALFORMED_JSON] - expected[v.MALFORMED_JSON] + by_reason[v.NOT_OBJECT] - expected[v.NOT_OBJECT]
        assert nesting == 1, "the deeply nested payload is dead-lettered exactly once"
        for reason, n in expected.items():
            if reason in (v.MALFORMED_JSON, v.NOT_OBJECT):
                assert by_reason[reason] - n in (0, 1), reason
            else:
                assert by_reason[reason] == n, reason
        # hostile strings are kept verbatim and the table is intact
        sql = await conn.fetchval("SELECT count(*) FROM dead_letters WHERE payload LIKE '%DROP TABLE readings%'")
        assert sql == 1
        assert await conn.fetchval("SELECT max(length(payload)) FROM dead_letters") >= 100_000
        # every invalid item's bytes are in dead letters: spot-check the missing-field ones
        mf = await conn.fetch("SELECT payload, topic, mine_code FROM dead_letters WHERE reason = $1", v.MISSING_FIELD)
        assert all(json.loads(r["payload"]) == {"point": json.loads(r["payload"])["point"], "value": 1} for r in mf)
        assert all(r["topic"].startswith(topic_prefix) for r in mf)

        # metrics agree with the database
        def sample(name: str, **labels: str) -> float:
            value = registry.get_sample_value(name, labels)
            return value or 0.0
        assert sample("minewatch_ingest_items_stored_total", table="readings") == len(valid)
        assert sample("minewatch_ingest_items_stored_total", table="card_reads") == len(valid_cards)
        for reason, n in by_reason.items():
            assert sample("minewatch_ingest_items_rejected_total", reason=reason) == n, reason
    finally:
        await conn.close()
