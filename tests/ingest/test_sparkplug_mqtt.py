"""Sparkplug B end to end: edge-node messages through a real Mosquitto into a running IngestService
(burst mode) and real PostgreSQL: readings stored once, duplicates counted, every refusal a dead
letter with its reason, a rebirth asked for on an unknown alias, and everything acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from prometheus_client import CollectorRegistry

from ingest import validate as v
from ingest.consumer import MqttSource, parse_mqtt_url
from ingest.metrics import IngestMetrics
from ingest.service import IngestService, Totals
from ingest.sparkplug.wire import Metric, decode_payload
from launcher.embedded import mosquitto_binary
from minewatch.clock import SystemClock
from minewatch.registry import load_registry
from tests.conftest import SAMPLE_REGISTRY, start_ingest
from tests.ingest.files_db.helpers import fetch, readings
from tests.ingest.harness import ingest_published, running_ingest, wait_until
from tests.ingest.sparkplug_pb import BOOLEAN, DOUBLE, FLOAT, STRING, UINT16, birth, metric, payload
from tests.mqtt_helpers import publish_all

pytestmark = pytest.mark.integration

_reg, _ = load_registry(SAMPLE_REGISTRY)
MINE = _reg.mines[0].code
P0, P1, P2, P3 = (p.code for p in _reg.mines[0].points[:4])
FOREIGN = _reg.mines[1].points[0].code


async def burst(dsn: str, url: str, prefix: str, client_id: str, messages: list[tuple[str, bytes]], *,
                expect: int | None = None) -> Totals:
    """Ingest `messages` on `prefix` (until `expect` of them, default all, are written and acked);
    with none, run an IngestService in burst mode (it stops when nothing arrived for 2 s)."""
    if messages:
        return await ingest_published(dsn, url, prefix, client_id, messages, expect=expect)
    source = MqttSource(url, client_id=client_id, topic_prefix=prefix)
    service = IngestService(source, dsn, clock=SystemClock(), metrics=IngestMetrics(CollectorRegistry()),
                            burst_idle_s=2.0)
    task = asyncio.create_task(service.run(burst=True))
    assert await asyncio.to_thread(source.connected.wait, 20), "ingest did not connect"
    return await asyncio.wait_for(task, 60)


class Listener:
    """A plain subscriber, to see what the ingest publishes (its rebirth requests, its STATE)."""

    def __init__(self, url: str, topic: str) -> None:
        host, port = parse_mqtt_url(url)
        self.got: list[tuple[str, bytes]] = []
        self.retained: list[bool] = []
        self.subscribed = threading.Event()
        self.arrived = threading.Event()
        self._count = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.filter = topic
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not mqtt.topic_matches_sub(self.filter, msg.topic):
            return  # the amqtt fallback broker also delivers other sessions' will messages
        with self._count:
            self.got.append((msg.topic, bytes(msg.payload)))
            self.retained.append(bool(msg.retain))
            self.arrived.set()
            self._count.notify_all()

    def wait(self, n: int, timeout: float = 20.0) -> list[tuple[str, bytes]]:
        """The first `n` messages, waiting up to `timeout` seconds for them."""
        with self._count:
            assert self._count.wait_for(lambda: len(self.got) >= n, timeout), f"only {self.got}"
            return self.got[:n]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


async def test_sparkplug_readings_are_stored_once_and_refusals_dead_lettered(fresh_db: str, mqtt_url: str,
                                                                             topic_prefix: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    t0, t1, t2 = now - timedelta(minutes=3), now - timedelta(minutes=2), now - timedelta(minutes=1)
    sp = f"{topic_prefix}spBv1.0/Shanxi"
    node = f"{sp}/NDATA/{MINE}"
    dev = f"{sp}/DDATA/{MINE}/KJ1"
    messages = [
        (f"{sp}/NBIRTH/{MINE}", birth(ms(t0), {P0: (1, DOUBLE, 0.3), P1: (2, FLOAT, 0.25)})),
        (f"{sp}/DBIRTH/{MINE}/KJ1", birth(ms(t0), {P2: (1, BOOLEAN, False), P3: (2, UINT16, 7)})),
        # DATA by alias only, datatypes from the BIRTHs
        (node, payload([metric(alias=1, double_value=0.4), metric(alias=2, float_value=0.5)], ts=ms(t1), seq=1)),
        (dev, payload([metric(alias=1, bool_value=True), metric(alias=2, int_value=9, ts=ms(t2))], ts=ms(t1), seq=2)),
        # a redelivery of the same NDATA: two identical duplicates, stored once
        (node, payload([metric(alias=1, double_value=0.4), metric(alias=2, float_value=0.5)], ts=ms(t1), seq=1)),
        # the same point and time with another value: a conflict, the first value stays
        (node, payload([metric(alias=1, double_value=0.9)], ts=ms(t1), seq=3)),
        # by name, with a status property
        (node, payload([metric(P0, ts=ms(t2), datatype=DOUBLE, double_value=0.6, properties={"status": 4})], seq=4)),
        # hostile and refused
        (node, b"\x12\xff\xff\xff\xff\x0f"),                                          # malformed_protobuf
        (node, b""),                                                                  # empty: nothing at all
        (node, payload([b"\x0a\x09ab", metric(P1, ts=ms(t2), double_value=0.7)], seq=5)),  # one bad metric, one good
        (node, payload([metric(f"{MINE}_01MN0001_X9999", double_value=1.0)], ts=ms(t2))),  # unknown_point
        (node, payload([metric(FOREIGN, double_value=1.0)], ts=ms(t2))),                   # mine_mismatch
        (node, payload([metric(P0, double_value=1.0)], ts=ms(now + timedelta(hours=1)))),  # future_time
        (node, payload([metric(P0, double_value=1.0)], ts=ms(now - timedelta(days=800)))),  # too_old
        (node, payload([metric(P0, datatype=STRING, string_value="0.5")], ts=ms(t2))),      # unsupported_datatype
        (node, payload([metric(P0, double_value=1.0)])),                                  # missing_field (no time)
        (node, payload([metric(P0, double_value=1.0, properties={"status": 70_000})], ts=ms(t2) + 1)),  # bad_value
        (f"{sp}/NFOO/{MINE}", payload([metric(P0, double_value=1.0)], ts=ms(t2))),        # unknown_topic
        (f"{sp}/NDEATH/{MINE}", payload([metric("bdSeq", datatype=8, long_value=0)])),    # nothing recorded
    ]
    client_id = f"sparkplug-{uuid.uuid4().hex[:8]}"
    totals = await burst(fresh_db, mqtt_url, topic_prefix, client_id, messages)

    at = {t: t for t in (t0, t1, t2)}
    assert await readings(fresh_db) == {
        (P0, at[t0], 0.3, 0), (P1, at[t0], 0.25, 0),       # the NBIRTH's own values
        (P2, at[t0], 0.0, 0), (P3, at[t0], 7.0, 0),        # the DBIRTH's
        (P0, at[t1], 0.4, 0), (P1, at[t1], 0.5, 0),        # NDATA by alias (not 0.9: first value wins)
        (P2, at[t1], 1.0, 0), (P3, at[t2], 9.0, 0),        # DDATA by alias, the metric's own time
        (P0, at[t2], 0.6, 4),                              # by name, status from the property
        (P1, at[t2], 0.7, 0),                              # next to a malformed metric
    }
    assert totals.duplicates == 2 and totals.conflicts == 1
    assert totals.stored["readings"] == 10
    rows = await fetch(fresh_db, "SELECT reason, topic, mine_code, detail, payload, payload_raw FROM dead_letters")
    assert Counter(r["reason"] for r in rows) == Counter({
        v.MALFORMED_PROTOBUF: 2, v.UNKNOWN_POINT: 1, v.MINE_MISMATCH: 1, v.FUTURE_TIME: 1, v.TOO_OLD: 1,
        v.UNSUPPORTED_DATATYPE: 1, v.MISSING_FIELD: 1, v.BAD_VALUE: 1, v.UNKNOWN_TOPIC: 1, v.DUPLICATE_CONFLICT: 1})
    assert all(r["topic"].startswith(topic_prefix) for r in rows)
    assert {r["mine_code"] for r in rows if r["reason"] not in (v.DUPLICATE_CONFLICT, v.UNKNOWN_TOPIC)} == {MINE}
    whole = [r for r in rows if r["reason"] == v.MALFORMED_PROTOBUF and "not a Sparkplug B payload" in r["detail"]]
    assert len(whole) == 1 and bytes(whole[0]["payload_raw"]) == b"\x12\xff\xff\xff\xff\x0f"
    unsupported = next(r for r in rows if r["reason"] == v.UNSUPPORTED_DATATYPE)
    assert "String (12)" in unsupported["detail"] and P0 in unsupported["payload"]
    assert totals.rejected[v.MALFORMED_PROTOBUF] == 2 and totals.rejected[v.UNKNOWN_TOPIC] == 1

    # Everything was acknowledged after its commit: the same persistent session gets nothing again.
    again = await burst(fresh_db, mqtt_url, topic_prefix, client_id, [])
    assert again.messages == 0


async def test_unknown_alias_is_dead_lettered_and_a_rebirth_requested(fresh_db: str, mqtt_url: str,
                                                                      topic_prefix: str) -> None:
    """DATA with aliases before any BIRTH (an ingest restarted mid-stream): refused with its
    reason and an NCMD `Node Control/Rebirth` published once; after the BIRTH the aliases work."""
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    sp = f"{topic_prefix}spBv1.0/G"
    listener = await asyncio.to_thread(Listener, mqtt_url, f"{sp}/NCMD/#")
    try:
        data = [(f"{sp}/DDATA/{MINE}/KJ9", payload([metric(alias=5, double_value=0.1)], ts=ms(t1) + i))
                for i in range(3)]
        after = [(f"{sp}/NBIRTH/{MINE}", birth(ms(t1), {P0: (5, DOUBLE, 0.2)})),
                 (f"{sp}/NDATA/{MINE}", payload([metric(alias=5, double_value=0.3)], ts=ms(t1) + 10))]
        # the ingest's own rebirth request comes back through its `spBv1.0/#` subscription: one more
        totals = await burst(fresh_db, mqtt_url, topic_prefix, f"alias-{uuid.uuid4().hex[:8]}", data + after,
                             expect=len(data + after) + 1)
        await asyncio.to_thread(listener.arrived.wait, 5)
        await asyncio.sleep(0.5)  # a second request, if one were sent, would be here by now
    finally:
        await asyncio.to_thread(listener.close)
    rows = await fetch(fresh_db, "SELECT reason, detail, topic FROM dead_letters ORDER BY id")
    assert [r["reason"] for r in rows] == [v.UNKNOWN_ALIAS] * 3
    assert all("alias 5" in r["detail"] and f"G/{MINE}/KJ9" in r["detail"] and "rebirth" in r["detail"] for r in rows)
    assert totals.rejected[v.UNKNOWN_ALIAS] == 3
    # one rebirth request for the three messages (rate-limited per node), an NCMD to the edge node
    assert [t for t, _ in listener.got] == [f"{sp}/NCMD/{MINE}"]
    [m] = decode_payload(listener.got[0][1]).metrics
    assert isinstance(m, Metric) and (m.name, m.datatype, m.value) == ("Node Control/Rebirth", BOOLEAN, True)
    # after the BIRTH, the alias is known
    assert await readings(fresh_db, [P0]) == {(P0, t1, 0.2, 0), (P0, t1 + timedelta(milliseconds=10), 0.3, 0)}


# The amqtt fallback redelivers a retained message once more on a resubscribe and hands wills to
# other sessions' subscribers: its retained and will semantics are not Mosquitto's (README).
@pytest.mark.skipif(not os.environ.get("MQTT_URL") and mosquitto_binary() is None,
                    reason="needs Mosquitto's retained-message and will semantics (amqtt differs)")
def test_host_state_birth_and_death(db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    """`minewatch ingest` as a Sparkplug host: STATE online after it subscribes, offline when it
    stops, and offline by its will when it is killed; retained, with the birth's timestamp."""
    client_id = f"state-{uuid.uuid4().hex[:8]}"
    topic = f"{topic_prefix}spBv1.0/STATE/{client_id}"
    listener = Listener(mqtt_url, topic)
    try:
        proc = start_ingest(db, mqtt_url, topic_prefix, tmp_path / "clean.log", client_id=client_id,
                            args=("--burst", "1"))
        assert proc.wait(60) == 0
        (t1, online), (t2, offline) = listener.wait(2)
        assert t1 == t2 == topic
        birth_ts = json.loads(online)["timestamp"]
        assert json.loads(online) == {"online": True, "timestamp": birth_ts}
        assert json.loads(offline) == {"online": False, "timestamp": birth_ts}
        assert "ingest: 0 messages" in (tmp_path / "clean.log").read_text()  # our own STATE is not a message

        proc = start_ingest(db, mqtt_url, topic_prefix, tmp_path / "killed.log", client_id=client_id)
        _, online = listener.wait(3)[2]
        proc.kill()  # SIGKILL: no clean disconnect, the broker publishes the will
        proc.wait(10)
        _, will = listener.wait(4)[3]
        ts = json.loads(online)["timestamp"]
        assert json.loads(online) == {"online": True, "timestamp": ts} and ts >= birth_ts
        assert json.loads(will) == {"online": False, "timestamp": ts}
    finally:
        listener.close()
    late = Listener(mqtt_url, topic)
    try:
        [(_, kept)] = late.wait(1)
        assert late.retained == [True] and json.loads(kept) == {"online": False, "timestamp": ts}
    finally:
        late.close()


def test_the_subscription_follows_the_setting_and_the_prefix() -> None:
    on = MqttSource("mqtt://127.0.0.1:1", client_id="x", topic_prefix="p/")
    assert on.topics() == ["p/mines/#", "p/spBv1.0/#"]
    assert on.state_topic == "p/spBv1.0/STATE/x"
    assert on.stale_topics() == ["p//+/+"]
    off = MqttSource("mqtt://127.0.0.1:1", client_id="x", topic_prefix="p/", sparkplug=False, share_group="g")
    assert off.topics() == ["$share/g/p/mines/#"]
    assert off.state_topic is None
    assert "p/spBv1.0/#" in off.stale_topics() and "$share/g/p/spBv1.0/#" in off.stale_topics()


def test_the_setting_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from minewatch.settings import IngestSettings

    monkeypatch.delenv("MINEWATCH_INGEST_SPARKPLUG", raising=False)
    assert IngestSettings().sparkplug is True
    monkeypatch.setenv("MINEWATCH_INGEST_SPARKPLUG", "false")
    assert IngestSettings().sparkplug is False




async def test_a_refused_batch_is_split_without_remapping_its_aliases(fresh_db: str, mqtt_url: str,
                                                                      topic_prefix: str) -> None:
    """A batch PostgreSQL refuses is re-validated in halves after the whole batch was mapped; a
    later BIRTH in the batch has re-assigned alias 1 by then. Each DATA message must keep the
    point its own BIRTH gave alias 1, and the poisoned message alone becomes `unstorable`."""
    base = ms(datetime.now(UTC)) - 120_000
    node = f"{topic_prefix}spBv1.0/G/NDATA/{MINE}"
    messages = [(f"{topic_prefix}spBv1.0/G/NBIRTH/{MINE}", birth(base, {P0: (1, DOUBLE, 0.5)}))]
    messages += [(node, payload([metric(alias=1, double_value=float(i))], ts=base + 1 + i)) for i in range(200)]
    poison = payload([metric(alias=1, double_value=666.0)], ts=base + 500)
    messages.insert(120, (node, poison))
    messages.append((f"{topic_prefix}spBv1.0/G/NBIRTH/{MINE}", birth(base + 1000, {P1: (1, DOUBLE, 0.5)})))
    messages += [(node, payload([metric(alias=1, double_value=float(i))], ts=base + 1001 + i)) for i in range(100)]
    when = lambda t: datetime.fromtimestamp(t / 1000, tz=UTC)  # noqa: E731
    want = ({(P0, when(base), 0.5, 0), (P1, when(base + 1000), 0.5, 0)}
            | {(P0, when(base + 1 + i), float(i), 0) for i in range(200)}
            | {(P1, when(base + 1001 + i), float(i), 0) for i in range(100)})
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("ALTER TABLE readings ADD CONSTRAINT poison CHECK (value <> 666)")
        async with running_ingest(fresh_db, mqtt_url, topic_prefix, batch_max_age_s=0.5) as ing:
            await asyncio.to_thread(publish_all, mqtt_url, messages)

            async def done() -> bool:
                return await conn.fetchval("SELECT count(*) FROM readings") >= len(want) and \
                    await conn.fetchval("SELECT count(*) FROM dead_letters") >= 1
            await wait_until(done)
            await asyncio.sleep(0.5)
            assert await readings(fresh_db) == want
            dl = await conn.fetch("SELECT reason, payload_raw, topic FROM dead_letters")
            assert [(r["reason"], bytes(r["payload_raw"]), r["topic"]) for r in dl] == [(v.UNSTORABLE, poison, node)]
            assert ing.service.totals.messages == len(messages)
    finally:
        await conn.close()
