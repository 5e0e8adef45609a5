"""What one client may make the API hold: the bearer before the body, body size and time, header time.

In-process tests drive the ASGI app with a `receive` that counts what was read; the socket tests
serve the app with uvicorn and the protocol `minewatch api` uses, and talk raw HTTP to it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn

from api.app import create_app
from api.cli import server_options
from api.limits import HeaderDeadlineH11Protocol
from launcher.embedded import free_port
from minewatch.clock import FrozenClock
from tests.api.conftest import settings_for
from tests.api.live import ApiProcess
from tests.api.scenario import World

pytestmark = [pytest.mark.integration]

LIMIT = 4096
BODY_TIMEOUT_S = 1.0
HEADER_TIMEOUT_S = 1.0


class _Recorder:
    """An ASGI receive that serves `chunks` (then waits, like a silent client) and counts bytes read."""

    def __init__(self, chunks: list[bytes], *, stall: bool = False) -> None:
        self.chunks = chunks
        self.stall = stall
        self.read = 0
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.chunks:
            chunk = self.chunks.pop(0)
            self.read += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks) or self.stall}
        if self.stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}


async def _call(app: Any, method: str, path: str, headers: dict[str, str], receive: _Recorder) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}
    await asyncio.wait_for(app(scope, receive, send), 10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture(scope="module")
def small_limits(db: str) -> Any:
    settings = settings_for(db).model_copy(update={"api_max_body_bytes": LIMIT, "api_body_timeout_s": BODY_TIMEOUT_S})
    return settings


@pytest.mark.asyncio(loop_scope="session")
async def test_no_bearer_is_refused_before_the_body_is_read(small_limits: Any, pool: asyncpg.Pool,
                                                            world: World) -> None:
    app = create_app(small_limits, pool=pool, clock=FrozenClock(world.now))
    async with app.router.lifespan_context(app):
        for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "},
                        {"Authorization": "Bearer " + "x" * 500}, {"Authorization": "Bearer a\x01b"}):
            receive = _Recorder([b"x" * 10_000_000])
            status, body = await _call(app, "POST", "/v1/cases/1/actions",
                                       {"content-type": "application/json", **headers}, receive)
            assert (status, receive.calls) == (401, 0), body
            assert json.loads(body)["type"].endswith("/unauthorized")
        # probes need no token
        status, _ = await _call(app, "GET", "/healthz", {}, _Recorder([]))
        assert status == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_bodies_over_the_limit_are_413_counted_as_they_stream(small_limits: Any, pool: asyncpg.Pool,
                                                                    world: World) -> None:
    app = create_app(small_limits, pool=pool, clock=FrozenClock(world.now))
    bearer = {"Authorization": f"Bearer {world.tokens['mine1']}", "content-type": "application/json"}
    async with app.router.lifespan_context(app):
        # A declared length over the limit: refused without reading a byte.
        receive = _Recorder([b"{}"])
        status, body = await _call(app, "POST", "/v1/cases/1/actions", {**bearer, "content-length": str(10**12)},
                                   receive)
        assert (status, receive.calls) == (413, 0) and json.loads(body)["type"].endswith("/too-large")
        # Chunked (no length), or a length that lies: counted, cut just past the limit.
        for headers in (bearer, {**bearer, "content-length": "10"}):
            receive = _Recorder([b"x" * 1000] * 1000)
            status, body = await _call(app, "POST", "/v1/cases/1/actions", headers, receive)
            assert status == 413, body
            assert receive.read <= LIMIT + 1000
        # Within the limit: an ordinary answer.
        receive = _Recorder([json.dumps({"action": "nonsense"}).encode()])
        status, _ = await _call(app, "POST", "/v1/cases/1/actions", bearer, receive)
        assert status == 422


@pytest.mark.asyncio(loop_scope="session")
async def test_a_body_that_does_not_arrive_in_time_is_408(small_limits: Any, pool: asyncpg.Pool, world: World) -> None:
    app = create_app(small_limits, pool=pool, clock=FrozenClock(world.now))
    bearer = {"Authorization": f"Bearer {world.tokens['mine1']}", "content-type": "application/json"}
    async with app.router.lifespan_context(app):
        started = time.monotonic()
        status, body = await _call(app, "POST", "/v1/cases/1/actions", bearer, _Recorder([b'{"act'], stall=True))
        assert status == 408 and json.loads(body)["type"].endswith("/timeout")
        assert BODY_TIMEOUT_S <= time.monotonic() - started < BODY_TIMEOUT_S + 2


# ---- real sockets -------------------------------------------------------------------------------


class _QuickHeaders(HeaderDeadlineH11Protocol):
    header_timeout_s = HEADER_TIMEOUT_S


def _serve(settings: Any) -> Iterator[int]:
    port = free_port()
    options = {**server_options(settings), "http": _QuickHeaders}
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def served(small_limits: Any, world: World) -> Iterator[int]:
    """The app behind uvicorn with `minewatch api`'s options, a 1 s header deadline and keep-alive."""
    yield from _serve(small_limits.model_copy(update={"api_keep_alive_s": 1.0, "api_limit_concurrency": 1000}))


def _get(port: int, path: str) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_past_limit_concurrency_clients_get_503_until_the_slow_ones_are_cut(small_limits: Any) -> None:
    """Slow connections fill `limit_concurrency`: newcomers get the documented plain 503, not a
    queue, and the header deadline frees the slots, after which the API answers again."""
    for port in _serve(small_limits.model_copy(update={"api_limit_concurrency": 10})):
        assert _get(port, "/healthz") == 200
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.2)
        assert _get(port, "/healthz") == 503
        time.sleep(HEADER_TIMEOUT_S + 0.5)
        assert _get(port, "/healthz") == 200
        for s in slow:
            s.close()


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes `sock` within `seconds` (reading whatever it says meanwhile)."""
    sock.settimeout(0.2)
    got = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def test_slowloris_connections_are_cut_at_the_header_deadline(served: int) -> None:
    """50 connections trickling header bytes forever: every one is closed within the deadline."""
    socks = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", served))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    started = time.monotonic()
    open_ = set(range(50))
    while open_ and time.monotonic() - started < HEADER_TIMEOUT_S + 3:
        for i in list(open_):
            try:
                socks[i].sendall(b"X-Slow: 1\r\n")  # a byte of progress does not move the deadline
            except OSError:
                open_.discard(i)
        time.sleep(0.1)
        for i in list(open_):
            socks[i].setblocking(False)
            try:
                if socks[i].recv(1) == b"":
                    open_.discard(i)
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
    elapsed = time.monotonic() - started
    for s in socks:
        s.close()
    assert not open_, f"{len(open_)} slow connections still open after {elapsed:.1f} s"
    assert elapsed >= HEADER_TIMEOUT_S - 0.2


def test_an_unread_body_trickled_after_the_response_is_cut(served: int) -> None:
    """A GET declaring a huge body is answered without reading it; feeding that body a byte at a
    time must not keep the connection open past the header deadline."""
    s = socket.create_connection(("127.0.0.1", served))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nx")
    started = time.monotonic()
    closed = False
    while time.monotonic() - started < HEADER_TIMEOUT_S + 3:
        try:
            s.sendall(b"x")
        except OSError:
            closed = True
            break
        closed, _ = _closed_within(s, 0.1)
        if closed:
            break
    s.close()
    assert closed, "the connection outlived the header deadline"


def test_a_silent_connection_is_cut_and_normal_requests_still_answer(served: int) -> None:
    silent = socket.create_connection(("127.0.0.1", served))
    closed, _ = _closed_within(silent, HEADER_TIMEOUT_S + 2)
    silent.close()
    assert closed
    # An ordinary client, keep-alive: two requests, then closed when idle past keep-alive.
    s = socket.create_connection(("127.0.0.1", served))
    for _ in range(2):
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        got = b""
        while not got.endswith(b'{"status":"ok"}'):
            chunk = s.recv(65536)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")
    closed, _ = _closed_within(s, 3)
    assert closed
    s.close()


def test_a_slow_body_is_answered_408_within_the_body_timeout(served: int, world: World) -> None:
    s = socket.create_connection(("127.0.0.1", served))
    token = world.tokens["mine1"]
    s.sendall(f"POST /v1/cases/1/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
              "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"act".encode())
    started = time.monotonic()
    _closed, got = _closed_within(s, BODY_TIMEOUT_S + 3)
    s.close()
    assert got.startswith(b"HTTP/1.1 408"), got[:200]
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3


def test_incomplete_headers_past_16_kib_are_refused(served: int) -> None:
    """h11 holds at most 16 KiB of headers that have not yet ended (a client trickling a huge
    header block in pieces); a complete block that arrives in one read is h11's to parse."""
    s = socket.create_connection(("127.0.0.1", served))
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        for _ in range(40):
            s.sendall(b"a" * 1024)
            time.sleep(0.005)
    except OSError:
        pass  # the server may close before all of it is sent
    closed, got = _closed_within(s, 5)
    s.close()
    assert closed and (got == b"" or got.startswith(b"HTTP/1.1 4")), got[:100]


def test_the_real_service_cuts_a_stalled_client_within_its_header_deadline(db: str, world: World,
                                                                          tmp_path: Path) -> None:
    """`minewatch api` itself, default settings: a client that sends half a request line is cut
    within HeaderDeadlineH11Protocol.header_timeout_s (10 s), not kept open."""
    with ApiProcess(db, tmp_path / "api.log") as api:
        s = socket.create_connection(("127.0.0.1", api.port))
        s.sendall(b"GET /v1/mi")
        started = time.monotonic()
        closed, _ = _closed_within(s, HeaderDeadlineH11Protocol.header_timeout_s + 3)
        s.close()
        assert closed and time.monotonic() - started >= HeaderDeadlineH11Protocol.header_timeout_s - 1


def test_the_document_declares_408_and_413_where_bodies_are_read() -> None:
    from minewatch.settings import Settings

    doc = create_app(Settings()).openapi()
    for path in ("/v1/cases/{case_id}/actions", "/v1/mines/{mine}/accidents", "/v1/alerting/sms/replies"):
        responses = doc["paths"][path]["post"]["responses"]
        assert {"408", "413"} <= set(responses), path
        assert "application/problem+json" in responses["413"]["content"]


@pytest.mark.asyncio(loop_scope="session")
async def test_after_the_whole_body_a_receive_waits_for_the_disconnect_unbounded() -> None:
    """Streaming responses listen for the disconnect after the body: that wait is not the body's."""
    from api.limits import RequestLimitsMiddleware

    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(await receive())
        got.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    calls = {"n": 0}

    async def receive() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await asyncio.sleep(BODY_TIMEOUT_S * 1.5)  # longer than the body timeout
        return {"type": "http.disconnect"}

    limited = RequestLimitsMiddleware(app, max_body_bytes=LIMIT, body_timeout_s=BODY_TIMEOUT_S)
    status, _ = await _call(limited, "POST", "/healthz", {}, receive)  # type: ignore[arg-type]
    assert status == 204 and [m["type"] for m in got] == ["http.request", "http.disconnect"]
