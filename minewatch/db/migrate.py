"""Versioned migrations, applied once each, in order, under an advisory lock.

A migration numbered below the highest one already applied is refused rather than run: on an
old database it would run last, on a new one in order, and the two schemas could differ.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from minewatch.db import timeseries
from minewatch.errors import DatabaseError

log = logging.getLogger(__name__)

# Any constant will do; it only has to be the same for every Minewatch process.
_LOCK_KEY = 0x6D696E65  # "mine"


@dataclass(frozen=True)
class Migration:
    """One migration file: `NNNN_name.sql` or `NNNN_name.py` with `async def up(conn, ctx)`."""

    version: int
    name: str
    path: Path
    checksum: str


@dataclass(frozen=True)
class MigrationContext:
    """What Python migrations may use: the time-series backend chosen for this database."""

    backend: timeseries.Backend


def discover(directory: Path | None = None) -> list[Migration]:
    """The migrations shipped with the package, sorted by version; duplicate versions are an error."""
    root = directory or Path(str(resources.files("minewatch") / "migrations"))
    found: dict[int, Migration] = {}
    for path in sorted(root.iterdir()):
        if path.suffix not in (".sql", ".py") or path.name.startswith("_"):
            continue
        head, _, rest = path.stem.partition("_")
        if not head.isdigit():
            continue
        version = int(head)
        if version in found:
            raise DatabaseError(f"two migrations with version {version}: {found[version].path.name}, {path.name}")
        found[version] = Migration(version, rest, path, hashlib.sha256(path.read_bytes()).hexdigest())
    return [found[v] for v in sorted(found)]


async def _run_python(conn: asyncpg.Connection, m: Migration, ctx: MigrationContext) -> None:
    spec = importlib.util.spec_from_file_location(f"minewatch_migration_{m.version}", m.path)
    if spec is None or spec.loader is None:
        raise DatabaseError(f"cannot load migration {m.path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.up(conn, ctx)


def _refuse_gaps(found: list[Migration], done: dict[int, str]) -> None:
    """Raise if a pending migration's version is below the highest applied one (a migration
    added into a numbering gap after later ones ran): it must get a new, higher number."""
    if not done:
        return
    highest = max(done)
    late = [m for m in found if m.version not in done and m.version < highest]
    if late:
        names = ", ".join(f"{m.path.name} (version {m.version})" for m in late)
        raise DatabaseError(
            f"migration {names} is lower than the highest applied version {highest}; "
            "a migration added below an applied one would run out of order on this database: "
            f"renumber it above {highest}")


async def migrate(conn: asyncpg.Connection, *, backend: str = "auto", directory: Path | None = None) -> list[str]:
    """Apply every pending migration; returns the names applied. Safe to call from several processes."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
            "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        await conn.execute("CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL)")
        done = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}
        chosen = await conn.fetchval("SELECT value FROM meta WHERE key = 'timeseries_backend'")
        found = discover(directory)
        _refuse_gaps(found, done)
        ctx = MigrationContext(backend=chosen or await timeseries.detect(conn, backend))
        for m in found:
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise DatabaseError(
                        f"migration {m.path.name} was changed after it was applied; "
                        "write a new migration instead of editing an applied one")
                continue
            async with conn.transaction():
                if m.path.suffix == ".sql":
                    await conn.execute(m.path.read_text(encoding="utf-8"))
                else:
                    await _run_python(conn, m, ctx)
                await conn.execute(
                    "INSERT INTO schema_migrations(version, name, checksum) VALUES ($1, $2, $3)",
                    m.version, m.name, m.checksum)
            log.info("applied migration %s", m.path.name)
            applied_now.append(m.path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
