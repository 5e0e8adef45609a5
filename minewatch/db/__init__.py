"""Database access: the asyncpg pool, identifier quoting and error translation."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

from minewatch.errors import DatabaseError

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ident(name: str) -> str:
    """Quote an identifier we build ourselves (partition names); refuses anything unexpected.

    Identifiers never come from input; this is a second line of defence so a
    bug can't turn into SQL injection.
    """
    if not _IDENT.match(name):
        raise ValueError(f"refusing unexpected SQL identifier {name!r}")
    return '"' + name + '"'


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kw: Any) -> asyncpg.Pool:
    """A pool with sane server settings: UTC session time zone, bounded statement time."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size,
            server_settings={"timezone": "UTC", "application_name": kw.pop("application_name", "minewatch")},
            **kw,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool
