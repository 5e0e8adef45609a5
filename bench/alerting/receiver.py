"""A fast webhook receiver for the alerting benchmark: asyncio, HTTP/1.1 keep-alive, signature
checked, idempotency keys counted, first arrival time recorded.

Run: ``python -m bench.alerting.receiver --port P --secret S`` (prints ``READY <port>``).
``GET /stats`` answers ``{"requests", "unique", "bad", "first_at", "last_at"}`` (wall-clock
seconds); ``GET /reset`` clears them. Any POST is a webhook. POSTs to ``/probe`` and ``/probe/<name>``
are also parsed: the first arrival time of every finding subject in ``case.findings`` is kept,
``GET /subjects`` answers ``{subject: first arrival}`` over all of them and ``GET
/subjects/<name>`` the same for POSTs to ``/probe/<name>`` alone (one receiver of several:
the end-to-end latency benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from alerting.notifiers.signing import verify


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.bad = 0
        self.keys: set[str] = set()
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.subjects: dict[str, float] = {}
        self.by_path: dict[str, dict[str, float]] = {}

    def as_json(self) -> bytes:
        return json.dumps({"requests": self.requests, "unique": len(self.keys), "bad": self.bad,
                           "first_at": self.first_at, "last_at": self.last_at}).encode()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stats: Stats, secret: bytes) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if method == "GET":
                if path == "/reset":
                    stats.reset()
                if path == "/subjects":
                    out = json.dumps(stats.subjects).encode()
                elif path.startswith("/subjects/"):
                    out = json.dumps(stats.by_path.get("/probe/" + path.removeprefix("/subjects/"), {})).encode()
                else:
                    out = stats.as_json()
            else:
                now = time.time()
                stats.requests += 1
                stats.first_at = stats.first_at or now
                stats.last_at = now
                if verify(secret, body, headers.get("x-signature-256")):
                    stats.keys.add(headers.get("idempotency-key", ""))
                    if path == "/probe" or path.startswith("/probe/"):
                        seen = stats.by_path.setdefault(path, {})
                        for f in json.loads(body)["case"]["findings"]:
                            stats.subjects.setdefault(f["subject"], now)
                            seen.setdefault(f["subject"], now)
                else:
                    stats.bad += 1
                out = b"ok"
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(out), out))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int, secret: bytes) -> None:
    stats = Stats()
    server = await asyncio.start_server(lambda r, w: handle(r, w, stats, secret), "127.0.0.1", port, backlog=1024)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--secret", default="bench-secret")
    args = p.parse_args()
    asyncio.run(serve(args.port, args.secret.encode()))


if __name__ == "__main__":
    main()
