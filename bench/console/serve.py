"""Serve the API and console for the benchmark: `python -m bench.console.serve DSN PORT NOW` with a clock
frozen at NOW (the end of the filled readings, so the mine pages' last half hour holds data)."""

from __future__ import annotations

import sys
from datetime import datetime

import uvicorn

from api.app import create_app
from minewatch.clock import FrozenClock
from minewatch.settings import Settings


def main() -> None:
    dsn, port, now = sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
    app = create_app(Settings(database_url=dsn), clock=FrozenClock(now))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
