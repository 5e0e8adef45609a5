"""Serve the API and console for the benchmark: `python -m bench.console.serve DSN PORT NOW [WORKERS]` with a
clock frozen at NOW (the end of the filled readings, so the mine pages' last half hour holds data).

WORKERS > 1 runs uvicorn worker processes on one socket as `minewatch api --workers N` does (the
deployment runs two: deploy/systemd/minewatch-api.service); each worker has its own page cache.

Every answer carries `Server-Timing: app;dur=MS`: the time from the app receiving the request to the
response's start (the server's part of the latency, queueing on the event loop included; not the
time a request waits in the socket before the loop reads it, nor the body's send)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import MutableMapping
from datetime import datetime
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.cli import serve_workers
from minewatch.clock import FrozenClock
from minewatch.settings import Settings


class ServerTiming:
    """ASGI wrapper adding `Server-Timing: app;dur=MS` (request received -> response started)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - start) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", ()), (b"server-timing", took)]}
            await send(message)

        await self.app(scope, receive, timed)


def app_from_environment() -> ServerTiming:
    """One worker's app (uvicorn's factory): the DSN and the frozen time from the environment."""
    now = datetime.fromisoformat(os.environ["MINEWATCH_BENCH_NOW"])
    return ServerTiming(create_app(Settings(database_url=os.environ["MINEWATCH_BENCH_DSN"]), clock=FrozenClock(now)))


def main() -> None:
    dsn, port, now = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    os.environ["MINEWATCH_BENCH_DSN"], os.environ["MINEWATCH_BENCH_NOW"] = dsn, now
    if workers > 1:
        serve_workers("bench.console.serve:app_from_environment", workers=workers, host="127.0.0.1", port=port,
                      log_level="warning", access_log=False)
    else:
        uvicorn.run(app_from_environment(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
