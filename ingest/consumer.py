"""The MQTT side of ingest: a paho client with a persistent session, manual acks and a bounded queue."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from .errors import IngestError

log = logging.getLogger(__name__)

FAMILIES = ("safety", "geotech", "personnel", "stations")
# Session expiry the broker keeps our queue for while we are away (MQTT 5).
# A week: an ingest outage longer than that is a disaster-recovery case.
SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received message, tagged with the connection it arrived on (packet ids are per connection)."""

    epoch: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # wall clock, epoch seconds


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """`mqtt://host:port` -> (host, port)."""
    u = urlparse(url)
    if u.scheme not in ("mqtt", "tcp", ""):
        raise IngestError(f"unsupported MQTT URL scheme {u.scheme!r} in {url!r} (use mqtt://host:port)")
    return u.hostname or "127.0.0.1", u.port or 1883


class MqttSource:
    """Receives messages into a bounded queue; acks only what the writer says is committed.

    The network thread blocks on a full queue: the socket stops being read,
    TCP pushes back, and the broker keeps the backlog in our persistent
    session. Nothing is acknowledged before its rows are committed, so a
    crash at any moment loses nothing; the broker redelivers, and idempotent
    storage turns redeliveries into counted duplicates.
    """

    def __init__(self, url: str, *, client_id: str, topic_prefix: str = "", share_group: str | None = None,
                 queue_max: int = 20_000, protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
                 reconnect_min_s: float = 0.5,
                 reconnect_max_s: float = 30.0, field_variant: bool = False) -> None:
        self.host, self.port = parse_mqtt_url(url)
        self.topic_prefix = topic_prefix
        # Also take the provincial variant's `/{mine}/{system}` topics (ingest/field_variant.py).
        self.field_variant = field_variant
        self.share_group = share_group
        self.queue: queue.Queue[Inbound] = queue.Queue(maxsize=queue_max)
        self.epoch = 0
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._rng = random.Random()
        # paho takes whole seconds
        self._reconnect = (max(1, round(reconnect_min_s)), max(1, round(reconnect_max_s)))
        self.protocol = protocol
        kwargs: dict[str, object] = {}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                                  manual_ack=True, **kwargs)  # type: ignore[arg-type]
        # paho's backoff doubles up to the cap; we add jitter on every disconnect
        # so a fleet of ingest processes does not reconnect in lock-step.
        self.client.reconnect_delay_set(min_delay=self._reconnect[0], max_delay=self._reconnect[1])
        self.client.max_inflight_messages_set(65_535)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def topics(self) -> list[str]:
        # The whole mines/ tree, not one filter per family: a message on a
        # misspelt family must reach us to become a dead letter, rather than
        # being dropped by the broker for want of a subscriber.
        base = [f"{self.topic_prefix}mines/#"]
        if self.field_variant:
            # The variant's topics start with `/`: `{prefix}/+/+`. The adapter tells its
            # `/{mine}/{two-digit system}` apart from anything else on two levels.
            base.append(f"{self.topic_prefix}/+/+")
        if self.share_group:
            return [f"$share/{self.share_group}/{t}" for t in base]
        return base

    def start(self) -> None:
        props = None
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = 65_535
        try:
            if self.protocol == mqtt.MQTTv5:
                self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
            else:
                self.client.connect_async(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise IngestError(f"cannot connect to MQTT broker {self.host}:{self.port}: {exc}") from exc
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping.set()
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def ack(self, messages: list[Inbound]) -> int:
        """Acknowledge committed messages received on the current connection; returns how many were acked.

        Messages from an earlier connection are not acked: their packet ids
        may now name other messages, and the broker redelivers them anyway.
        """
        n = 0
        epoch = self.epoch
        for m in messages:
            if m.qos > 0 and m.epoch == epoch:
                self.client.ack(m.mid, m.qos)
                n += 1
        return n

    # paho callbacks, on the network thread

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, props: Properties | None) -> None:
        if reason.is_failure:
            log.warning("broker refused connection: %s", reason)
            return
        self.epoch += 1
        log.info("connected to %s:%s (session present: %s)", self.host, self.port, flags.session_present)
        client.subscribe([(t, 1) for t in self.topics()])
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, props: Properties | None) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            lo, hi = self._reconnect
            jittered = max(1, round(lo * (0.5 + 2 * self._rng.random())))
            client.reconnect_delay_set(min_delay=jittered, max_delay=hi)
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        item = Inbound(self.epoch, msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time())
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stopping.is_set():
                    return  # not acked: the broker redelivers it to the next session
