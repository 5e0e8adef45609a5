"""Bounds on what one client may make the API hold: body size, body time, header time, bearer shape.

Three layers, outermost first:

- `HeaderDeadlineH11Protocol` (the uvicorn protocol `minewatch api` serves with): a connection
  must complete a request's headers within `header_timeout_s` of opening or of its previous
  response, however slowly it trickles bytes. uvicorn has no such timer of its own (its
  keep-alive timer is reset by every byte received), so without it 50 slowloris connections
  were all kept open. h11's `max_incomplete_event_size` bounds the header bytes held meanwhile.
- `RequestLimitsMiddleware` (pure ASGI, in every app `create_app` builds): a request to `/v1/`
  without a bearer that could be a token is answered 401 before its body is read (FastAPI
  reads and parses the body before any dependency runs, so the token check in api/deps.py
  would come too late); a body is counted as it streams and answered 413 past
  `max_body_bytes` (Content-Length is checked first but not trusted: chunked bodies have
  none); and the whole body must arrive within `body_timeout_s` (408).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.problems import PROBLEM_MEDIA_TYPE, problem
from minewatch.text import log_safe

log = logging.getLogger(__name__)

# Routes under this prefix all want `Authorization: Bearer ...` (API tokens, and the SMS reply
# webhook's shared secret); probes, metrics and the documents do not.
_AUTH_PREFIX = "/v1/"
_BEARER_MAX = 200  # api/deps.py refuses longer tokens too


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the limit; FastAPI re-raises HTTPExceptions."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyTimeout(HTTPException):
    """Raised from `receive` when the body does not arrive in time."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body not received within {seconds:g} s")


def _bearer_looks_valid(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            return (scheme.lower() == b"bearer" and 0 < len(token) <= _BEARER_MAX
                    and all(0x21 <= c < 0x7F for c in token))
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses a malformed Content-Length before the app sees it
    return None


class RequestLimitsMiddleware:
    """Pure ASGI middleware: bearer shape before the body, body size and body time (see module)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path.startswith(_AUTH_PREFIX) and not _bearer_looks_valid(scope):
            await self._reply(scope, send, 401, "a bearer token is required", slug="unauthorized",
                              headers={"WWW-Authenticate": 'Bearer realm="minewatch"'})
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reply(scope, send, 413, f"request body larger than {self.max_body_bytes} bytes")
            return

        received = 0
        deadline: float | None = None
        started = False

        async def limited_receive() -> Message:
            nonlocal received, deadline
            if deadline is None:
                deadline = time.monotonic() + self.body_timeout_s
            elif deadline == float("inf"):
                return await receive()  # the body is whole: a later receive waits for the disconnect
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                log.warning("%s %s: body not received within %ss", log_safe(str(scope.get("method")), 20),
                            log_safe(path), self.body_timeout_s)
                raise BodyTimeout(self.body_timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
                if not message.get("more_body", False):
                    deadline = float("inf")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyTimeout) as exc:
            # Raised where no exception handler caught it (outside a route): answer here.
            if not started:
                await self._reply(scope, send, exc.status_code, str(exc.detail))

    @staticmethod
    async def _reply(scope: Scope, send: Send, status: int, detail: str, *, slug: str | None = None,
                     headers: dict[str, str] | None = None) -> None:
        response = problem(status, detail, slug=slug, instance=log_safe(str(scope.get("path", "")), 200),
                           headers={**(headers or {}), "Connection": "close"})
        assert response.media_type == PROBLEM_MEDIA_TYPE

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's headers (see the module docstring).

    The deadline is armed when the connection opens and after each response, and disarmed when
    h11 has parsed the headers of a new request (uvicorn starts a new request cycle). Bytes that
    trickle in do not move it: neither headers nor the rest of a body the app never read (a GET
    declaring a huge Content-Length, answered, then fed a byte at a time, would otherwise keep
    the connection forever: uvicorn drops those bytes and its keep-alive timer restarts on each).
    uvicorn's own keep-alive timer still closes idle connections sooner.
    """

    # A class attribute, not a setting: uvicorn takes the class, and `--workers N` pickles it by
    # name into each worker. 10 s is far beyond any real client's header time on a LAN or WAN,
    # and with limit_concurrency bounds what slow clients can hold (docs/operations.md).
    header_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._cycle_at_arm: object = None

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._cycle_at_arm = self.cycle
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing() and self.cycle is self._cycle_at_arm:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            self.logger.warning("%s: no complete request headers within %ss; closing", client,
                                self.header_timeout_s)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_deadline is not None and self.cycle is not self._cycle_at_arm:
            self._disarm_header_deadline()  # a new request's headers are in: the app has it now

    def on_response_complete(self) -> None:
        before = self.cycle
        super().on_response_complete()
        # Unless a pipelined request already started (a new cycle), the next headers are due.
        if not self.transport.is_closing() and self.cycle is before:
            self._arm_header_deadline()
