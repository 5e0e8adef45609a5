"""Serve the API for the benchmark: `python -m bench.api.serve DSN PORT [WORKERS]` (pepper from MINEWATCH_TOKEN_PEPPER)."""

from __future__ import annotations

import os
import sys

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.cli import serve_workers
from minewatch.settings import Settings


def app() -> FastAPI:
    """Factory for uvicorn's worker processes: each builds its settings once, from the environment."""
    return create_app(Settings(database_url=os.environ["MINEWATCH_BENCH_DSN"]))


def main() -> None:
    dsn, port = sys.argv[1], int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.environ["MINEWATCH_BENCH_DSN"] = dsn
    if workers > 1:
        serve_workers("bench.api.serve:app", workers=workers, host="127.0.0.1", port=port, log_level="warning",
                      access_log=False)
    else:
        uvicorn.run("bench.api.serve:app", factory=True, host="127.0.0.1", port=port, log_level="warning",
                    access_log=False)


if __name__ == "__main__":
    main()
