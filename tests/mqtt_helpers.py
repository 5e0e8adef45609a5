"""A plain paho publisher for tests that need to send exact bytes (hostile input, duplicates)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import paho.mqtt.client as mqtt

from ingest.consumer import parse_mqtt_url


def publish_all(url: str, messages: Iterable[tuple[str, bytes]], *, max_inflight: int = 500,
                timeout: float = 120.0) -> int:
    """Publish at QoS 1 with a bounded number in flight; return once the broker acked every message."""
    host, port = parse_mqtt_url(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(max_inflight)
    slots = threading.BoundedSemaphore(max_inflight)
    acked = 0
    lock = threading.Lock()
    done = threading.Event()
    total = [0]
    sent_all = threading.Event()

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: mqtt.ReasonCode, p: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if sent_all.is_set() and acked >= total[0]:
                done.set()
        slots.release()

    client.on_publish = on_publish
    deadline = time.monotonic() + timeout
    while True:  # the broker may be restarting under us (that is what some tests do)
        try:
            client.connect(host, port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    client.loop_start()
    try:
        n = 0
        for topic, payload in messages:
            if not slots.acquire(timeout=timeout):
                raise TimeoutError("broker stopped acknowledging publishes")
            info = client.publish(topic, payload, qos=1)
            # NO_CONN: the broker is restarting; paho keeps the QoS 1 message and sends it on reconnect.
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
            n += 1
        with lock:
            total[0] = n
            sent_all.set()
            if acked >= n:
                done.set()
        if not done.wait(timeout):
            raise TimeoutError(f"only {acked} of {n} publishes acknowledged")
        return n
    finally:
        client.disconnect()
        client.loop_stop()
