"""A real local HTTP receiver for the outbox tests: webhooks (signature checked, idempotency
keys honoured), an SMS gateway, scripted failures on an injected clock, and a hold to catch a
deliverer mid-send."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerting.notifiers.signing import HEADER, verify
from minewatch.clock import Clock

HOOK_SECRET = "hook-secret-for-tests"
SMS_TOKEN = "Bearer sms-token"


@dataclass
class Behaviour:
    """What the receiver does; tests change it while it runs."""

    clock: Clock | None = None
    fail_until: datetime | None = None  # webhooks answer 500 while clock.now() < fail_until
    hold: threading.Event | None = None  # when set to an Event, answers wait until it is set


@dataclass
class Seen:
    """What arrived."""

    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # path, key, body
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> first body processed
    accepted: Counter[str] = field(default_factory=Counter)  # key -> 2xx answers
    sms: list[dict[str, Any]] = field(default_factory=list)  # every SMS segment body processed
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys_of(self, path_prefix: str) -> list[str]:
        with self.lock:
            return [k for p, k, _ in self.requests if p.startswith(path_prefix)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when a deliverer opens dozens at once.
    request_queue_size = 256
    seen: Seen
    behaviour: Behaviour

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed client's closed socket


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen, how = self.server.seen, self.server.behaviour
        key = self.headers.get("Idempotency-Key", "")
        body = json.loads(raw) if raw else {}
        with seen.lock:
            seen.requests.append((self.path, key, body))
        seen.arrived.set()
        scripted = re.fullmatch(r"/status/(\d{3})", self.path)
        if scripted:
            self._reply(int(scripted.group(1)), b"scripted")
            return
        if self.path.startswith("/hook"):
            if not verify(HOOK_SECRET.encode(), raw, self.headers.get(HEADER)):
                self._reply(401, b"bad signature")
                return
            if how.fail_until is not None and how.clock is not None and how.clock.now() < how.fail_until:
                self._reply(500, b"down")
                return
        elif self.path == "/sms":
            if self.headers.get("Authorization") != SMS_TOKEN:
                self._reply(401, b"bad token")
                return
        else:
            self._reply(404, b"no such path")
            return
        with seen.lock:
            # Honouring the key: a repeat is acknowledged, not processed again.
            if key not in seen.delivered:
                seen.delivered[key] = body
                if self.path == "/sms":
                    seen.sms.append(body)
        if how.hold is not None:
            how.hold.wait(timeout=30)
        with seen.lock:
            seen.accepted[key] += 1
        self._reply(200, b"ok")

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Running:
    url: str
    seen: Seen
    behaviour: Behaviour


@contextmanager
def receiver(behaviour: Behaviour | None = None) -> Iterator[Running]:
    """Serve on a free port of 127.0.0.1 in a thread; shut down cleanly at exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = Seen()
    server.behaviour = behaviour or Behaviour()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Running(f"http://{host!s}:{port}", server.seen, server.behaviour)
    finally:
        if server.behaviour.hold is not None:
            server.behaviour.hold.set()
        server.shutdown()
        server.server_close()
        thread.join()
