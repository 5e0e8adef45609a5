"""Real HTTP servers on 127.0.0.1 (port 0) for notifier tests: a webhook receiver that checks
signatures and honours idempotency keys, a fake SMS gateway, and scripted failures."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alerting.notifiers.signing import HEADER, verify

HOOK_SECRET = b"s3cret-for-tests"
SMS_TOKEN = "Bearer sms-token"


@dataclass
class Seen:
    """What the servers received."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    delivered: dict[str, Any] = field(default_factory=dict)  # idempotency key -> payload
    sms: list[dict[str, Any]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: Seen
    release: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The client gave up on /slow and closed the socket: expected, not worth a traceback.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = self.server.seen
        url = urlsplit(self.path)
        seen.requests.append((url.path, dict(self.headers.items()), body))
        status = re.fullmatch(r"/status/(\d{3})", url.path)
        if url.path == "/hook":
            self._hook(body)
        elif url.path == "/sms":
            if self.headers.get("Authorization") != SMS_TOKEN:
                self._reply(401, b"bad token")
                return
            seen.sms.append(json.loads(body))
            self._reply(200, b'{"code":"OK"}')
        elif url.path == "/slow":
            self.server.release.wait(timeout=5)
            self._reply(200, b"late")
        elif status:
            query = parse_qs(url.query)
            headers = {"Retry-After": query["retry_after"][0]} if "retry_after" in query else {}
            if int(status.group(1)) in (301, 302, 307):
                headers["Location"] = "/hook"
            self._reply(int(status.group(1)), b"scripted", headers)
        else:
            self._reply(404, b"no such path")

    def _hook(self, body: bytes) -> None:
        if not verify(HOOK_SECRET, body, self.headers.get(HEADER)):
            self._reply(401, b"bad signature")
            return
        key = self.headers.get("Idempotency-Key", "")
        # A receiver honouring the key: a repeat is acknowledged, not processed again.
        self.server.seen.delivered.setdefault(key, json.loads(body))
        self._reply(200, b"ok")

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Running:
    base_url: str
    seen: Seen


@contextmanager
def local_server() -> Iterator[Running]:
    """Serve on a free port in a thread; shut down and close cleanly at exit."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = Seen()
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Running(f"http://{host!s}:{port}", server.seen)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
