"""The console benchmark's load generator: keep-alive HTTP/1.1 GETs over asyncio streams, and CPU accounting.

On a 2-core machine the load generator shares the cores with the server and PostgreSQL, so every
millisecond of client CPU is one the server does not get. httpx spent about 1 ms of CPU per request
(connection pool, h11, cookie jar, URL parsing): at 200 req/s a fifth of a core taken from the server
it measures. This client writes a fixed request line and reads the status line, the headers and a
`Content-Length` (or chunked) body, nothing more (about a tenth of that), so the figures describe the
server more than the client. It reads the whole body: the server's send is part of what is measured.

`cpu_seconds` reads user + system CPU of processes from /proc (Linux) and `busy_seconds` the whole
machine's, so a run can say where the cores went (server, its PostgreSQL backends, client, and
everything else on the machine) beside the latencies."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


class LoadError(Exception):
    """The server answered something this client does not read (or closed the connection)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    server_ms: float  # from `Server-Timing: app;dur=MS` (bench/console/serve.py); NaN without it
    size: int  # body bytes


class Connection:
    """One keep-alive connection sending GETs with a fixed cookie."""

    def __init__(self, host: str, port: int, cookie: str | None) -> None:
        self.host, self.port = host, port
        self._head = f"Host: {host}:{port}\r\n" + (f"Cookie: mw_session={cookie}\r\n" if cookie else "") + "\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> Answer:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        writer.write(f"GET {path} HTTP/1.1\r\n{self._head}".encode())
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise LoadError(f"connection closed before an answer to {path}") from exc
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, server_ms, close = -1, False, float("nan"), False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "server-timing" and "dur=" in value:
                server_ms = float(value.split("dur=", 1)[1].split(";", 1)[0].split(",", 1)[0])
            elif name == "connection":
                close = "close" in value.lower()
        if chunked:
            size = 0
            while True:
                n = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                await reader.readexactly(n + 2)
                size += n
                if n == 0:
                    break
        elif length >= 0:
            size = len(await reader.readexactly(length))
        else:
            raise LoadError(f"an answer to {path} without Content-Length or chunked body")
        if close:
            await self.close()
        return Answer(status, server_ms, size)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (uvicorn's worker processes; PostgreSQL's backends under the postmaster)."""
    children = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far (those that ended are left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two `cpu_seconds` readings by the processes alive at the second (one that
    started meanwhile counts whole; one that ended meanwhile is not counted: a pool's closed connection)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy so far, all cores (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # user..steal; less idle, iowait
