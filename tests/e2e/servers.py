"""Real HTTP servers for the end-to-end tests: a webhook receiver that checks signatures and
honours Idempotency-Key, a fake SMS gateway, and the Minewatch API served by uvicorn."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import uvicorn
from fastapi import FastAPI

from alerting.notifiers.signing import HEADER, verify

HOOK_SECRET = "e2e-hook-secret"
SMS_AUTH = "Bearer e2e-sms-token"


@dataclass
class Inbox:
    """What a server accepted, in arrival order; repeats of an Idempotency-Key are acknowledged
    and not recorded again (the contract's receiver side)."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (path, body)
    keys: set[str] = field(default_factory=set)
    arrivals: list[str] = field(default_factory=list)  # every accepted request's key, repeats too
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return list(self.items)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    inbox: Inbox
    kind: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        inbox = self.server.inbox
        if self.server.kind == "webhook":
            ok = verify(HOOK_SECRET.encode(), raw, self.headers.get(HEADER))
        else:
            ok = self.headers.get("Authorization") == SMS_AUTH
        if not ok:
            with inbox.lock:
                inbox.rejected += 1
            self._reply(401)
            return
        key = self.headers.get("Idempotency-Key", "")
        with inbox.lock:
            inbox.arrivals.append(key)
            if key not in inbox.keys:
                inbox.keys.add(key)
                inbox.items.append((self.path, json.loads(raw)))
        self._reply(200)

    def _reply(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def http_inbox(kind: str) -> Iterator[tuple[str, Inbox]]:
    """A `webhook` receiver or an `sms` gateway on a free port of 127.0.0.1: (base URL, inbox)."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.inbox, server.kind = Inbox(), kind
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}", server.inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve_api(app: FastAPI) -> Iterator[str]:
    """The app under uvicorn in a thread (its own event loop, its own pool): the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
