"""The lean HTTP/1.1 client against real local servers: keep-alive reuse, a server that drops
idle connections, chunked responses."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from alerting.notifiers.h1 import H1Client, H1Error


async def _serve(reply: bytes, *, close_after: bool,
                 tls: ssl.SSLContext | None = None) -> tuple[asyncio.Server, list[int]]:
    """A raw server answering every request with `reply`; `close_after` drops the connection
    after each answer without saying so (as servers do with idle keep-alive connections)."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                await reader.readexactly(length)
                writer.write(reply)
                await writer.drain()
                if close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls), connections


async def test_connections_are_kept_alive_and_reused() -> None:
    server, connections = await _serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_after=False)
    port = server.sockets[0].getsockname()[1]
    async with server, H1Client(max_connections=2) as client:
        for _ in range(5):
            r = await client.post(f"http://127.0.0.1:{port}/x", content=b"{}", headers={}, read_timeout=5,
                                  connect_timeout=5)
            assert (r.status_code, r.content) == (200, b"ok")
    assert len(connections) == 1


async def test_a_dropped_idle_connection_is_replaced_and_chunked_bodies_are_read() -> None:
    reply = b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"
    server, connections = await _serve(reply, close_after=True)
    port = server.sockets[0].getsockname()[1]
    async with server, H1Client(max_connections=1) as client:
        for _ in range(3):
            r = await client.post(f"http://127.0.0.1:{port}/x", content=b"{}", headers={}, read_timeout=5,
                                  connect_timeout=5)
            assert (r.status_code, r.headers["retry-after"], r.content) == (503, "7", b"no")
    assert len(connections) == 3


async def test_https_verifies_the_server_certificate() -> None:
    """Webhooks go to https:// receivers: the client speaks TLS, checks the certificate against
    the CA it trusts and the host name, and refuses a server it cannot verify."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    server, _ = await _serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_after=False, tls=server_ctx)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    async with server:
        async with H1Client(ssl_context=trusting) as client:
            r = await client.post(f"https://localhost:{port}/hook", content=b"{}", headers={}, read_timeout=5,
                                  connect_timeout=5)
            assert (r.status_code, r.content) == (200, b"ok")
        # the machine's CAs do not know this server: no request goes out
        async with H1Client() as client:
            with pytest.raises(H1Error, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(f"https://localhost:{port}/hook", content=b"{}", headers={}, read_timeout=5,
                                  connect_timeout=5)
        # a certificate for another name is refused even from the trusted CA
        async with H1Client(ssl_context=trusting) as client:
            with pytest.raises(H1Error, match=r"CERTIFICATE_VERIFY_FAILED|match"):
                await client.post(f"https://127.0.0.1:{port}/hook", content=b"{}", headers={}, read_timeout=5,
                                  connect_timeout=5)
