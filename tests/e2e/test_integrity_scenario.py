"""Acceptance, end to end: the simulators' monitoring faults through every real part.

The simulator plays tests/e2e/data/integrity_scenario.yaml (six hours of mine 149900000011 of
tests/rules/db/data/registry_integrity.yaml, from 08:00 local two days ago) and publishes it
over MQTT; the real ingest process stores readings and station states; the real rules worker
(`rules.worker.RuleWorker`, its clock injected) finds the integrity findings of rules.md §6 and
§4's power-off check; the real alerting worker (burst mode, FrozenClock) opens their cases at
the county and tells the county's webhook. The expected findings are written out below from
the scenario's faults (minutes after the start, within a minute: readings carry the
simulator's jitter and stations report once a minute), not from a run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from alerting.settings import AlertingSettings
from alerting.worker import AlertingWorker
from launcher.embedded import stop_process
from minewatch.clock import FrozenClock
from minewatch.registry import load_registry
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from simulators.run import RunOptions, RunStats, render_history
from simulators.scenario import load_scenario
from simulators.world import World
from tests.conftest import _create_db, _drop_db, start_ingest
from tests.e2e.servers import HOOK_SECRET, SMS_AUTH, http_inbox
from tests.mqtt_helpers import publish_all
from tests.polling import wait_for
from tests.rules.db.helpers import DATA, load_test_registry

pytestmark = [pytest.mark.integration]

REGISTRY = DATA / "registry_integrity.yaml"
SCENARIO = Path(__file__).resolve().parent / "data" / "integrity_scenario.yaml"
MINE = "149900000011"
FACE, RETURN = f"{MINE}_01MN0001_T0001", f"{MINE}_01MN0001_T0002"  # F1: face (T1), return airway (T2)
CORNER, HEADING = f"{MINE}_01MN0001_T0003", f"{MINE}_01MN0001_T0004"  # F1 upper corner, F2 heading
RELAY, CO = f"{MINE}_01KG1009_T0005", f"{MINE}_01MN0004_T0006"  # the face's power-off relay, F2 CO
STATION_2 = f"{MINE}S0002"
HOOK_ENV, SMS_ENV = "MW_E2E_HOOK_SECRET", "MW_E2E_SMS_AUTH"
HOURS = 6
TOLERANCE_MIN = 1.0
INTEGRITY = ("offline", "station_fault", "stuck", "calibration_abuse", "implausible_pair", "power_off_failure", "under_reporting")

# (rule, subject, start, end) in minutes after the start of the run; None: still open.
EXPECTED: list[tuple[str, str, float, float | None]] = [
    ("offline", HEADING, 50, 60),  # unplugged for 10 min: its last reading before, its first after
    ("stuck", CORNER, 60, 240),  # frozen for 3 h at its last natural value
    ("calibration_abuse", RETURN, 100, 333),  # 40 min + 2 min calibrating in the 08-16 shift
    ("offline", HEADING, 200, 210),  # the F2 station's comm. loss silences its points
    ("offline", CO, 200, 210),
    ("station_fault", STATION_2, 200, 210),  # run state 1 for 10 min
    ("implausible_pair", RETURN, 250.5, 295.5),  # the face held at 0.95 %: the return 0.3 % or more below
    ("offline", RELAY, 325, 345),  # the relay reports nothing for 20 min
    ("power_off_failure", FACE, 331.5, None),  # the face reaches 1.5 % at ~330.5; no "off" by +60 s, nor later
    ("calibration_abuse", RETURN, 331, 333),  # the return calibrates during the face's exceedance
]


def routing_yaml(hooks: str) -> str:
    return f"""
version: 1
start_levels:
  default: county
mines:
  "{MINE}":
    receivers:
      - {{id: m-dispatch, name: 调度室, webhook: {{url: "{hooks}/mine", secret_env: {HOOK_ENV}}}}}
regions:
  county:
    "149901":
      - {{id: t-county, name: 测试县应急管理局, webhook: {{url: "{hooks}/county", secret_env: {HOOK_ENV}}}}}
"""


@pytest.fixture
def integrity_db(pg_dsn: str) -> Iterator[str]:
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    asyncio.run(load_test_registry(dsn, REGISTRY))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))




def minutes(ts: datetime | None, start: datetime) -> float | None:
    return None if ts is None else (ts - start).total_seconds() / 60


def matches(found: list[tuple[str, str, float, float | None]]) -> bool:
    """Each expected finding found once within the tolerance, and nothing else."""
    left = list(found)
    for rule, subject, a, b in EXPECTED:
        hit = [
            f
            for f in left
            if f[0] == rule
            and f[1] == subject
            and abs(f[2] - a) <= TOLERANCE_MIN
            and ((b is None and f[3] is None) or (b is not None and f[3] is not None and abs(f[3] - b) <= TOLERANCE_MIN))
        ]
        if len(hit) != 1:
            return False
        left.remove(hit[0])
    return not left


async def test_simulated_monitoring_faults_through_mqtt_become_county_cases_with_evidence(
    integrity_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    reg, _ = load_registry(REGISTRY)
    start = datetime.combine(
        datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=2),
        datetime.min.time().replace(hour=8),
        tzinfo=ZoneInfo("Asia/Shanghai"),
    ).astimezone(UTC)
    end = start + timedelta(hours=HOURS)
    world = World(reg, 7, start, end, load_scenario(SCENARIO, reg))
    stats = RunStats()
    messages = [
        (m.topic, m.payload) for m in render_history(world, RunOptions(topic_prefix=topic_prefix, items_per_message=60), stats)
    ]
    # The rules' present: just after the data (nothing is silent yet at the end of the run).
    clock = FrozenClock(end + timedelta(seconds=20))
    conn = await asyncpg.connect(integrity_db)
    ingest = start_ingest(
        integrity_db,
        mqtt_url,
        topic_prefix,
        tmp_path / "ingest.log",
        client_id=f"e2e-int-{topic_prefix.strip('/')}",
        suback_s=0.3,
    )
    rules = RuleWorker(integrity_db, builtin_pack("default"), clock=clock, settings=RulesSettings(poll_s=0.2, clock_s=3_600))
    running = asyncio.create_task(rules.run())
    try:
        await asyncio.to_thread(publish_all, mqtt_url, messages)

        async def stored() -> bool:
            n = await conn.fetchval("SELECT count(*) FROM readings")
            s = await conn.fetchval("SELECT count(*) FROM station_states")
            return n == stats.readings and s == stats.station_states

        await wait_for("every reading and station state stored", stored)

        async def evaluated() -> bool:
            if await conn.fetchval("SELECT count(*) FROM dirty_windows"):
                return False
            rows = await conn.fetch(
                "SELECT rule, subject, start_ts, end_ts FROM findings WHERE state <> 'superseded' AND rule = ANY($1::text[])",
                list(INTEGRITY),
            )
            return matches(
                [(r["rule"], r["subject"], minutes(r["start_ts"], start) or 0.0, minutes(r["end_ts"], start)) for r in rows]
            )

        await wait_for("exactly the expected integrity findings", evaluated)
    finally:
        rules.stop()
        await running
        stop_process(ingest)
    try:
        rows = await conn.fetch(
            "SELECT id, rule, subject, start_ts, end_ts, level, evidence FROM findings "
            "WHERE state <> 'superseded' AND rule = ANY($1::text[]) ORDER BY start_ts",
            list(INTEGRITY),
        )
        found = [(r["rule"], r["subject"], minutes(r["start_ts"], start) or 0.0, json.loads(r["evidence"])) for r in rows]

        def evidence(key: tuple[str, str, float]) -> dict[str, Any]:
            """The evidence of the one finding of (rule, subject) starting within the tolerance of
            the minute given (a start is not always on the minute the scenario names: a natural
            reading just before a freeze can equal the frozen value, starting the run early)."""
            rule, subject, minute = key
            [hit] = [e for r, s, m, e in found if (r, s) == (rule, subject) and abs(m - minute) <= TOLERANCE_MIN]
            return hit

        # Each finding carries what a regulator needs to judge it without a database.
        assert evidence(("stuck", CORNER, 60))["witness"] in (FACE, RETURN, HEADING, CO)
        assert evidence(("stuck", CORNER, 60))["n_readings"] >= 355
        assert evidence(("station_fault", STATION_2, 201))["reported_state"] == 1
        assert evidence(("station_fault", STATION_2, 201))["points"] == [HEADING, CO]
        pair = evidence(("implausible_pair", RETURN, 251))
        assert (pair["upstream"], pair["downstream"]) == (FACE, RETURN) and pair["worst_difference"] > 0.3
        power = evidence(("power_off_failure", FACE, 332))
        assert power["feed"] == RELAY and power["seen_feed_readings"] == 0 and power["last_feed_value"] is None
        assert power["readings"][FACE] and RELAY not in power["readings"]  # the relay said nothing
        offline = evidence(("offline", HEADING, 50))
        assert offline["limit_s"] == 90 and 599 <= offline["seen_s"] <= 661

        # --- alerting: a case per finding, each at the county, the county told ---
        with http_inbox("webhook") as (hooks, hook_inbox), http_inbox("sms") as (gateway, _sms):
            routing_path = tmp_path / "routing.yaml"
            routing_path.write_text(routing_yaml(hooks), encoding="utf-8")
            settings = AlertingSettings.model_validate(
                {
                    "routing_path": routing_path,
                    "lease_s": 30,
                    "http_timeout_s": 5,
                    "sms_gateway": {
                        "url": f"{gateway}/sms",
                        "auth_env": SMS_ENV,
                        "body_template": {"mobile": "{to}", "content": "{text}", "outId": "{id}"},
                    },
                }
            )
            alert_clock = FrozenClock(end + timedelta(seconds=30))
            worker = AlertingWorker(
                integrity_db,
                settings,
                registry=CollectorRegistry(),
                clock=alert_clock,
                environ={HOOK_ENV: HOOK_SECRET, SMS_ENV: SMS_AUTH},
            )
            await worker.run(burst=True)
            alert_clock.advance(timedelta(minutes=2))  # past the grouping window
            await AlertingWorker(
                integrity_db,
                settings,
                registry=CollectorRegistry(),
                clock=alert_clock,
                environ={HOOK_ENV: HOOK_SECRET, SMS_ENV: SMS_AUTH},
            ).run(burst=True)
            cases = await conn.fetch(
                "SELECT c.id, c.rule, c.level, f.id AS finding FROM cases c JOIN case_findings cf ON cf.case_id = c.id "
                "JOIN findings f ON f.id = cf.finding_id WHERE c.rule = ANY($1::text[])",
                list(INTEGRITY),
            )
            assert sorted(r["finding"] for r in cases) == sorted(r["id"] for r in rows)
            assert {r["level"] for r in cases} == {"county"}
            # The county is told of every one (grouped into few messages: one incident to a reader).
            told = {
                int(i)
                for path, body in hook_inbox.snapshot()
                if path == "/county" and body["reason"] == "raised"
                for i in body["case"]["ids"]
            }
            assert told >= {int(r["id"]) for r in cases}
            assert hook_inbox.rejected == 0
    finally:
        await conn.close()
