"""Serve the API and console for the benchmark: `python -m bench.console.serve DSN PORT NOW [WORKERS]` with a
clock frozen at NOW (the end of the filled readings, so the mine pages' last half hour holds data).

WORKERS > 1 runs uvicorn worker processes on one socket as `minewatch api --workers N` does (the
deployment runs two: deploy/systemd/minewatch-api.service); each worker has its own page cache."""

from __future__ import annotations

import os
import sys
from datetime import datetime

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.cli import serve_workers
from minewatch.clock import FrozenClock
from minewatch.settings import Settings


def app_from_environment() -> FastAPI:
    """One worker's app (uvicorn's factory): the DSN and the frozen time from the environment."""
    now = datetime.fromisoformat(os.environ["MINEWATCH_BENCH_NOW"])
    return create_app(Settings(database_url=os.environ["MINEWATCH_BENCH_DSN"]), clock=FrozenClock(now))


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
