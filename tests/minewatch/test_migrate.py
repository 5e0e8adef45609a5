"""Migrations: a version added below the highest applied one is refused, naming both versions."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from minewatch.db import ident
from minewatch.db.migrate import migrate
from minewatch.errors import DatabaseError
from tests.conftest import _drop_db, _with_db

pytestmark = pytest.mark.integration


async def _empty_db(server: str) -> str:
    name = f"mw_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {ident(name)}")
    finally:
        await admin.close()
    return _with_db(server, name)


def test_a_migration_below_the_highest_applied_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE one (x int);", encoding="utf-8")
    (tmp_path / "0003_third.sql").write_text("CREATE TABLE three (x int);", encoding="utf-8")

    async def go() -> None:
        dsn = await _empty_db(pg_dsn)
        try:
            conn = await asyncpg.connect(dsn)
            try:
                assert await migrate(conn, backend="plain", directory=tmp_path) == ["0001_first.sql", "0003_third.sql"]
                # someone fills the numbering gap after 0003 ran here
                (tmp_path / "0002_second.sql").write_text("CREATE TABLE two (x int);", encoding="utf-8")
                (tmp_path / "0004_fourth.sql").write_text("CREATE TABLE four (x int);", encoding="utf-8")
                with pytest.raises(DatabaseError) as err:
                    await migrate(conn, backend="plain", directory=tmp_path)
                text = str(err.value)
                assert "0002_second.sql (version 2)" in text and "highest applied version 3" in text, text
                # nothing ran, not even the migration above the gap
                applied = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
                assert applied == [1, 3]
                assert await conn.fetchval("SELECT to_regclass('two') IS NULL AND to_regclass('four') IS NULL")
                # renumbered above the highest, it applies
                (tmp_path / "0002_second.sql").rename(tmp_path / "0005_second.sql")
                assert await migrate(conn, backend="plain", directory=tmp_path) == ["0004_fourth.sql", "0005_second.sql"]
            finally:
                await conn.close()
        finally:
            await _drop_db(pg_dsn, dsn)
    asyncio.run(go())


def test_a_fresh_database_applies_every_version_in_order(pg_dsn: str, tmp_path: Path) -> None:
    for v in (1, 2, 5):
        (tmp_path / f"000{v}_m.sql").write_text(f"CREATE TABLE t{v} (x int);", encoding="utf-8")

    async def go() -> None:
        dsn = await _empty_db(pg_dsn)
        try:
            conn = await asyncpg.connect(dsn)
            try:
                assert await migrate(conn, backend="plain", directory=tmp_path) == ["0001_m.sql", "0002_m.sql", "0005_m.sql"]
            finally:
                await conn.close()
        finally:
            await _drop_db(pg_dsn, dsn)
    asyncio.run(go())
