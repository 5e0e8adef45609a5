"""A small HTTP/1.1 client for the notifiers: keep-alive connections per origin, h11 for the protocol.

Why not httpx here: delivery is one short POST per notification, and on the 2-core machine
httpx + httpcore + anyio spend 2–4 ms of CPU per request (pool bookkeeping, per-request
lock and task-local lookups); this client spends a tenth of that with the same protocol
engine (h11, which httpcore itself uses), so the outbox's delivery rate is no longer bounded
by the client (bench/alerting). It does only what the notifiers need: POST, a body in memory,
no redirects (a webhook that redirects is misconfigured), no proxies, TLS by the default
context. Errors are its own (`H1Error` and subclasses) so `alerting.notifiers.http_post`
can classify them exactly like httpx's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

_READ = 65_536


class H1Error(Exception):
    """A request that got no complete response (the transport's fault, retryable)."""


class H1Timeout(H1Error):
    """Connecting or the whole exchange took longer than allowed."""


class H1InvalidURL(H1Error):
    """The URL cannot be sent to (not http(s), no host): permanent."""


@dataclass(frozen=True, slots=True)
class H1Response:
    """A complete response: status, headers (lower-case names), body."""

    status_code: int
    headers: dict[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof() and self.h11.our_state is h11.IDLE

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class H1Client:
    """POSTs over pooled keep-alive connections; at most `max_connections` requests in flight."""

    def __init__(self, *, max_connections: int = 8, ssl_context: ssl.SSLContext | None = None) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Origin, deque[_Conn]] = {}
        self._ssl = ssl_context

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str], read_timeout: float,
                   connect_timeout: float) -> H1Response:
        """POST `content` and return the complete response; raises `H1Error` (or a subclass)."""
        origin, target = _parse(url)
        async with self._slots:
            conn = self._pop(origin)
            reused = conn is not None
            try:
                async with asyncio.timeout(read_timeout):
                    if conn is None:
                        conn = await self._connect(origin, connect_timeout)
                    try:
                        response = await _exchange(conn, origin, target, content, headers)
                    except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError, _Closed):
                        if not reused:
                            raise
                        # A kept-alive connection the server closed meanwhile: once more on a new
                        # one (the Idempotency-Key makes a repeat harmless anyway).
                        conn.close()
                        conn = await self._connect(origin, connect_timeout)
                        response = await _exchange(conn, origin, target, content, headers)
            except TimeoutError as exc:
                if conn is not None:
                    conn.close()
                raise H1Timeout(f"no complete response within {read_timeout} s") from exc
            except (OSError, h11.ProtocolError, asyncio.IncompleteReadError, _Closed) as exc:
                if conn is not None:
                    conn.close()
                raise H1Error(f"{type(exc).__name__}: {exc}") from exc
            if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
                conn.h11.start_next_cycle()
                self._idle.setdefault(origin, deque()).append(conn)
            else:
                conn.close()
            return response

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            while conns:
                conns.popleft().close()

    async def __aenter__(self) -> H1Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _pop(self, origin: _Origin) -> _Conn | None:
        conns = self._idle.get(origin)
        while conns:
            conn = conns.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    async def _connect(self, origin: _Origin, connect_timeout: float) -> _Conn:
        tls: ssl.SSLContext | None = None
        if origin.scheme == "https":
            tls = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(
                    origin.host, origin.port, ssl=tls, server_hostname=origin.host if tls else None, limit=_READ)
        except TimeoutError as exc:
            raise H1Timeout(f"connecting to {origin.host}:{origin.port} took over {connect_timeout} s") from exc
        return _Conn(reader, writer)


class _Closed(Exception):
    """The server closed the connection before a complete response."""


def _parse(url: str) -> tuple[_Origin, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise H1InvalidURL(f"invalid URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise H1InvalidURL(f"cannot send to {url!r}: only http:// and https:// URLs with a host")
    default = 443 if parts.scheme == "https" else 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin(parts.scheme, parts.hostname, port or default), target


async def _exchange(conn: _Conn, origin: _Origin, target: str, content: bytes,
                    headers: Mapping[str, str]) -> H1Response:
    default_port = 443 if origin.scheme == "https" else 80
    host = origin.host if origin.port == default_port else f"{origin.host}:{origin.port}"
    fields = [("Host", host), ("Content-Length", str(len(content))), *headers.items()]
    c = conn.h11
    conn.writer.write(c.send(h11.Request(method="POST", target=target, headers=fields))
                      + c.send(h11.Data(data=content)) + c.send(h11.EndOfMessage()))
    await conn.writer.drain()
    status, response_headers, body = 0, {}, bytearray()
    while True:
        event = c.next_event()
        if event is h11.NEED_DATA:
            data = await conn.reader.read(_READ)
            if not data and c.their_state is h11.SEND_RESPONSE:
                raise _Closed("connection closed before the response")
            c.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
            response_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return H1Response(status, response_headers, bytes(body))
        elif isinstance(event, h11.ConnectionClosed):
            raise _Closed("connection closed mid-response")
