"""The rendered exceedance history (migration 0037) stays what the API would render from the rows.

Reference: the rows read back and rendered by the response models in Python (ExceedanceOut /
EpisodeOut, as pydantic writes JSON), compared with the stored `doc` of every event after each
kind of write the rules worker, the registry and hand-made SQL do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.exceedances.schemas import EpisodeOut, ExceedanceOut
from tests.api.scenario import add_event

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

T0 = datetime(2026, 11, 20, 2, 5, 7, 250000, tzinfo=UTC)


async def _reference(conn: asyncpg.Connection) -> dict[int, Any]:
    """Every event as the response model renders it from the rows, by id."""
    out: dict[int, Any] = {}
    for e in await conn.fetch("SELECT e.*, m.code AS mine FROM exceedance_events e JOIN mines m ON m.id = e.mine_id"):
        eps = await conn.fetch(
            "SELECT ep.*, pt.code AS point, pt.location FROM episodes ep JOIN points pt ON pt.id = ep.point_id "
            "WHERE ep.event_id = $1 ORDER BY ep.start_ts, ep.id", e["id"])
        episodes = []
        for ep in eps:
            t = json.loads(ep["thresholds"])
            episodes.append(EpisodeOut(
                id=ep["id"], point=ep["point"], location=ep["location"], start=ep["start_ts"], end=ep["end_ts"],
                end_reason=ep["end_reason"], peak=ep["peak"], peak_at=ep["peak_ts"], level=ep["level"],
                thresholds=t if isinstance(t, dict) else {"value": t}, thresholds_from=ep["threshold_from"]))
        model = ExceedanceOut(id=e["id"], mine=e["mine"], gas=e["gas"], scope=e["scope"], scope_key=e["scope_key"],
                              start=e["start_ts"], end=e["end_ts"], peak=e["peak"], peak_at=e["peak_ts"],
                              level=e["level"], tier=e["tier"], order_id=e["order_id"], episodes=episodes)
        out[e["id"]] = json.loads(model.model_dump_json())
    return out


async def _stored(conn: asyncpg.Connection) -> dict[int, Any]:
    return {r["id"]: json.loads(r["doc"]) for r in await conn.fetch("SELECT id, doc FROM exceedance_events")}


async def _check(conn: asyncpg.Connection) -> dict[int, Any]:
    stored, ref = await _stored(conn), await _reference(conn)
    assert stored == ref
    return stored


async def test_docs_follow_every_kind_of_write(db: str) -> None:
    conn = await asyncpg.connect(db)
    try:
        # the writer's session may format times and floats its own way; the docs may not
        await conn.execute("SET TIME ZONE 'America/Lima'; SET DateStyle = 'German'; SET extra_float_digits = 0")
        mine_id = await conn.fetchval("SELECT mine_id FROM points WHERE code LIKE '%' ORDER BY id LIMIT 1")
        pts = [r["id"] for r in await conn.fetch(
            "SELECT id FROM points WHERE mine_id = $1 AND gas = 'methane' ORDER BY id LIMIT 3", mine_id)]
        a = await add_event(conn, mine_id, start=T0, end=T0 + timedelta(minutes=9), peak=1.37, level="alarm",
                            points=pts[:2])
        b = await add_event(conn, mine_id, start=T0 + timedelta(hours=2), end=None, peak=0.1 + 0.2, level="power_off",
                            points=pts[2:])
        docs = await _check(conn)
        assert [ep["point"] for ep in docs[a]["episodes"]] == [
            await conn.fetchval("SELECT code FROM points WHERE id = $1", p) for p in pts[:2]]
        assert docs[b]["end"] is None and docs[b]["episodes"][0]["end"] is None
        assert docs[b]["peak"] == 0.30000000000000004
        assert docs[a]["start"] == "2026-11-20T02:05:07.250000Z"

        # the rules worker's episode update (end, peak), one statement for several rows
        await conn.execute("UPDATE episodes SET end_ts = $2, end_reason = 'cleared', peak = 1.9 WHERE event_id = $1",
                           b, T0 + timedelta(hours=3))
        assert (await _check(conn))[b]["episodes"][0]["peak"] == 1.9
        # re-linking an episode moves it from one event to the other (both rendered again)
        moved = await conn.fetchval("SELECT max(id) FROM episodes WHERE event_id = $1", a)
        await conn.execute("UPDATE episodes SET event_id = $2 WHERE id = $1", moved, b)
        docs = await _check(conn)
        assert len(docs[a]["episodes"]) == 1 and len(docs[b]["episodes"]) == 2
        # deleting an episode, and an episode without an event
        await conn.execute("DELETE FROM episodes WHERE id = $1", moved)
        await conn.execute(
            "INSERT INTO episodes(mine_id, point_id, start_ts, peak, peak_ts, level, thresholds, threshold_from) "
            "VALUES ($1, $2, $3, 1.1, $3, 'alarm', '1.0'::jsonb, $3)", mine_id, pts[0], T0 + timedelta(days=1))
        docs = await _check(conn)
        assert len(docs[b]["episodes"]) == 1
        # the event's own columns (an order linked, the end set)
        await conn.execute("UPDATE exceedance_events SET order_id = 77, end_ts = $2 WHERE id = $1",
                           b, T0 + timedelta(hours=4))
        assert (await _check(conn))[b]["order_id"] == 77
        # a threshold set that is not an object is wrapped
        await conn.execute("UPDATE episodes SET thresholds = '[1.0, 1.5]'::jsonb WHERE event_id = $1", a)
        assert (await _check(conn))[a]["episodes"][0]["thresholds"] == {"value": [1.0, 1.5]}
        # the registry renaming a point's location, and a mine's code
        await conn.execute("UPDATE points SET location = 'moved \"face\" 2' WHERE id = $1", pts[0])
        await conn.execute("UPDATE mines SET code = code || 'X' WHERE id = $1", mine_id)
        docs = await _check(conn)
        assert docs[a]["episodes"][0]["location"] == 'moved "face" 2'
        assert docs[a]["mine"].endswith("X")
        assert await conn.fetchval("SELECT count(*) FROM exceedance_events WHERE doc IS NULL") == 0
    finally:
        await conn.close()

