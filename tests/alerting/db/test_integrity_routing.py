"""Integrity findings (rules.md §6) open their cases at the regulator, and a station down for
maintenance under a declared silence records its findings and cases without a flood of messages."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.alerting.db.conftest import MINE1, MINE2, T0, Harness, insert_finding, outbox

pytestmark = pytest.mark.integration
STATION = f"{MINE1}S0004"  # heading H11303: its feed, two methane points, a switch, CO and CO2
STATION_POINTS = [
    f"{MINE1}_01KG1011_T0021",
    f"{MINE1}_01MN0001_T0022",
    f"{MINE1}_01MN0001_T0023",
    f"{MINE1}_01KG1001_T0024",
    f"{MINE1}_01MN0004_T0025",
    f"{MINE1}_01MN0002_T0026",
]


async def test_a_station_under_maintenance_is_recorded_at_the_county_without_a_flood(harness: Harness) -> None:
    h = harness
    async with h.pool.acquire() as conn:
        # The mine declares the station's maintenance: a silence on each of its points.
        await conn.executemany(
            "INSERT INTO silences (point_id, starts_at, ends_at, created_by, comment) "
            "SELECT id, $2, $3, 'mine1.user', '分站检修' FROM points WHERE code = $1",
            [(p, T0 - timedelta(minutes=5), T0 + timedelta(hours=2)) for p in STATION_POINTS],
        )
    # What the rules worker writes when the station goes down: every point offline, the station faulty.
    for p in STATION_POINTS:
        await insert_finding(
            h.pool,
            rule="offline",
            subject=p,
            start=T0,
            level="warning",
            evidence={"point": p, "station": STATION, "last_reading": "2026-03-02T01:00:00Z"},
        )
    await insert_finding(
        h.pool,
        rule="station_fault",
        subject=STATION,
        start=T0,
        level="warning",
        evidence={"station": STATION, "points": STATION_POINTS, "reported_state": 1},
    )
    # Another mine's point falls silent with no silence declared: that one is told.
    loud = f"{MINE2}_01MN0001_T0003"
    await insert_finding(
        h.pool,
        rule="offline",
        subject=loud,
        start=T0,
        level="warning",
        mine=MINE2,
        evidence={"point": loud, "station": f"{MINE2}S0002"},
    )
    await h.tick()
    await h.advance(timedelta(minutes=2))  # past the grouping window
    cases = await h.pool.fetch(
        "SELECT c.id, c.rule, c.level, m.code AS mine FROM cases c JOIN mines m ON m.id = c.mine_id ORDER BY c.id"
    )
    # Recorded: a case per finding, each raised at the county (rules.md §6), none at the mine.
    assert len(cases) == len(STATION_POINTS) + 2
    assert {r["level"] for r in cases} == {"county"}
    quiet = {str(r["id"]) for r in cases if r["mine"] == MINE1}
    noisy = {str(r["id"]) for r in cases if r["mine"] == MINE2}
    sent = await outbox(h.pool)
    named = {c for r in sent for c in json.loads(r["body"]).get("case_ids", [r["case_id"]])}
    assert named and {str(c) for c in named} <= noisy, "only the unsilenced mine's case is told"
    assert {r["receiver"] for r in sent} >= {"m2-dispatch", "qx-county"}
    silenced = await h.pool.fetchval("SELECT count(*) FROM notifications WHERE state = 'suppressed' AND last_error = 'silenced'")
    assert silenced > 0 and quiet
