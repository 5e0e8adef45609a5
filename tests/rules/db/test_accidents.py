"""Accidents recorded through the real API become special-inspection findings through the worker.

rules.md §3: ≥ 2 general accidents in 3 months or ≥ 3 in 6 months → special inspection. An
accident is posted to ``POST /v1/mines/{mine}/accidents`` (the real app on a real pool, a
county regulator's token); the trigger of migration 0051 queues a dirty window of kind
``accidents`` in the same transaction; the worker in burst mode re-counts the mine. Then:
re-running changes nothing, a back-fill of the same database changes nothing, and a back-fill
of a database that holds the same accidents (inserted as the API does, never seen by the
worker) ends with the same findings; alerting opens one county case per finding. Accidents
corrected or deleted in SQL (the API records only) move or withdraw the inspection.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from alerting.cases import sync_findings
from alerting.messages import load_templates
from alerting.routing import load_routing
from api.app import create_app
from api.auth.tokens import create_token
from minewatch.clock import FrozenClock
from minewatch.db import create_pool
from minewatch.settings import Settings
from minewatch.timeutil import to_ns
from rules.backfill import backfill
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.conftest import ROOT
from tests.rules.db.helpers import MINES, snapshot

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
MINE = MINES[0]
COUNTY = "149901"  # the test registry's county of every mine
PEPPER = "test-pepper"
NOW = datetime.now(UTC).replace(microsecond=0)
PACK = builtin_pack("default")
LIVE = "SELECT * FROM findings WHERE rule = 'special_inspection' AND state <> 'superseded' "


def local(month: int, day: int, year: int = 2026) -> datetime:
    """10:00 Shanghai time on that day."""
    return datetime(year, month, day, 10, tzinfo=SHANGHAI)


@contextlib.asynccontextmanager
async def api(dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real API app on a real pool, as a county regulator of the test registry's mines."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            _, token = await create_token(conn, name="county-user", role="county", scope=[COUNTY], pepper=PEPPER,
                                          now=NOW - timedelta(days=1))
        app = create_app(Settings(database_url=dsn, token_pepper=SecretStr(PEPPER)), pool=pool,
                         clock=FrozenClock(NOW))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.test",
                headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        await pool.close()


async def post(client: httpx.AsyncClient, when: datetime, severity: str = "general", mine: str = MINE) -> int:
    r = await client.post(f"/v1/mines/{mine}/accidents",
                          json={"occurred_at": when.isoformat(), "severity": severity, "description": "roof fall"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def work(dsn: str) -> dict[str, int]:
    """The worker in burst mode until no window is left; the findings it wrote."""
    tally = await RuleWorker(dsn, PACK).run(burst=True)
    return {k: n for k, n in tally.findings.items() if k != "unchanged"}


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def copy_accidents(src: str, dst: str) -> None:
    """Insert the accidents of one database into another, as the API does (the worker never sees them)."""
    rows = await fetch(src, "SELECT m.code, a.* FROM accidents a JOIN mines m ON m.id = a.mine_id ORDER BY a.id")
    conn = await asyncpg.connect(dst)
    try:
        await conn.executemany(
            "INSERT INTO accidents (mine_id, occurred_at, severity, description, created_by) "
            "VALUES ((SELECT id FROM mines WHERE code = $1), $2, $3, $4, $5)",
            [(r["code"], r["occurred_at"], r["severity"], r["description"], r["created_by"]) for r in rows])
    finally:
        await conn.close()


async def test_accidents_posted_through_the_api_call_for_special_inspections(
        make_db: Callable[[], Awaitable[str]]) -> None:
    # One mine per case of the rule (the count is per mine): two accidents within three
    # months, two three months and a day apart, three within six months.
    dsn, fresh = await make_db(), await make_db()
    async with api(dsn) as client:
        first = await post(client, local(1, 5))
        assert await work(dsn) == {}
        second = await post(client, local(4, 4), "major")  # a major accident is at least a general one
        assert await work(dsn) == {"created": 1}
        await post(client, local(1, 5), mine=MINES[1])
        await post(client, local(4, 6), mine=MINES[1])
        assert await work(dsn) == {}
        found = []
        for when in (local(1, 10), local(4, 20), local(6, 10)):
            await post(client, when, mine=MINES[2])
            await work(dsn)
            found.append(len(await fetch(dsn, LIVE + "AND subject = $1", MINES[2])))
    assert found == [0, 0, 1]
    assert await fetch(dsn, "SELECT * FROM dirty_windows") == []
    assert await fetch(dsn, "SELECT * FROM findings WHERE subject = $1", MINES[1]) == []
    f, g = await fetch(dsn, LIVE + "ORDER BY start_ts")
    mine_id = (await fetch(dsn, "SELECT id FROM mines WHERE code = $1", MINE))[0]["id"]
    assert (f["mine_id"], f["subject"], f["start_ts"], f["end_ts"], f["level"], f["tier"], f["state"]) == (
        mine_id, MINE, local(4, 4), None, "inspection", None, "open")
    assert (f["ref_table"], f["ref_id"]) == ("accidents", second)
    assert json.loads(f["evidence"]) == {
        "pack": "default", "rule": "accidents", "n": 2, "window": {"rolling": "3mo"},
        "accident_ids": [first, second], "accident_times": ["2026-01-05T02:00:00Z", "2026-04-04T02:00:00Z"],
        "severities": ["general", "major"]}
    # Three within six months hold two within three (20 Apr, 10 Jun): the count completes at 10 Jun.
    assert (g["subject"], g["start_ts"], len(json.loads(g["evidence"])["accident_ids"])) == (
        MINES[2], local(6, 10), 2)

    # Re-counting (accidents touched in SQL queue their windows again) writes nothing.
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE accidents SET severity = severity")
    finally:
        await conn.close()
    assert len(await fetch(dsn, "SELECT * FROM dirty_windows WHERE kind = 'accidents'")) == 14  # old and new rows
    assert await work(dsn) == {}
    assert [dict(r) for r in await fetch(dsn, LIVE + "ORDER BY start_ts")] == [dict(f), dict(g)]

    # A back-fill of the same database changes nothing; a back-fill over the same accidents,
    # never seen by the worker, ends with the same findings (the CLI's own path is tested in
    # test_backfill; a process start here would cost more than the rest of this file).
    since, until = to_ns(NOW) - 86_400 * 10**9, to_ns(NOW)
    tally = await backfill(dsn, PACK, since_ns=since, until_ns=until)
    assert tally.changes() == 0, tally
    await copy_accidents(dsn, fresh)
    assert (await backfill(fresh, PACK, since_ns=since, until_ns=until)).findings["created"] == 2
    assert (await snapshot(fresh))["findings"] == (await snapshot(dsn))["findings"]

    # Alerting opens one case per inspection, at the county, on the whole mine.
    routing, templates = load_routing(ROOT / "alerting" / "routing_sample.yaml"), load_templates("zh")
    conn = await asyncpg.connect(dsn)
    try:
        assert await sync_findings(conn, now=NOW, routing=routing, templates=templates, batch=100) == 2
        assert await sync_findings(conn, now=NOW, routing=routing, templates=templates, batch=100) == 0
        case = await conn.fetchrow("SELECT * FROM cases WHERE mine_id = $1", mine_id)
    finally:
        await conn.close()
    assert case is not None
    assert (case["rule"], case["level"], case["severity"], case["state"], case["order_id"], case["title"]) == (
        "special_inspection", "county", "normal", "open", None, "全矿多次事故专项检查")
    assert case["identity"] == f"special_inspection/{MINE}/{MINE}/2026-04-04T02:00:00Z"


async def test_accidents_corrected_in_sql_move_or_withdraw_the_inspection(
        make_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await make_db()
    async with api(dsn) as client:
        a = await post(client, local(3, 1))
        b = await post(client, local(4, 1))
        await work(dsn)
    (old,) = await fetch(dsn, LIVE + "ORDER BY start_ts")
    conn = await asyncpg.connect(dsn)
    try:
        # A back-dated accident completes the count earlier: the inspection moves (superseded by
        # its successor, which counts one of its accidents), never a second live one.
        await conn.execute("UPDATE accidents SET occurred_at = $2 WHERE id = $1", b, local(3, 20))
        assert await work(dsn) == {"created": 1, "superseded": 1}
        (moved,) = await fetch(dsn, LIVE + "ORDER BY start_ts")
        assert moved["start_ts"] == local(3, 20)
        gone = (await fetch(dsn, "SELECT * FROM findings WHERE id = $1", old["id"]))[0]
        assert (gone["state"], gone["superseded_by"]) == ("superseded", moved["id"])
        # Deleted: the count no longer holds, the finding is withdrawn (kept for its case).
        await conn.execute("DELETE FROM accidents WHERE id = $1", a)
        assert await work(dsn) == {"superseded": 1}
        assert await fetch(dsn, LIVE + "ORDER BY start_ts") == []
        withdrawn = (await fetch(dsn, "SELECT * FROM findings WHERE id = $1", moved["id"]))[0]
        assert withdrawn["superseded_by"] is None and json.loads(withdrawn["evidence"])["withdrawn"] is True
    finally:
        await conn.close()
