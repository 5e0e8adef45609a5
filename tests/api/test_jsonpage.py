"""Pages rendered by PostgreSQL: api_time() writes times exactly as pydantic does, whatever the session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest
from pydantic import TypeAdapter

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

TIMES = [datetime(2026, 11, 23, 8, 15, tzinfo=UTC), datetime(2026, 11, 23, 8, 15, 0, 250000, tzinfo=UTC),
         datetime(2026, 11, 23, 8, 15, 0, 1, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC),
         datetime(8999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         datetime(2026, 1, 1, 7, 59, 59, tzinfo=timezone(timedelta(hours=8)))]


@pytest.mark.parametrize("session", [("UTC", "ISO, MDY"), ("Asia/Shanghai", "SQL, DMY"), ("America/Lima", "German")])
async def test_api_time_matches_pydantic_and_msgspec(db: str, session: tuple[str, str]) -> None:
    conn = await asyncpg.connect(db)
    try:
        await conn.execute(f"SET TIME ZONE '{session[0]}'; SET DateStyle = '{session[1]}'")
        got = [await conn.fetchval("SELECT api_time($1)", t) for t in TIMES]
        assert await conn.fetchval("SELECT api_time(NULL)") is None
    finally:
        await conn.close()
    as_pydantic = [TypeAdapter(datetime).dump_json(t.astimezone(UTC)).decode().strip('"') for t in TIMES]
    assert got == as_pydantic
    assert got == [msgspec.json.encode(t.astimezone(UTC)).decode().strip('"') for t in TIMES]
