"""Publishers: MQTT QoS 1 with a bounded number of unacknowledged messages, and JSON-lines files.

paho keeps every unacknowledged QoS 1 message and numbers them with 16-bit
message ids: past 65 535 in flight a new message's id collides with a pending
one and paho refuses it (contract, "MQTT in"). The MQTT sink therefore blocks
before publishing while `max_inflight` messages await their PUBACK, and
counts down in `on_publish`, so neither ids nor memory can run away.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from simulators.errors import SimulatorError

_OK_RC = (
    MQTTErrorCode.MQTT_ERR_SUCCESS,
    MQTTErrorCode.MQTT_ERR_NO_CONN,
)  # NO_CONN: queued for reconnect


@dataclass(frozen=True)
class BrokerUrl:
    """Where the broker is: `mqtt://[user[:password]@]host[:port]` or `mqtts://...`."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @staticmethod
    def parse(url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise SimulatorError(f"{url!r}: expected mqtt://host:port (or mqtts://)")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise SimulatorError(f"{url!r}: bad port") from exc
        user = unquote(parts.username) if parts.username else None
        pw = unquote(parts.password) if parts.password else None
        return BrokerUrl(parts.hostname, port, tls, user, pw)


class MqttSink:
    """Publishes at QoS 1; at most `max_inflight` unacknowledged; `close` waits for every PUBACK.

    `threaded=True` runs paho's network loop in its own thread (keep-alive and
    reconnects while the caller sleeps: live mode). `threaded=False` pumps the
    loop from `send` itself, which spares a thread switch per message and is
    ~3× faster for small messages (history mode).
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        max_inflight: int = 1000,
        threaded: bool = True,
        connect_timeout_s: float = 10.0,
        ack_timeout_s: float = 120.0,
    ) -> None:
        if not 1 <= max_inflight <= 65_000:
            raise SimulatorError(f"max_inflight={max_inflight}: allowed 1 to 65000 (paho ids are 16-bit)")
        self.url = BrokerUrl.parse(url)
        self.max_inflight = max_inflight
        self.threaded = threaded
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.published = 0
        self.acked = 0
        self.refused = 0  # PUBACK with a failure reason code (MQTT 5)
        self.max_seen_inflight = 0
        self._inflight = 0
        self._since_pump = 0
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._connect_error: str | None = None
        client_id = client_id or f"minewatch-sim-{uuid.uuid4().hex[:12]}"
        c = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        # paho's own window equals ours, so it never queues behind the socket
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        if self.url.username is not None:
            c.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            c.tls_set()
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self._client = c
        self._started = False

    # paho callbacks (network thread, or inside `_pump`) ---------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
        else:
            self._connected.set()
        with self._cond:
            self._cond.notify_all()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._cond:
            self._inflight -= 1
            self.acked += 1
            if reason is not None and reason.is_failure:
                self.refused += 1
            self._cond.notify_all()

    # caller side --------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect (and start the network thread); SimulatorError if the broker does not answer."""
        where = f"MQTT broker {self.url.host}:{self.url.port}"
        try:
            if self.threaded:
                self._client.connect_async(self.url.host, self.url.port, keepalive=30)
                self._client.loop_start()
            else:
                self._client.connect(self.url.host, self.url.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise SimulatorError(f"{where}: cannot connect: {exc}") from exc
        self._started = True
        if self.threaded:
            self._connected.wait(self.connect_timeout_s)
        else:
            deadline = time.monotonic() + self.connect_timeout_s
            while not self._connected.is_set() and not self._connect_error:
                if time.monotonic() > deadline:
                    break
                self._pump(0.05)
        if not self._connected.is_set() or self._connect_error:
            self._stop()
            why = self._connect_error or f"no answer within {self.connect_timeout_s:g} s"
            raise SimulatorError(f"{where}: {why}")

    def send(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1, first waiting while `max_inflight` messages are unacknowledged."""
        if not self._started:
            self.connect()
        self._wait(lambda: self._inflight < self.max_inflight)
        with self._cond:
            self._inflight += 1
            self.max_seen_inflight = max(self.max_seen_inflight, self._inflight)
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in _OK_RC:
            with self._cond:
                self._inflight -= 1
            raise SimulatorError(f"publish to {topic} refused by paho: {mqtt.error_string(info.rc)}")
        self.published += 1
        if not self.threaded:
            self._since_pump += 1
            if self._since_pump >= 64:  # read the PUBACKs that have come in meanwhile
                self._pump(0.0)

    def close(self) -> None:
        """Wait until every message is acknowledged (PUBACK), then disconnect."""
        if not self._started:
            return
        try:
            self._wait(lambda: self._inflight == 0)
        finally:
            self._stop()
        if self.refused:
            raise SimulatorError(f"the broker refused {self.refused} of {self.published} messages")

    @property
    def inflight(self) -> int:
        return self._inflight

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Block until `ready()`; SimulatorError if no PUBACK came for ack_timeout_s."""
        if self.threaded:
            with self._cond:
                if not self._cond.wait_for(ready, self.ack_timeout_s):
                    raise SimulatorError(self._stalled())
            return
        last_acked, last_progress = self.acked, time.monotonic()
        while not ready():
            self._pump(0.05)
            if self.acked != last_acked:
                last_acked, last_progress = self.acked, time.monotonic()
            elif time.monotonic() - last_progress > self.ack_timeout_s:
                raise SimulatorError(self._stalled())

    def _pump(self, timeout: float) -> None:
        """One turn of paho's loop in this thread; reconnects (paho resends unacked) if needed."""
        self._since_pump = 0
        rc = self._client.loop(timeout)
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return
        deadline, delay = time.monotonic() + self.ack_timeout_s, 0.5
        while time.monotonic() < deadline:
            time.sleep(delay)
            try:
                if self._client.reconnect() == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return
            except OSError:
                pass
            delay = min(delay * 2, 10.0)
        raise SimulatorError(f"lost the MQTT broker {self.url.host}:{self.url.port}")

    def _stalled(self) -> str:
        return (
            f"no PUBACK for {self.ack_timeout_s:g} s: {self._inflight} unacknowledged, {self.acked}/{self.published} acknowledged"
        )

    def _stop(self) -> None:
        self._client.disconnect()
        if self.threaded:
            self._client.loop_stop()
        self._started = False


class _Line(msgspec.Struct):
    topic: str
    payload: msgspec.Raw


class JsonlSink:
    """Writes `{"topic": ..., "payload": <the JSON payload>}` lines to part-NNNNN.jsonl files."""

    def __init__(self, directory: Path, lines_per_file: int = 100_000) -> None:
        self.directory = directory
        self.lines_per_file = lines_per_file
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SimulatorError(f"{directory}: cannot create: {exc.strerror}") from exc
        self._enc = msgspec.json.Encoder()
        self._file: BinaryIO | None = None
        self._lines = 0
        self._part = 0
        self.files: list[Path] = []

    def send(self, topic: str, payload: bytes) -> None:
        if self._file is None or self._lines >= self.lines_per_file:
            self._rotate()
        assert self._file is not None
        self._file.write(self._enc.encode(_Line(topic, msgspec.Raw(payload))) + b"\n")
        self._lines += 1

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.directory / f"part-{self._part:05d}.jsonl"
        self._part += 1
        self._lines = 0
        try:
            self._file = path.open("wb")
        except OSError as exc:
            raise SimulatorError(f"{path}: cannot write: {exc.strerror}") from exc
        self.files.append(path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_jsonl(directory: Path) -> Iterator[tuple[str, bytes]]:
    """(topic, payload) of every message a JsonlSink wrote, in order; payload bytes as published."""
    dec = msgspec.json.Decoder(_Line)
    for path in sorted(directory.glob("part-*.jsonl")):
        with path.open("rb") as f:
            for line in f:
                if line.strip():
                    rec = dec.decode(line)
                    yield rec.topic, bytes(rec.payload)
