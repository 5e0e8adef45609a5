"""Measure 1's data verdict on a methane case: the feed point confirms the power cut, or the
`power_off_failure` finding shows it did not (rules.md §4).

Real pipeline on a real database: readings stored as the ingest stores them, the rules worker
(burst, integrity on, injected clock) finding the exceedance, its power-off episode and — when
the relay does not answer — `power_off_failure`; the alerting case step (`CaseWorker.step`)
opening the case and judging its power-off check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from alerting.actions import checklist_from_json
from alerting.checklist import CheckStatus, DataCheckName, Measure
from alerting.routing import load_routing
from alerting.settings import AlertingSettings, sample_routing_path
from alerting.worker import CaseWorker, load_all_templates
from minewatch.clock import FrozenClock
from minewatch.db import create_pool
from minewatch.timeutil import to_ns
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import DATA, insert_readings, new_db, series

pytestmark = [pytest.mark.integration]

REGISTRY = DATA / "registry_integrity.yaml"
MINE = "149900000011"
FACE, RELAY = f"{MINE}_01MN0001_T0001", f"{MINE}_01KG1009_T0005"
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
S = 10**9


@pytest.fixture
def dsn(pg_dsn: str) -> Iterator[str]:
    d = asyncio.run(new_db(pg_dsn, REGISTRY))
    try:
        yield d
    finally:
        asyncio.run(_drop_db(pg_dsn, d))


async def _case_after(dsn: str, relay: list[float], now: datetime) -> tuple[int, dict[str, object], list[str]]:
    """The face rises to 1.6 % (power-off level 1.5 %) for 3 min with the relay reading `relay`
    every 30 s from the same start; returns (case id, its power-off check, its history actions)."""
    t0 = to_ns(START)
    conn = await asyncpg.connect(dsn)
    try:
        await insert_readings(conn, series(FACE, t0, [0.3] * 10 + [1.6] * 6 + [0.3] * 10)
                              + series(RELAY, t0, relay))
    finally:
        await conn.close()
    await RuleWorker(dsn, builtin_pack("default"), clock=FrozenClock(now)).run(burst=True)
    pool = await create_pool(dsn)
    try:
        settings = AlertingSettings.model_validate({"routing_path": sample_routing_path()})
        worker = CaseWorker(pool, clock=FrozenClock(now), routing=load_routing(sample_routing_path()),
                            templates=load_all_templates(), settings=settings)
        await worker.run_burst()
        assert await worker.step() == 0, "a second pass with nothing new does no work"
        row = await pool.fetchrow("SELECT id, checklist FROM cases WHERE rule = 'methane_exceedance'")
        assert row is not None
        checklist = checklist_from_json(row["checklist"])
        assert checklist is not None
        check = {c.name: c for c in checklist.item(Measure.POWER_OFF_EVACUATE).data}
        history = [r["action"] for r in await pool.fetch(
            "SELECT action FROM case_history WHERE case_id = $1 ORDER BY id", row["id"])]
        power = check[DataCheckName.POWER_OFF]
        evacuation = check[DataCheckName.EVACUATION]
        assert evacuation.status is CheckStatus.NOT_CHECKED  # work_continued is the personnel rule's
        return int(row["id"]), {"status": power.status, "finding": power.finding_id, "detail": power.detail,
                                "at": power.checked_at}, history
    finally:
        await pool.close()


async def test_the_relay_reporting_off_within_60_s_confirms_the_power_cut(dsn: str) -> None:
    # The face reaches 1.6 % at +300 s; the relay reads 1 until +330 s, then 0 (off) at +330 s.
    now = START + timedelta(hours=1)
    _, check, history = await _case_after(dsn, [1.0] * 11 + [0.0] * 15, now)
    assert check["status"] is CheckStatus.CONFIRMED and check["finding"] is None and check["at"] == now
    assert RELAY in str(check["detail"]) and "reported off" in str(check["detail"])
    assert history.count("data_check") == 1


async def test_a_relay_that_stays_on_fails_the_check_and_points_at_the_finding(dsn: str) -> None:
    now = START + timedelta(hours=1)
    _, check, history = await _case_after(dsn, [1.0] * 26, now)
    assert check["status"] is CheckStatus.FAILED
    conn = await asyncpg.connect(dsn)
    try:
        finding = await conn.fetchval("SELECT id FROM findings WHERE rule = 'power_off_failure' AND subject = $1 "
                                      "AND state <> 'superseded'", FACE)
    finally:
        await conn.close()
    assert finding is not None and check["finding"] == finding
    assert "did not report off" in str(check["detail"])
    assert history.count("data_check") == 1


async def test_while_the_response_window_is_open_nothing_is_decided(dsn: str) -> None:
    # The rules' and the case step's present: 30 s after the face reached the power-off level.
    now = START + timedelta(seconds=330)
    _, check, _ = await _case_after(dsn, [1.0] * 11, now)
    assert check["status"] is CheckStatus.NOT_CHECKED and check["at"] is None
    assert "has until" in str(check["detail"])
