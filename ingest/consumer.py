"""The MQTT side of ingest: a paho client with a persistent session, manual acks and a bounded queue."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from minewatch.text import log_safe

from .errors import IngestError

# A Sparkplug B host application's STATE topic, under any prefix: `…spBv1.0/STATE/{host id}`.
_HOST_STATE = re.compile(r"(^|/)spBv1\.0/STATE/[^/]+$")

log = logging.getLogger(__name__)

FAMILIES = ("safety", "geotech", "personnel", "stations")
# Session expiry the broker keeps our queue for while we are away (MQTT 5).
# A week: an ingest outage longer than that is a disaster-recovery case.
SESSION_EXPIRY_S = 7 * 24 * 3600


class Inbound(NamedTuple):
    """One received message, tagged with the connection it arrived on (packet ids are per connection).

    A NamedTuple, not a frozen dataclass: one is built per message on the
    network thread, and a tuple is several times cheaper to build.
    """

    epoch: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float  # wall clock, epoch seconds


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in: `mqtt[s]://[user[:password]@]host[:port]`."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5


# `?protocol=` values. MQTT 5 is the default (session expiry, receive maximum); 3.1.1 is for
# brokers that speak nothing newer, such as the embedded amqtt fallback (launcher.embedded):
# amqtt 0.12 does not even refuse a v5 CONNECT, it misreads its properties as the client id
# length and waits for bytes that never come, so a v5 client never gets a CONNACK.
PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}


def parse_partition(text: str) -> tuple[int, int]:
    """"K/N" (0 <= K < N) as (K, N): this process's share of a static partition of the mines."""
    k, sep, n = text.partition("/")
    if not (sep and k.strip().isdigit() and n.strip().isdigit() and 0 <= int(k) < int(n)):
        raise IngestError(f"ingest partition {text!r}: expected K/N with 0 <= K < N, e.g. 0/2 and 1/2 for two processes")
    return int(k), int(n)


def partition_of(mine: str, n: int) -> int:
    """Which of n ingest processes takes a mine: CRC-32 of its code mod n (the same in every
    process and every run, unlike Python's salted hash)."""
    return zlib.crc32(mine.encode()) % n


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://host:port`, `mqtts://user:password@host` (TLS, default port 8883) -> BrokerAddress.

    User and password are percent-decoded (a `@` or `:` in a password is
    written `%40` / `%3A`). TLS verifies the broker against the system CA store.
    `?protocol=3.1.1` connects with MQTT 3.1.1 (a persistent session without
    expiry) instead of MQTT 5, for brokers that speak only 3.1.1.
    """
    u = urlsplit(url)
    if u.scheme not in ("mqtt", "tcp", "mqtts", "ssl", ""):
        raise IngestError(f"unsupported MQTT URL scheme {u.scheme!r} in {url!r} (use mqtt:// or mqtts://)")
    tls = u.scheme in ("mqtts", "ssl")
    try:
        port = u.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise IngestError(f"bad port in MQTT URL {url!r}") from exc
    wanted = parse_qs(u.query).get("protocol", ["5"])[-1]
    if wanted not in PROTOCOLS:
        raise IngestError(f"unsupported protocol={wanted!r} in MQTT URL {url!r} (one of {', '.join(PROTOCOLS)})")
    return BrokerAddress(u.hostname or "127.0.0.1", port, tls,
                         unquote(u.username) if u.username is not None else None,
                         unquote(u.password) if u.password is not None else None,
                         PROTOCOLS[wanted])


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """`mqtt://host:port` -> (host, port)."""
    a = parse_broker_url(url)
    return a.host, a.port


# Bytes taken from the kernel per recv(). paho asks for 1 byte (command), 1 byte at a time
# (remaining length), then the rest of each packet, after one select() per packet: four
# system calls per message. Reading 256 KiB at once serves hundreds of packets per call.
READ_CHUNK = 256 * 1024
# Packets handled per pass of paho's loop before it looks at writes (acks) and keep-alive again.
PACKETS_PER_PASS = 2_000


class _BufferedSocket:
    """A socket (plain or TLS) whose reads come from a large buffer; everything else passes through.

    `pending()` reports the buffered bytes, which paho already honours for
    TLS sockets: it then skips the select() wait and reads again.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        pos, buf = self._pos, self._buf
        if pos >= len(buf):
            buf = bytes(self._sock.recv(max(n, READ_CHUNK)))  # raises BlockingIOError / SSLWantRead as before
            if not buf:
                return buf
            self._buf, pos = buf, 0
        out = buf[pos:pos + n]
        self._pos = pos + len(out)
        return out

    def pending(self) -> int:
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + int(inner)

    def __getattr__(self, name: str) -> Any:  # send, close, fileno, setblocking, ...
        return getattr(self._sock, name)


# Bytes of payload the queue holds before the network thread blocks. Count alone is no bound:
# 20 000 messages of 4 MiB would be 80 GiB. 64 MiB holds 16 maximum-size messages, or about
# 600 000 readings in 100-item messages: several full batches ahead of the writer.
QUEUE_MAX_BYTES = 64 << 20


class ByteBoundedQueue(queue.Queue[Inbound]):
    """A queue bounded in messages and in payload bytes; `put` blocks while either is full.

    A message larger than the whole byte bound is still let in when the queue is
    empty (one at a time), or it could never be taken and the session would stall.
    """

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        super().__init__(maxsize)
        self.max_bytes = max_bytes
        self.bytes = 0

    def _put(self, item: Inbound) -> None:
        super()._put(item)
        self.bytes += len(item.payload)

    def _get(self) -> Inbound:
        item = super()._get()
        self.bytes -= len(item.payload)
        return item

    def _full(self, size: int) -> bool:
        return self._qsize() >= self.maxsize or (self.bytes > 0 and self.bytes + size > self.max_bytes)

    def put(self, item: Inbound, block: bool = True, timeout: float | None = None) -> None:
        size = len(item.payload)
        with self.not_full:
            if not block:
                if self._full(size):
                    raise queue.Full
            elif timeout is None:
                while self._full(size):
                    self.not_full.wait()
            else:
                end = time.monotonic() + timeout
                while self._full(size):
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        raise queue.Full
                    self.not_full.wait(remaining)
            self._put(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()


_PUBACK = struct.Struct("!BBH")  # PUBACK, remaining length 2, packet id (MQTT 5: reason 0 implied)


class _Client(mqtt.Client):
    """paho's client reading through a buffer and draining it in one pass of its loop.

    Relies on paho 2.x internals (`_create_socket`, `_handle_publish`,
    `_packet_queue`, `_in_packet`); pyproject pins paho-mqtt < 3 and the
    ingest tests exercise every one of them against a real broker.
    """

    # Called on the network thread for each QoS 0 / 1 PUBLISH: (topic, packet id, qos, payload).
    publish_sink: Callable[[str, int, int, bytes], None] | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        # paho builds an MQTTMessage, parses MQTT 5 properties into a Properties object and
        # matches the topic against per-filter callbacks for every message: half of its cost
        # per message. We use no property (no topic aliases: we announce no Topic Alias
        # Maximum) and no per-filter callback, so take topic, packet id and payload directly.
        sink = self.publish_sink
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if sink is None or qos > 1:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        end = 2 + int.from_bytes(packet[0:2], "big")
        topic = packet[2:end].decode("utf-8", "replace")
        mid = 0
        if qos:
            mid = int.from_bytes(packet[end:end + 2], "big")
            end += 2
        if self._protocol == mqtt.MQTTv5:
            length, shift = 0, 0
            while True:  # property length, a variable byte integer
                byte = packet[end]
                end += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            end += length
        sink(topic, mid, qos, bytes(packet[end:]))
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK many QoS 1 messages as one write.

        paho's `ack()` queues one 4-byte packet per message and wakes the
        network thread through its socket pair each time (a system call per
        ack); a committed batch of 20 000 single-item messages is one write.
        """
        if mids:
            pack = _PUBACK.pack
            self._packet_queue(0x40, b"".join([pack(0x40, 2, mid) for mid in mids]), 0, 1)

    def _create_socket(self) -> Any:
        return _BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads one packet per select() when nothing of ours is in flight (manual
        # acks keep no state in paho); read on while the buffer holds whole packets.
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        for _ in range(PACKETS_PER_PASS):
            rc = super().loop_read(1)
            sock = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, _BufferedSocket) or not sock.pending():
                break
        return rc


class MqttSource:
    """Receives messages into a bounded queue; acks only what the writer says is committed.

    The network thread blocks on a full queue (full in messages or in payload
    bytes): the socket stops being read,
    TCP pushes back, and the broker keeps the backlog in our persistent
    session. Nothing is acknowledged before its rows are committed, so a
    crash at any moment loses nothing; the broker redelivers, and idempotent
    storage turns redeliveries into counted duplicates.
    """

    def __init__(self, url: str, *, client_id: str, topic_prefix: str = "", share_group: str | None = None,
                 queue_max: int = 20_000, protocol: MQTTProtocolVersion | None = None,
                 reconnect_min_s: float = 0.5,
                 reconnect_max_s: float = 30.0, field_variant: bool = False,
                 queue_max_bytes: int = QUEUE_MAX_BYTES, sparkplug: bool = True,
                 partition: tuple[int, int] | None = None) -> None:
        if partition is not None and share_group:
            raise IngestError("an ingest partition and a share group exclude each other: a partition's "
                              "processes each subscribe to their own mines on their own session")
        self.address = parse_broker_url(url)
        # A static partition (K, N) of the mines: subscribe to the owned mines' topics only
        # (`set_mines`, from the registry, before start and on every registry refresh).
        self.partition = partition
        self.mines: frozenset[str] = frozenset()
        self._mines_lock = threading.Lock()
        self.host, self.port = self.address.host, self.address.port
        self.topic_prefix = topic_prefix
        # Also take the provincial variant's `/{mine}/{system}` topics (ingest/field_variant.py).
        self.field_variant = field_variant
        # Also take Sparkplug B 3.0 (`spBv1.0/#`, ingest/sparkplug), as the contract promises.
        self.sparkplug = sparkplug
        self.share_group = share_group
        self.queue: ByteBoundedQueue = ByteBoundedQueue(queue_max, queue_max_bytes)
        self.epoch = 0
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._rng = random.Random()
        # paho takes whole seconds
        self._reconnect = (max(1, round(reconnect_min_s)), max(1, round(reconnect_max_s)))
        # The URL's `?protocol=` unless the caller insists (MQTT 5 when neither says).
        self.protocol = protocol = protocol or self.address.protocol
        kwargs: dict[str, object] = {}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = False
        self.client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                                  manual_ack=True, **kwargs)  # type: ignore[arg-type]
        # paho's backoff doubles up to the cap; we add jitter on every disconnect
        # so a fleet of ingest processes does not reconnect in lock-step.
        self.client.reconnect_delay_set(min_delay=self._reconnect[0], max_delay=self._reconnect[1])
        self.client.max_inflight_messages_set(65_535)
        self.client.max_queued_messages_set(0)
        if self.address.username is not None:
            self.client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            try:
                self.client.tls_set()  # the system CA store, hostname checked
            except (OSError, ValueError) as exc:
                raise IngestError(f"cannot set up TLS for {self.host}:{self.port}: {exc}") from exc
        # Sparkplug B 3.0 host STATE: `{prefix}spBv1.0/STATE/{client id}`, retained, QoS 1: online
        # after we subscribe, offline by our will if the connection dies and by us on a clean
        # stop. Edge nodes configured with this host as their primary host publish only while
        # it is online. Both carry the timestamp of this process's start, as the specification
        # wants the death certificate's timestamp to match the birth's.
        self.state_topic: str | None = None
        self._state_ts = int(time.time() * 1000)
        if sparkplug and client_id and not any(c in client_id for c in "/+#"):
            self.state_topic = f"{self.topic_prefix}spBv1.0/STATE/{client_id}"
            # The will only over MQTT 5. The one 3.1.1 broker tested here, the amqtt fallback,
            # hands a will to every subscriber whatever its filter (other sessions' ingests would
            # see our offline STATE); over 3.1.1 the offline STATE is published on a clean stop only.
            if protocol == mqtt.MQTTv5:
                self.client.will_set(self.state_topic, self._state(online=False), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message  # QoS 2 only (never: we subscribe at 1)
        self.client.publish_sink = self._on_publish

    def topics(self) -> list[str]:
        # The whole mines/ tree, not one filter per family: a message on a
        # misspelt family must reach us to become a dead letter, rather than
        # being dropped by the broker for want of a subscriber.
        if self.partition is not None:
            return self._partition_topics()
        base = [f"{self.topic_prefix}mines/#"]
        if self.field_variant:
            # The variant's topics start with `/`: `{prefix}/+/+`. The adapter tells its
            # `/{mine}/{two-digit system}` apart from anything else on two levels.
            base.append(f"{self.topic_prefix}/+/+")
        if self.sparkplug:
            # The whole namespace, for the same reason as mines/#: a malformed Sparkplug topic
            # must become a dead letter. Deaths, commands and STATE arrive too and record nothing.
            base.append(f"{self.topic_prefix}spBv1.0/#")
        if self.share_group:
            return [f"$share/{self.share_group}/{t}" for t in base]
        return base

    def _partition_topics(self) -> list[str]:
        """A partition's filters: each owned mine's tree (and its field-variant topics). A message
        of a mine not in the registry then reaches no ingest (the broker drops it) rather than
        becoming a dead letter: the price of a static partition (docs/operations.md). Sparkplug's
        namespace is not by mine: the process of K = 0 takes it whole."""
        p = self.topic_prefix
        mines = sorted(self.mines)
        out = [f"{p}mines/{m}/#" for m in mines]
        if self.field_variant:
            out += [f"{p}/{m}/+" for m in mines]
        if self.sparkplug and self.partition is not None and self.partition[0] == 0:
            out.append(f"{p}spBv1.0/#")
        return out

    def set_mines(self, codes: Iterable[str]) -> None:
        """The registry's mine codes: keep those of this partition, and (when connected) subscribe
        to the new ones' topics and drop the gone ones'. No-op without a partition."""
        if self.partition is None:
            return
        k, n = self.partition
        owned = frozenset(c for c in codes if partition_of(c, n) == k)
        with self._mines_lock:
            if owned == self.mines:
                return
            before, old = self.topics(), self.mines
            self.mines = owned
            after = self.topics()
        log.info("ingest partition %d/%d: %d mines of the registry (%+d, %+d)", k, n, len(owned),
                 len(owned - old), -len(old - owned))
        if self.connected.is_set():
            if gone := [t for t in before if t not in after]:
                self.client.unsubscribe(gone)
            if new := [t for t in after if t not in before]:
                self.client.subscribe([(t, 1) for t in new])

    def stale_topics(self) -> list[str]:
        """Filters an earlier configuration of this persistent session may have subscribed and
        this one does not want: the broker keeps a session's subscriptions across restarts, so
        turning the field variant off (or leaving a share group) takes effect only if we say so."""
        variant = f"{self.topic_prefix}/+/+"
        known = [f"{self.topic_prefix}mines/#", variant, f"{self.topic_prefix}spBv1.0/#"]
        if self.share_group:
            known += [f"$share/{self.share_group}/{t}" for t in known]
        wanted = set(self.topics())
        return [t for t in known if t not in wanted]

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

    def _state(self, *, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": self._state_ts}).encode()

    def stop(self) -> None:
        self._stopping.set()
        try:
            if self.state_topic is not None and self.connected.is_set():
                # A clean disconnect does not fire the will: say offline ourselves (briefly waited
                # for, so the broker has it before the DISCONNECT; the will covers the rest).
                info = self.client.publish(self.state_topic, self._state(online=False), qos=1, retain=True)
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(2.0)
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> bool:
        """Publish one message (the ingest's own topic prefix is the caller's); False when it could
        not even be queued (not connected). Thread-safe: paho queues it for the network thread."""
        try:
            info = self.client.publish(topic, payload, qos=qos)
        except (OSError, ValueError) as exc:
            log.warning("could not publish on %s: %s", log_safe(topic), exc)
            return False
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack(self, messages: list[Inbound]) -> int:
        """Acknowledge committed messages received on the current connection; returns how many were acked.

        Messages from an earlier connection are not acked: their packet ids
        may now name other messages, and the broker redelivers them anyway.
        """
        epoch = self.epoch
        mids = [m.mid for m in messages if m.qos == 1 and m.epoch == epoch]
        self.client.ack_many(mids)
        n = len(mids)
        for m in messages:
            if m.qos == 2 and m.epoch == epoch:  # we subscribe at QoS 1; a broker never sends 2
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
        if flags.session_present and (stale := self.stale_topics()):
            client.unsubscribe(stale)
        with self._mines_lock:
            topics = self.topics()
        if topics:
            client.subscribe([(t, 1) for t in topics])
        if self.state_topic is not None:  # after the subscription, as Sparkplug B 3.0 orders it
            client.publish(self.state_topic, self._state(online=True), qos=1, retain=True)
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
        self._on_publish(msg.topic, msg.mid, msg.qos, bytes(msg.payload))

    def _on_publish(self, topic: str, mid: int, qos: int, payload: bytes) -> None:
        if topic == self.state_topic or (self.sparkplug and _HOST_STATE.search(topic)):
            # A Sparkplug host STATE — our own coming back through `spBv1.0/#` (and its retained
            # copy on every subscribe), or another host's — carries no data: nothing to record or
            # commit, so acknowledged here, not queued. (The amqtt fallback broker also hands
            # subscribers other sessions' STATE messages outside their filters, wills and clean
            # stops' offline STATE alike: tried without this guard, 16 MQTT tests failed there.)
            if qos == 1:
                self.client.ack_many([mid])
            return
        item = Inbound(self.epoch, mid, qos, topic, payload, time.time())
        while True:
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stopping.is_set():
                    return  # not acked: the broker redelivers it to the next session
