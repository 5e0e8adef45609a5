"""Memory is bounded in bytes, not only in messages: the queue blocks the network thread, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from ingest.consumer import ByteBoundedQueue, Inbound
from ingest.validate import MAX_MESSAGE_BYTES
from launcher.embedded import MOSQUITTO_CONF, mosquitto_binary
from tests.ingest.harness import registry_codes, running_ingest, wait_until
from tests.mqtt_helpers import publish_all

ROOT = Path(__file__).resolve().parents[2]


def _msg(size: int) -> Inbound:
    return Inbound(1, 1, 1, "t", b"x" * size, 0.0)


def test_the_queue_blocks_on_bytes_and_admits_one_oversized_message_when_empty() -> None:
    q = ByteBoundedQueue(100, 1_000)
    q.put(_msg(600))
    with pytest.raises(queue.Full):
        q.put(_msg(600), timeout=0.05)  # 1 200 bytes > 1 000
    assert q.bytes == 600
    got: list[Inbound] = []
    t = threading.Thread(target=lambda: q.put(_msg(600)))  # blocks until the reader takes one
    t.start()
    time.sleep(0.1)
    assert t.is_alive()
    got.append(q.get())
    t.join(2)
    assert not t.is_alive() and q.bytes == 600
    got.append(q.get())
    q.put(_msg(5_000))  # larger than the bound, but the queue is empty: let in, alone
    with pytest.raises(queue.Full):
        q.put(_msg(1), block=False)
    assert q.get().payload == b"x" * 5_000 and q.bytes == 0


def _limit(text: str) -> int:
    m = re.search(r"^message_size_limit (\d+)$", text, re.M)
    assert m, "message_size_limit must be set"
    return int(m[1])


def test_brokers_refuse_messages_the_ingest_would_not_parse() -> None:
    deploy = (ROOT / "deploy" / "mosquitto" / "minewatch.conf").read_text(encoding="utf-8")
    embedded = MOSQUITTO_CONF.format(user_line="", port=1883, host="127.0.0.1", data="/tmp")
    assert _limit(deploy) == _limit(embedded) == MAX_MESSAGE_BYTES
    # a contract batch (10 000 items) of the contract's example item, with room to spare
    item = b'{"point": "140100000001_01MN0001_T0101", "ts": "2026-11-23T08:15:00.250+08:00", "value": 0.42, "status": 0}'
    assert 10_000 * (len(item) + 1) * 2 <= MAX_MESSAGE_BYTES


@pytest.mark.integration
# Backpressure holds messages unacknowledged while the queue is full; amqtt forgets a QoS 1 message
# after 5 s without an ack (README), so on a slow machine the flood loses messages to the broker.
@pytest.mark.skipif(not os.environ.get("MQTT_URL") and mosquitto_binary() is None,
                    reason="needs redelivery of messages held unacknowledged by backpressure "
                           "(amqtt forgets a QoS 1 message after 5 s without an ack)")
async def test_a_flood_of_large_messages_is_stored_whole_within_the_byte_bound(fresh_db: str, mqtt_url: str,
                                                                              topic_prefix: str) -> None:
    mine, points = registry_codes()
    base = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    messages = []
    expected = set()
    for m in range(60):  # 60 messages of 1 000 items, ~80 kB each: ~5 MB through a 256 kB queue
        items = []
        for i in range(1_000):
            p, ts = points[i % len(points)], base + m * 1_000 + i
            expected.add((p, ts))
            items.append({"point": p, "ts": ts, "value": 1.0})
        messages.append((f"{topic_prefix}mines/{mine}/safety", json.dumps(items).encode()))
    bound = 256 * 1024
    async with running_ingest(fresh_db, mqtt_url, topic_prefix, source_kw={"queue_max_bytes": bound},
                              batch_max_bytes=128 * 1024) as ing:
        peak = 0
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, ing.source.queue.bytes)
                time.sleep(0.001)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            await asyncio.to_thread(publish_all, mqtt_url, messages)
            conn = await asyncpg.connect(fresh_db)
            try:
                async def all_in() -> bool:
                    return int(await conn.fetchval("SELECT count(*) FROM readings")) >= len(expected)
                await wait_until(all_in)
                rows = await conn.fetch("SELECT p.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms "
                                        "FROM readings r JOIN points p ON p.id = r.point_id")
                assert {(r["code"], int(r["ms"])) for r in rows} == expected
            finally:
                await conn.close()
        finally:
            stop.set()
            watcher.join()
        assert 0 < peak <= bound
