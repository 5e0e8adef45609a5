"""Acceptance, end to end through upload files: a mine's YCBJ leaves out one of three exceedances.

The simulator's file mode (simulators.files) writes six hours of mine 149900000011 (the
integrity test registry) as national upload files: CDDY / FZDY definitions, a CDSS snapshot a
minute, FZSS, TJSJ, and a YCBJ record for each abnormal episode, except the one a scenario
`hide_alarm` event has the mine leave out. The real file ingest stores them; the real rules
worker (clock injected) computes the face's three methane episodes from the CDSS readings and,
once the local day is over and its files had their 2 h, finds one `under_reporting` finding
for the mine and day listing the second episode only; the real alerting worker opens its case
at the county.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from alerting.settings import AlertingSettings
from alerting.worker import AlertingWorker
from ingest.files.ledger import FileIngester
from ingest.files.watch import DropWatcher
from minewatch.clock import FrozenClock, SystemClock
from minewatch.registry import load_registry
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from simulators.files import FileOptions, MineFiles, single_mine, write_history
from simulators.scenario import parse_scenario
from simulators.world import World
from tests.conftest import _create_db, _drop_db
from tests.e2e.servers import HOOK_SECRET, http_inbox
from tests.rules.db.helpers import DATA, load_test_registry

pytestmark = [pytest.mark.integration]

REGISTRY = DATA / "registry_integrity.yaml"
MINE = "149900000011"
FACE = f"{MINE}_01MN0001_T0001"  # the face (T1): alarm 1.0, power-off 1.5
HOOK_ENV = "MW_E2E_HOOK_SECRET"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def integrity_db(pg_dsn: str) -> Iterator[str]:
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    asyncio.run(load_test_registry(dsn, REGISTRY))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


async def test_a_day_of_upload_files_whose_ycbj_leaves_out_one_exceedance_is_under_reporting(
    integrity_db: str, tmp_path: Path
) -> None:
    reg, _ = load_registry(REGISTRY)
    reg = single_mine(reg, MINE)
    day = datetime.now(UTC).astimezone(SHANGHAI).date() - timedelta(days=2)
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=SHANGHAI)
    start = day_start + timedelta(hours=8)
    rises = [start + timedelta(hours=h) for h in (1, 2, 3)]
    scenario = parse_scenario(
        {
            "events": [
                *(
                    {"at": r.isoformat(), "point": FACE, "kind": "methane_rise", "to": 1.3, "duration": "4m", "ramp": "30s"}
                    for r in rises
                ),
                # the mine's alarm records leave out the second exceedance
                {"at": (rises[1] - timedelta(minutes=5)).isoformat(), "point": FACE, "kind": "hide_alarm", "duration": "15m"},
            ]
        },
        registry=reg,
    )
    world = World(reg, 11, start, start + timedelta(hours=6), scenario)
    drop = tmp_path / "drop"
    drop.mkdir()
    stats = await asyncio.to_thread(write_history, MineFiles(world, MINE, FileOptions(cdss_every_s=60)), drop)
    assert stats.by_kind["YCBJ"] > 0
    ing = FileIngester(integrity_db, clock=SystemClock())
    try:
        done = await DropWatcher(ing, drop, clock=SystemClock()).scan()
    finally:
        await ing.close()
    assert len(done) == stats.files and {s.state for s in done} == {"done"}

    conn = await asyncpg.connect(integrity_db)
    try:
        reported = await conn.fetch("SELECT abnormal_code, started_at FROM reported_abnormal ORDER BY started_at")
        assert {r["abnormal_code"] for r in reported} >= {"001"}
        # Before the day's end + 2 h nothing is judged; then one finding for the mine and day.
        clock = FrozenClock((day_start + timedelta(days=1, hours=2) - timedelta(seconds=1)).astimezone(UTC))
        await RuleWorker(integrity_db, builtin_pack("default"), clock=clock).run(burst=True)
        assert await conn.fetchval("SELECT count(*) FROM findings WHERE rule = 'under_reporting'") == 0
        clock.advance(timedelta(seconds=1))
        worker = RuleWorker(integrity_db, builtin_pack("default"), clock=clock)
        assert await worker.clock_pass(conn)
        episodes = await conn.fetch(
            "SELECT e.start_ts FROM episodes e JOIN points p ON p.id = e.point_id WHERE p.code = $1 ORDER BY e.start_ts", FACE
        )
        assert len(episodes) == 3 and all(
            abs(e["start_ts"] - r) < timedelta(minutes=2) for e, r in zip(episodes, rises, strict=True)
        )
        [f] = await conn.fetch(
            "SELECT id, subject, start_ts, end_ts, level, evidence FROM findings WHERE rule = 'under_reporting' "
            "AND state <> 'superseded'"
        )
        ev = json.loads(f["evidence"])
        assert (f["subject"], f["start_ts"], f["end_ts"], f["level"]) == (MINE, day_start, day_start + timedelta(days=1), "major")
        assert ev["day"] == day.isoformat() and ev["episodes"] == 3 and ev["reported"] == 2
        assert [u["point"] for u in ev["unreported"]] == [FACE]
        assert datetime.fromisoformat(ev["unreported"][0]["start"]) == episodes[1]["start_ts"]
        assert not await worker.clock_pass(conn), "a second pass at the same clock writes nothing"

        # --- its case, at the county ---
        with http_inbox("webhook") as (hooks, inbox):
            routing = tmp_path / "routing.yaml"
            routing.write_text(
                f'version: 1\nregions:\n  county:\n    "149901":\n      - {{id: t-county, name: 测试县, '
                f'webhook: {{url: "{hooks}/county", secret_env: {HOOK_ENV}}}}}\n',
                encoding="utf-8",
            )
            settings = AlertingSettings.model_validate({"routing_path": routing, "lease_s": 30, "http_timeout_s": 5})
            alert_clock = FrozenClock(clock.now())
            for _ in range(2):
                await AlertingWorker(
                    integrity_db, settings, registry=CollectorRegistry(), clock=alert_clock, environ={HOOK_ENV: HOOK_SECRET}
                ).run(burst=True)
                alert_clock.advance(timedelta(minutes=2))
            [case] = await conn.fetch(
                "SELECT c.id, c.level FROM cases c JOIN case_findings cf ON cf.case_id = c.id WHERE cf.finding_id = $1",
                f["id"],
            )
            assert case["level"] == "county"
            assert any(
                body["reason"] == "raised" and str(case["id"]) in [str(i) for i in body["case"]["ids"]]
                for path, body in inbox.snapshot()
                if path == "/county"
            )
    finally:
        await conn.close()
