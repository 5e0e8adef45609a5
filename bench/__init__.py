"""Benchmarks: run on demand (`python -m bench.<area>...`), never in the test suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from launcher.embedded import EmbeddedBroker, EmbeddedPostgres


def scratch(prefix: str) -> Path:
    """A private scratch directory for one benchmark process (embedded servers, payloads, logs),
    removed when the process exits, so repeated runs do not fill the disk (a run's broker
    persistence and PostgreSQL are 1-4 GB). MINEWATCH_BENCH_KEEP=1 keeps it for a post-mortem."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(work, 0o711)  # the embedded servers may run as another user
    if os.environ.get("MINEWATCH_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    else:
        print(f"scratch directory kept: {work}")
    return work


@asynccontextmanager
async def bench_servers(work: Path, *, commit_timestamps: bool = False) -> AsyncIterator[tuple[str, str]]:
    """(database URL, broker URL): DATABASE_URL / MQTT_URL when set, else private embedded
    servers under `work`, stopped on exit. `commit_timestamps` turns on PostgreSQL's
    track_commit_timestamp (latency benchmarks measure from a row's commit)."""
    pg = broker = None
    server, url = os.environ.get("DATABASE_URL"), os.environ.get("MQTT_URL")
    try:
        if not server:
            pg = EmbeddedPostgres(work / "pg")
            server = pg.start()
            if commit_timestamps:
                admin = await asyncpg.connect(server)
                await admin.execute("ALTER SYSTEM SET track_commit_timestamp = on")
                await admin.close()
                pg.restart()
        if not url:
            broker = EmbeddedBroker(work / "mqtt")
            url = broker.start()
        yield server, url
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop("immediate")


async def bench_db(server_dsn: str, *, registry: bool) -> str:
    """A fresh migrated database, with the sample registry when asked: the tests' own set-up
    (minewatch.db.scratch), so a benchmark measures what the suite checks."""
    from datetime import UTC, datetime

    from minewatch.db.scratch import create_db
    from minewatch.settings import packaged

    return await create_db(server_dsn, registry=packaged("sample_registry.yaml") if registry else None,
                           now=datetime.now(UTC), prefix="mw_bench")
