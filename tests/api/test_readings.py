"""GET /v1/mines/{mine}/points/{point}/readings: raw and bucketed against a plain-Python reference."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.readings import service
from api.readings.service import HOUR
from ingest.store import BatchStore, TableBatch, stored_status
from minewatch.clock import FrozenClock
from minewatch.db import ident, rollup
from minewatch.db.timeseries import PartitionKeeper, current_backend
from tests.api.conftest import NOW, auth, settings_for
from tests.api.scenario import M1, M2, T0_POINT, T1_POINT, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

URL = f"/v1/mines/{M1}/points/{T0_POINT}/readings"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def reference_buckets(readings: list[tuple[datetime, float]], step: timedelta, lo: datetime,
                      hi: datetime) -> list[dict[str, object]]:
    """min / max / avg / last / n per bucket, by a plain loop."""
    groups: dict[datetime, list[tuple[datetime, float]]] = defaultdict(list)
    for ts, v in readings:
        if service.align(lo, step) <= ts < hi:
            groups[service.align(ts, step)].append((ts, v))
    out = []
    for b in sorted(groups):
        vals = [v for _, v in groups[b]]
        out.append({"bucket": _z(b), "min": min(vals), "max": max(vals), "avg": sum(vals) / len(vals),
                    "last": max(groups[b])[1], "n": len(vals)})
    return out


def _close(a: list[dict[str, object]], b: list[dict[str, object]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x["bucket"] == y["bucket"] and x["n"] == y["n"]
        for k in ("min", "max", "avg", "last"):
            assert x[k] == pytest.approx(y[k], rel=1e-12), (k, x, y)


async def test_raw_defaults_to_the_last_24h(client: httpx.AsyncClient, world: World) -> None:
    r = await client.get(URL, params={"limit": 1000}, headers=auth(world, "mine1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "raw" and body["step"] is None and body["unit"] == "%CH4"
    assert body["until"] == _z(NOW) and body["since"] == _z(NOW - timedelta(hours=24))
    # readings run up to and including NOW - 30 s (until is exclusive)
    assert [(i["ts"], i["value"]) for i in body["items"]] == [(_z(t), v) for t, v in world.readings]
    assert body["next_cursor"] is None


async def test_raw_pages_cover_the_range_once(client: httpx.AsyncClient, world: World) -> None:
    got: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 70}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get(URL, params=params, headers=auth(world, "mine1"))).json()
        got += [i["ts"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert got == [_z(t) for t, _ in world.readings]


@pytest.mark.parametrize("step", ["1m", "5m", "15m", "1h", "7m", "1d", "45s"])
async def test_buckets_match_reference(client: httpx.AsyncClient, world: World, step: str) -> None:
    since, until = NOW - timedelta(hours=3), NOW - timedelta(minutes=17)
    r = await client.get(URL, params={"step": step, "since": since.isoformat(), "until": until.isoformat(),
                                      "limit": 1000}, headers=auth(world, "county_qx"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "buckets" and body["step"] == step
    expected = reference_buckets(world.readings, service.parse_step(step), since, until)
    assert expected, "the scenario must put readings in range"
    _close(body["items"], expected)


async def test_bucket_pages(client: httpx.AsyncClient, world: World) -> None:
    got = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"step": "1m", "limit": 50}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get(URL, params=params, headers=auth(world, "admin"))).json()
        got += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    _close(got, reference_buckets(world.readings, timedelta(minutes=1), NOW - timedelta(hours=24), NOW))


@pytest.mark.parametrize("step", ["1h", "2h", "3h", "1d"])
async def test_whole_hour_steps_are_exact_before_and_after_the_rollup_refresh(
        client: httpx.AsyncClient, world: World, db: str, step: str) -> None:
    """Whole-hour steps read the hourly parts (rollup or raw): the same buckets either way. Times
    in the request carry the mines' +08:00 offset; buckets stay aligned to UTC multiples of the step."""
    shanghai = timezone(timedelta(hours=8))
    since, until = NOW - timedelta(hours=2, minutes=40), NOW - timedelta(minutes=17)
    params = {"step": step, "since": since.astimezone(shanghai).isoformat(),
              "until": until.astimezone(shanghai).isoformat(), "limit": 1000}
    expected = reference_buckets(world.readings, service.parse_step(step), since, until)
    assert expected
    before = (await client.get(URL, params=params, headers=auth(world, "admin"))).json()["items"]
    _close(before, expected)
    conn = await asyncpg.connect(db)
    try:
        await rollup.refresh_until_idle(conn, now=NOW)
        if await current_backend(conn) == "plain":
            assert await conn.fetchval("SELECT count(*) FROM readings_1h_rollup") > 0
    finally:
        await conn.close()
    after = (await client.get(URL, params=params, headers=auth(world, "admin"))).json()["items"]
    _close(after, expected)
    width = service.parse_step(step)
    assert all((datetime.fromisoformat(i["bucket"]) - service.ORIGIN) % width == timedelta(0) for i in after)


@pytest.mark.parametrize("params", [
    {"step": "0m"}, {"step": "32d"}, {"step": "1w"}, {"step": "1.5h"}, {"step": "-1h"}, {"step": ""},
    {"since": "2026-01-10T00:00:00Z", "until": "2026-01-01T00:00:00Z"},  # reversed
    {"since": "2026-01-01T00:00:00Z", "until": "2026-01-09T00:00:00Z"},  # raw longer than 7 days
    {"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z", "step": "1d"},  # > 400 days
    {"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z", "step": "30s"},  # > 100 000 buckets
    {"since": "0001-01-01T00:00:00+01:00"}, {"until": "9999-12-31T23:59:59-23:59"},
    {"since": "1800-01-01T00:00:00Z"},
])
async def test_invalid_ranges_and_steps_are_422(client: httpx.AsyncClient, world: World,
                                                params: dict[str, str]) -> None:
    r = await client.get(URL, params=params, headers=auth(world, "admin"))
    assert r.status_code == 422, (params, r.text)
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("label", "url"), [
    ("mine2", URL),  # another mine's point through its own mine
    ("mine2", f"/v1/mines/{M2}/points/{T0_POINT}/readings"),  # M1's point under M2
    ("admin", f"/v1/mines/{M2}/points/{T1_POINT}/readings"),  # exists, but not on that mine
    ("admin", f"/v1/mines/{M1}/points/NOPE/readings"),
])
async def test_unknown_or_hidden_points_are_404(client: httpx.AsyncClient, world: World, label: str,
                                                url: str) -> None:
    r = await client.get(url, headers=auth(world, label))
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("server_digits", [None, 0])
async def test_bucket_values_are_exact_whatever_the_server_float_setting(
        world: World, db: str, clock: FrozenClock, server_digits: int | None) -> None:
    """Buckets are written as text in PostgreSQL: values that need 17 digits come back bit for bit,
    even when the database's default extra_float_digits would round them (the API sets its own)."""
    hour = NOW.replace(minute=0, second=0) - timedelta(days=3) + timedelta(hours=server_digits or 1)
    values = [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308]
    conn = await asyncpg.connect(db)
    try:
        name = await conn.fetchval("SELECT current_database()")
        if server_digits is not None:
            await conn.execute(f"ALTER DATABASE {ident(name)} SET extra_float_digits = {int(server_digits)}")
        pid = await conn.fetchval("SELECT id FROM points WHERE code = $1", T1_POINT)
        backend = await current_backend(conn)
        if backend == "timescale":
            # As the aggregate's policy may have done already: the hour is materialised (empty)
            # before its readings arrive late, and the answer must still hold them.
            await conn.execute("CALL refresh_continuous_aggregate('readings_1h', NULL, NULL)")
        await PartitionKeeper(backend).ensure_range(conn, "readings", hour, hour + HOUR)
        await conn.execute("INSERT INTO readings (point_id, ts, value, status) SELECT $1, $2::timestamptz "
                           "+ (k - 1) * interval '1 minute', v, 0 FROM unnest($3::float8[]) WITH ORDINALITY AS u(v, k) "
                           "ON CONFLICT DO NOTHING", pid, hour, values)
        # a fresh app: its pool's sessions start with the database's default
        app = create_app(settings_for(db), clock=clock)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            for step in ("1h", "1m"):
                r = await client.get(f"/v1/mines/{M1}/points/{T1_POINT}/readings", headers=auth(world, "admin"),
                                     params={"step": step, "since": hour.isoformat(),
                                             "until": (hour + HOUR).isoformat()})
                assert r.status_code == 200, r.text
                items = r.json()["items"]
                if step == "1m":
                    assert [(i["min"], i["max"], i["last"], i["avg"]) for i in items] == [(v, v, v, v) for v in values]
                else:
                    (b,) = items
                    assert (b["min"], b["max"], b["last"], b["n"]) == (5e-324, values[3], values[3], 4)
    finally:
        if server_digits is not None:
            await conn.execute(f"ALTER DATABASE {ident(name)} RESET extra_float_digits")
        await conn.close()


@pytest.mark.parametrize("path", ["columns", "tuples"])
async def test_every_16_bit_status_comes_back_as_it_was_sent(client: httpx.AsyncClient, world: World, db: str,
                                                             path: str) -> None:
    """Statuses are 16 bits stored in a smallint: through either ingest write path (MQTT's column
    batches, the file source's tuples) the API answers the bits as they came, never negative."""
    statuses = [0, 1, 255, 32767, 32768, 40000, 65535]
    start = NOW.replace(minute=0, second=0) - timedelta(days=5 if path == "columns" else 6)
    times = [start + timedelta(seconds=30 * i) for i in range(len(statuses))]
    conn = await asyncpg.connect(db)
    try:
        pid = await conn.fetchval("SELECT id FROM points WHERE code = $1", T1_POINT)
        mine_id = await conn.fetchval("SELECT mine_id FROM points WHERE id = $1", pid)
        backend = await current_backend(conn)
        batch = TableBatch()
        if path == "columns":
            us = [int((t - EPOCH) / timedelta(microseconds=1)) for t in times]
            batch.extend_columns([pid] * len(us), us, [0.5] * len(us), statuses, ("t", M1), mine_id, min(us), max(us))
        else:
            batch.extend([(pid, t, 0.5, stored_status(s)) for t, s in zip(times, statuses, strict=True)],
                         ("f.txt", M1), mine_id, times[0], times[-1])
        res = await BatchStore(conn, PartitionKeeper(backend), source="mqtt" if path == "columns" else "file").write(
            {"readings": batch}, [], now=NOW)
        assert res.stored == {"readings": len(statuses)}
    finally:
        await conn.close()
    r = await client.get(f"/v1/mines/{M1}/points/{T1_POINT}/readings", headers=auth(world, "admin"),
                         params={"since": start.isoformat(), "until": (start + HOUR).isoformat()})
    assert r.status_code == 200, r.text
    assert [(i["ts"], i["status"]) for i in r.json()["items"]] == [
        (_z(t), s) for t, s in zip(times, statuses, strict=True)]
