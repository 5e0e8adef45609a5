"""Publishing to a real broker: every item of a short history arrives, in-flight stays bounded."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from minewatch.registry import Registry
from simulators.errors import SimulatorError
from simulators.publish import BrokerUrl, MqttSink
from simulators.render import decode_items
from simulators.run import MemorySink, RunOptions, run_history
from simulators.world import World
from tests.simulators.conftest import START


class _Subscriber:
    """A plain paho client at QoS 1 that counts what it receives."""

    def __init__(self, url: str, topic: str) -> None:
        b = BrokerUrl.parse(url)
        self.payloads: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.filter = topic
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda cl, u, mid, rcs, p: self._ready.set()
        c.on_message = self._on_message
        c.connect(b.host, b.port)
        c.loop_start()
        self.client = c
        assert self._ready.wait(10), "subscription not acknowledged"

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if not mqtt.topic_matches_sub(self.filter, msg.topic):
            return  # the amqtt fallback broker also hands subscribers other sessions' will messages
        with self._lock:
            self.payloads.append((msg.topic, bytes(msg.payload)))

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.payloads) < n:
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.integration
@pytest.mark.parametrize("threaded", [False, True])
def test_a_short_history_arrives_whole(mqtt_url: str, topic_prefix: str, registry: Registry, threaded: bool) -> None:
    opts = RunOptions(topic_prefix=topic_prefix, items_per_message=50, late_fraction=0.05)
    expected = MemorySink()
    run_history(World(registry, 11, START, START + timedelta(minutes=20)), expected, opts)
    sub = _Subscriber(mqtt_url, f"{topic_prefix}mines/#")
    try:
        sink = MqttSink(mqtt_url, max_inflight=8, threaded=threaded)
        stats = run_history(World(registry, 11, START, START + timedelta(minutes=20)), sink, opts)
        assert sink.acked == sink.published == stats.messages == len(expected.messages)
        assert sink.inflight == 0 and sink.max_seen_inflight <= 8
        sub.wait_for(stats.messages)
    finally:
        sub.close()
    assert Counter(sub.payloads) == Counter(expected.messages)
    items = sum(len(decode_items(p)) for _, p in sub.payloads)
    assert items == stats.readings + stats.card_reads + stats.station_states > 5_000


@pytest.mark.parametrize("threaded", [False, True])
def test_an_unreachable_broker_is_a_clear_error(threaded: bool) -> None:
    sink = MqttSink("mqtt://127.0.0.1:9", connect_timeout_s=1.0, threaded=threaded)
    with pytest.raises(SimulatorError, match=r"127\.0\.0\.1:9"):
        sink.connect()


@pytest.mark.parametrize("url", ["http://x:1883", "mqtt://", "mqtt://h:port"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(SimulatorError):
        BrokerUrl.parse(url)
