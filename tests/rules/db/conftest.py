"""Databases for the rules DB tests: the test registry migrated once per session, copied per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest

from minewatch.db.scratch import copy_db
from tests.conftest import _drop_db
from tests.rules.db.helpers import DATA, new_db


@pytest.fixture(scope="session")
def rules_template(pg_dsn: str) -> Iterator[str]:
    """A migrated database with the test registry (3 mines x 6 points), never written to."""
    dsn = asyncio.run(new_db(pg_dsn))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def make_db(pg_dsn: str, rules_template: str) -> Iterator[Callable[[], Awaitable[str]]]:
    """Create fresh copies of the template (same point ids), all dropped after the test."""
    made: list[str] = []

    async def create() -> str:
        made.append(await copy_db(pg_dsn, rules_template, f"mw_rules_{uuid.uuid4().hex[:12]}"))
        return made[-1]

    yield create
    for dsn in made:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def integrity_db(pg_dsn: str) -> Iterator[Callable[[], Awaitable[str]]]:
    """Fresh databases with the integrity tests' registry (data/registry_integrity.yaml), dropped after."""
    made: list[str] = []

    async def create() -> str:
        made.append(await new_db(pg_dsn, DATA / "registry_integrity.yaml"))
        return made[-1]

    yield create
    for dsn in made:
        asyncio.run(_drop_db(pg_dsn, dsn))
