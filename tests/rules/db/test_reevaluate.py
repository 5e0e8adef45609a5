"""Re-evaluation against the real database: late data, threshold versions, silence, idempotence.

Readings go in as the ingest writes them (a transaction with a dirty window per mine), the
worker runs in burst mode (until no window is left), and the tests read the stored rows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import yaml

from minewatch.timeutil import from_ns, to_ns
from rules.backfill import Tally
from rules.packs import builtin_pack
from rules.worker import RuleWorker, enqueue_threshold_changes
from tests.rules.db.helpers import MIN, REGISTRY, S, insert_readings, load_test_registry, series

pytestmark = pytest.mark.integration

M1 = "149900000001"
A = f"{M1}_01MN0001_T0001"  # upper corner, face F1
B = f"{M1}_01MN0001_T0002"  # face F1
DAY = 24 * 60 * MIN
T = to_ns(datetime(2026, 10, 5, tzinfo=UTC))  # a Monday, 08:00 in Shanghai
PACK = builtin_pack("default")


@pytest_asyncio.fixture(loop_scope="function")
async def dsn(make_db: Callable[[], Awaitable[str]]) -> str:
    return await make_db()


@pytest_asyncio.fixture(loop_scope="function")
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(dsn)
    try:
        yield c
    finally:
        await c.close()


async def burst(dsn: str) -> Tally:
    return await RuleWorker(dsn, PACK).run(burst=True)


def plateau(code: str, start: int, minutes: int, value: float, *, before: int = 10, after: int = 15,
            low: float = 0.4) -> list[tuple[str, int, float, int]]:
    """`before` min of low readings, `minutes` at `value`, `after` min low again (30 s period)."""
    n0, n1, n2 = before * 2, minutes * 2, after * 2
    return series(code, start - before * MIN, [low] * n0 + [value] * n1 + [low] * n2)


async def findings(conn: asyncpg.Connection, rule: str) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM findings WHERE rule = $1 ORDER BY start_ts, id", rule))


async def order_rows(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await conn.fetch("SELECT * FROM orders ORDER BY start_ts"))


def at(ns: int) -> datetime:
    return from_ns(ns)


async def test_late_data_merging_two_events_supersedes_one_finding_and_keeps_one_order(
        dsn: str, conn: asyncpg.Connection) -> None:
    e0 = T + DAY + 2 * 60 * MIN
    e1 = T + 3 * DAY + 2 * 60 * MIN
    await insert_readings(conn, plateau(A, e0, 5, 1.2))
    # Day 3: high 10:00-10:04:30, then nothing for 16 min (link down), high again 10:21-10:24:30.
    def value(t: int) -> float:
        return 0.4 if t < e1 or t >= e1 + 25 * MIN else 1.2 if t < e1 + 5 * MIN else 1.1 if t < e1 + 21 * MIN else 1.3

    day3 = [(A, t, value(t), 0) for t in range(e1 - 10 * MIN, e1 + 40 * MIN, 30 * S)]
    late = [r for r in day3 if e1 + 5 * MIN <= r[1] < e1 + 21 * MIN]
    await insert_readings(conn, [r for r in day3 if r not in late])
    await burst(dsn)
    events = await conn.fetch("SELECT * FROM exceedance_events ORDER BY start_ts")
    assert [e["start_ts"] for e in events] == [at(e0), at(e1), at(e1 + 21 * MIN)]
    [order] = await order_rows(conn)
    assert order["start_ts"] == at(e1) and order["min_end_ts"] == at(e1 + 72 * 60 * MIN)
    before = {f["start_ts"]: f for f in await findings(conn, "methane_exceedance")}
    assert {r["role"] for r in await conn.fetch("SELECT role FROM order_events")} == {"trigger", "attached"}

    # The missing 16 minutes arrive late, all above the alarm level: one episode, one event.
    await insert_readings(conn, late)
    tally = await burst(dsn)
    # E2's finding, the frequent-exceedance flag (3 events in 30 days are now 2), and the
    # `offline` finding of the 16 min the link was down: the late readings fill it, so it is withdrawn.
    assert tally.findings["superseded"] == 3
    [gap] = [f for f in await findings(conn, "offline") if f["start_ts"] == at(e1 + 5 * MIN - 30 * S)]
    assert gap["state"] == "superseded" and gap["superseded_by"] is None and gap["end_ts"] == at(e1 + 21 * MIN)
    [flag] = await findings(conn, "frequent_exceedance")
    assert flag["state"] == "superseded" and flag["superseded_by"] is None
    events = await conn.fetch("SELECT * FROM exceedance_events ORDER BY start_ts")
    assert [(e["start_ts"], e["end_ts"], e["peak"]) for e in events] == [
        (at(e0), at(e0 + 5 * MIN), 1.2), (at(e1), at(e1 + 25 * MIN), 1.3)]
    after = {f["start_ts"]: f for f in await findings(conn, "methane_exceedance")}
    merged, gone = after[at(e1)], after[at(e1 + 21 * MIN)]
    assert merged["id"] == before[at(e1)]["id"] and merged["state"] == "closed" and merged["end_ts"] == at(e1 + 25 * MIN)
    assert gone["state"] == "superseded" and gone["superseded_by"] == merged["id"]
    assert after[at(e0)]["updated_at"] == before[at(e0)]["updated_at"], "an untouched finding is not rewritten"
    [again] = await order_rows(conn)
    assert again["id"] == order["id"] and again["start_ts"] == order["start_ts"] and again["withdrawn_at"] is None
    roles = await conn.fetch("SELECT event_id, role FROM order_events ORDER BY event_id")
    assert [(r["event_id"], r["role"]) for r in roles] == [(events[0]["id"], "trigger"), (events[1]["id"], "trigger")]
    assert [e["order_id"] for e in events] == [order["id"], order["id"]]
    assert await conn.fetchval("SELECT count(*) FROM dirty_windows") == 0


async def test_late_data_moving_the_trigger_start_updates_the_same_order(dsn: str, conn: asyncpg.Connection) -> None:
    e0 = T + DAY + 2 * 60 * MIN
    e1 = T + 3 * DAY + 2 * 60 * MIN
    await insert_readings(conn, plateau(A, e0, 5, 1.2))
    day3 = plateau(A, e1, 15, 1.2)  # high 10:00-10:14:30
    late = [r for r in day3 if r[1] < e1 + 10 * MIN]
    await insert_readings(conn, [r for r in day3 if r[1] >= e1 + 10 * MIN])
    await burst(dsn)
    [first] = await order_rows(conn)
    assert first["start_ts"] == at(e1 + 10 * MIN)
    [old_finding] = await findings(conn, "shutdown_order")

    await insert_readings(conn, late)  # the first ten minutes of the exceedance, late
    await burst(dsn)
    [order] = await order_rows(conn)
    assert order["id"] == first["id"], "the order is updated in place, never duplicated"
    assert order["start_ts"] == at(e1) and order["min_end_ts"] == at(e1 + 72 * 60 * MIN)
    new, old = await findings(conn, "shutdown_order")  # by start: the new identity starts earlier
    assert old["id"] == old_finding["id"] and old["state"] == "superseded" and old["superseded_by"] == new["id"]
    assert new["start_ts"] == at(e1) and new["ref_id"] == order["id"] and new["state"] == "open"
    assert new["subject"] == "methane_repeat"
    evidence = json.loads(new["evidence"])
    assert evidence["min_end"] == "2026-10-11T02:00:00Z" and evidence["ladder_step"] == 1
    events = await conn.fetch("SELECT id FROM exceedance_events ORDER BY start_ts")
    assert evidence["trigger_event_ids"] == [e["id"] for e in events]
    exceedances = await findings(conn, "methane_exceedance")
    assert [(f["start_ts"], f["state"]) for f in exceedances] == [
        (at(e0), "closed"), (at(e1), "closed"), (at(e1 + 10 * MIN), "superseded")]

    # Nothing left to do: a re-run changes nothing.
    tally = await burst(dsn)
    assert tally.changes() == 0 and tally.windows == 0


def registry_with(tmp_path: Path, name: str, thresholds: dict[str, float], effective_from: str) -> Path:
    data: dict[str, Any] = yaml.safe_load(REGISTRY.read_text(encoding="utf-8"))
    for p in data["mines"][0]["points"]:
        if p["code"] == A:
            p["thresholds"] = thresholds
            p["thresholds_effective_from"] = effective_from
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


async def test_threshold_versions_mid_stream_and_a_correction_of_the_past(
        dsn: str, conn: asyncpg.Connection, tmp_path: Path) -> None:
    day1, day2 = T + DAY + 2 * 60 * MIN, T + 2 * DAY + 2 * 60 * MIN
    assert await enqueue_threshold_changes(conn) == 0  # the first look records where it stands
    await insert_readings(conn, plateau(A, day1, 5, 1.2))
    await burst(dsn)
    # A new version from day 2 00:00 (Shanghai): 1.5 alarm. Nothing evaluated is affected.
    raised = {"alarm_hi": 1.5, "clear_hi": 1.5, "poweroff_hi": 2.0, "restore_hi": 1.5}
    await load_test_registry(dsn, registry_with(tmp_path, "v2.yaml", raised, "2026-10-07T00:00:00+08:00"))
    assert await enqueue_threshold_changes(conn) == 0
    await insert_readings(conn, plateau(A, day2, 5, 1.2) + plateau(A, day2 + 4 * 60 * MIN, 5, 1.6))
    await burst(dsn)
    rows = await conn.fetch("SELECT start_ts, peak, thresholds, threshold_from FROM episodes ORDER BY start_ts")
    assert [(r["start_ts"], r["peak"]) for r in rows] == [(at(day1), 1.2), (at(day2 + 4 * 60 * MIN), 1.6)]
    assert rows[0]["threshold_from"] == datetime(1970, 1, 1, tzinfo=UTC)
    assert rows[1]["threshold_from"] == datetime(2026, 10, 6, 16, tzinfo=UTC)
    assert '"alarm_hi": 1.5' in rows[1]["thresholds"]

    # A correction in the past: 1.3 from day 1 on. The worker notices and re-evaluates; the
    # day-1 event (peak 1.2) is no exceedance any more: its finding is withdrawn.
    corrected = {"alarm_hi": 1.3, "clear_hi": 1.3, "poweroff_hi": 2.0, "restore_hi": 1.3}
    await load_test_registry(dsn, registry_with(tmp_path, "v3.yaml", corrected, "2026-10-06T00:00:00+08:00"))
    assert await enqueue_threshold_changes(conn) == 1
    await burst(dsn)
    rows = await conn.fetch("SELECT start_ts FROM episodes ORDER BY start_ts")
    assert [r["start_ts"] for r in rows] == [at(day2 + 4 * 60 * MIN)]
    withdrawn, kept = await findings(conn, "methane_exceedance")
    assert withdrawn["start_ts"] == at(day1) and withdrawn["state"] == "superseded"
    assert withdrawn["superseded_by"] is None and '"withdrawn": true' in withdrawn["evidence"]
    assert kept["start_ts"] == at(day2 + 4 * 60 * MIN) and kept["state"] == "closed"


async def test_a_silent_point_keeps_its_episode_open(dsn: str, conn: asyncpg.Connection) -> None:
    e = T + DAY + 2 * 60 * MIN
    # A reads high from 10:00 and then goes silent; B keeps reporting for an hour.
    await insert_readings(conn, series(A, e - 10 * MIN, [0.4] * 20 + [1.4] * 10)
                          + series(B, e - 10 * MIN, [0.3] * 140))
    await burst(dsn)
    [ep] = await conn.fetch("SELECT end_ts, end_reason FROM episodes")
    assert ep["end_ts"] is None and ep["end_reason"] is None
    [f] = await findings(conn, "methane_exceedance")
    assert f["state"] == "open" and f["end_ts"] is None
    # The point comes back 50 min later, low: the gap closed the episode at its last reading.
    await insert_readings(conn, series(A, e + 55 * MIN, [0.4] * 4))
    await burst(dsn)
    [ep] = await conn.fetch("SELECT end_ts, end_reason FROM episodes")
    assert ep["end_ts"] == at(e + 4 * MIN + 30 * S) and ep["end_reason"] == "gap"
    [f] = await findings(conn, "methane_exceedance")
    assert f["state"] == "closed" and f["end_ts"] == at(e + 4 * MIN + 30 * S)
