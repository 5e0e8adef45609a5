"""Acceptance, end to end, upload-file half: the simulators' monitoring faults as national upload files.

The MQTT half (tests/e2e/test_integrity_scenario.py) publishes the simulator's readings; here the
simulator's file mode (`simulators.files`) renders the same scenario as the CDDY / FZDY / CDSS /
FZSS / TJSJ / YCBJ uploads a mine's monitoring system makes, the real file ingest
(`ingest.files`: `DropWatcher` over a drop directory, `FileIngester`) stores them, the real rules
worker (its clock injected) finds the integrity findings, and the real alerting worker opens
their cases at the county and tells the county's webhook.

1. The six hours of tests/e2e/data/integrity_scenario.yaml. The expected findings are written out
   by hand below: the MQTT test's where the files carry the same information, otherwise moved by
   what a CDSS is (each such row says why).
2. A local day of tests/e2e/data/under_reporting_day.yaml on a sparse registry: three methane
   exceedances, one of which the mine's YCBJ leaves out (scenario event `hide_alarm`): exactly one
   `under_reporting` finding, naming that exceedance, once the day's upload grace (2 h) is over by
   the clock, none a second before.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from alerting.settings import AlertingSettings
from alerting.worker import AlertingWorker
from ingest.files.ledger import FileIngester
from ingest.files.watch import DropWatcher
from minewatch.clock import FrozenClock
from minewatch.registry import load_registry
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from simulators.files import FileOptions, FileStats, MineFiles, write_history
from simulators.scenario import load_scenario
from simulators.world import World
from tests.conftest import _create_db, _drop_db
from tests.e2e.servers import HOOK_SECRET, SMS_AUTH, http_inbox
from tests.e2e.test_integrity_scenario import (
    CO,
    CORNER,
    FACE,
    HEADING,
    HOOK_ENV,
    INTEGRITY,
    MINE,
    REGISTRY,
    RELAY,
    RETURN,
    SCENARIO,
    SMS_ENV,
    STATION_2,
    minutes,
    routing_yaml,
)
from tests.rules.db.helpers import load_test_registry

pytestmark = [pytest.mark.integration]

DATA = Path(__file__).resolve().parent / "data"
HOURS = 6
TOLERANCE_MIN = 1.0
LOCAL = ZoneInfo("Asia/Shanghai")

Found = tuple[str, str, float, float | None]  # (rule, subject, start, end) in minutes after the run's start

# The simulated system's uploads (the simulators.files defaults, spelled out: the expectations below
# depend on them): a CDSS every 10 s with each point's latest reading, held while it is no older
# than the point's max_gap_s (300 s in the registry), an FZSS every 60 s on the whole minute with
# each station's latest state, a TJSJ every 5 min, a YCBJ at each abnormal episode's start and end.
OPTIONS = FileOptions(cdss_every_s=10, fzss_every_s=60, tjsj_every_s=300)

# (rule, subject, start, end) in minutes after the start of the run; None: still open. The MQTT
# test's list (tests/e2e/test_integrity_scenario.py, EXPECTED) where a CDSS carries the same
# information; the rows marked "differs" are moved by what the uploads are, by hand from the
# scenario and OPTIONS above:
# - a CDSS row is the point's latest reading held, not a new reading: a point that falls silent
#   keeps appearing with its last value until that value is older than max_gap_s (300 s), and only
#   then is left out. So the stored series of a silenced point stops 5 min after its last real
#   reading: its `offline` starts 5 min later than over MQTT (the silence is seen 5 min shorter)
#   and ends at the same time (the first snapshot after it reports again);
# - an FZSS carries each station's latest state at whole minutes: a station's report at hh:mm:ss
#   is stored at the next whole minute, so `station_fault` starts and ends up to a minute after
#   the station's own reports (which a station makes once a minute at its own phase);
# - everything else is judged on the 10 s snapshots of 30 s readings, within the MQTT test's
#   minute of tolerance: the same findings at the same times.
FILE_EXPECTED: list[Found] = [
    ("offline", HEADING, 55, 60),  # differs: unplugged 50-60, its last value held in CDSS until ~55
    ("stuck", CORNER, 60, 240),  # frozen for 3 h at its last natural value
    ("calibration_abuse", RETURN, 100, 333),  # 40 min + 2 min calibrating in the 08-16 shift
    ("offline", HEADING, 205, 210),  # differs: the F2 station's comm. loss 200-210, values held to ~205
    ("offline", CO, 205, 210),  # differs: likewise
    ("station_fault", STATION_2, 201, 211),  # differs: run state 1 for 10 min, seen at whole minutes
    ("implausible_pair", RETURN, 250.5, 295.5),  # the face held at 0.95 %: the return 0.3 % or more below
    ("offline", RELAY, 330, 345),  # differs: the relay reports nothing 325-345, its last value held to ~330
    ("power_off_failure", FACE, 331.5, None),  # the face reaches 1.5 % at ~330.5; no "off" by +60 s, nor later
    ("calibration_abuse", RETURN, 331, 333),  # the return calibrates during the face's exceedance
]


def matched(found: list[Found], expected: list[Found], tolerance: float = TOLERANCE_MIN) -> bool:
    """Each expected finding found once within the tolerance, and nothing else."""
    left = list(found)
    for rule, subject, a, b in expected:
        hit = [
            f
            for f in left
            if f[0] == rule
            and f[1] == subject
            and abs(f[2] - a) <= tolerance
            and ((b is None and f[3] is None) or (b is not None and f[3] is not None and abs(f[3] - b) <= tolerance))
        ]
        if len(hit) != 1:
            return False
        left.remove(hit[0])
    return not left


async def wait_for(what: str, probe: Callable[[], Awaitable[bool]], show: Callable[[], object], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last seen: {show()}")


def db_with(pg_dsn: str, registry: Path) -> Iterator[str]:
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    asyncio.run(load_test_registry(dsn, registry))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def integrity_db(pg_dsn: str) -> Iterator[str]:
    yield from db_with(pg_dsn, REGISTRY)


async def upload_and_ingest(dsn: str, files: MineFiles, drop: Path, clock: FrozenClock) -> FileStats:
    """Every upload of the run into a drop directory, then one pass of the real drop watcher over it
    (oldest first, definitions before data): every file ingested whole, not one record refused."""
    stats = await asyncio.to_thread(write_history, files, drop)
    ing = FileIngester(dsn, clock=clock)
    try:
        done = await DropWatcher(ing, drop, clock=clock).scan()
    finally:
        await ing.close()
    assert len(done) == stats.files and {s.state for s in done} == {"done"}
    assert sum(sum(s.rejected.values()) for s in done) == 0
    return stats


async def integrity_findings(conn: asyncpg.Connection, start: datetime) -> list[Found]:
    rows = await conn.fetch(
        "SELECT rule, subject, start_ts, end_ts FROM findings WHERE state <> 'superseded' AND rule = ANY($1::text[])",
        list(INTEGRITY),
    )
    return sorted(
        ((r["rule"], r["subject"], minutes(r["start_ts"], start) or 0.0, minutes(r["end_ts"], start)) for r in rows),
        key=lambda f: (f[2], f[0], f[1]),
    )


async def evidence_by_start(conn: asyncpg.Connection, start: datetime) -> Callable[[str, str, float], dict[str, Any]]:
    """The evidence of the live finding of (rule, subject) starting within the tolerance of a minute."""
    rows = await conn.fetch(
        "SELECT rule, subject, start_ts, evidence FROM findings WHERE state <> 'superseded' AND rule = ANY($1::text[])",
        list(INTEGRITY),
    )

    def of(rule: str, subject: str, at: float) -> dict[str, Any]:
        (hit,) = (
            json.loads(r["evidence"])
            for r in rows
            if (r["rule"], r["subject"]) == (rule, subject) and abs((minutes(r["start_ts"], start) or 0.0) - at) <= TOLERANCE_MIN
        )
        return hit  # type: ignore[no-any-return]

    return of


async def cases_at_the_county(dsn: str, conn: asyncpg.Connection, tmp_path: Path, at: datetime) -> None:
    """The real alerting worker (burst mode, FrozenClock) opens a case per live integrity finding, each at
    the county, and tells the county's webhook of every one."""
    findings = {
        int(r["id"])
        for r in await conn.fetch(
            "SELECT id FROM findings WHERE state <> 'superseded' AND rule = ANY($1::text[])", list(INTEGRITY)
        )
    }
    assert findings
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
        clock = FrozenClock(at)

        def worker() -> AlertingWorker:
            return AlertingWorker(
                dsn, settings, registry=CollectorRegistry(), clock=clock, environ={HOOK_ENV: HOOK_SECRET, SMS_ENV: SMS_AUTH}
            )

        await worker().run(burst=True)
        clock.advance(timedelta(minutes=2))  # past the grouping window
        await worker().run(burst=True)
        cases = await conn.fetch(
            "SELECT c.id, c.rule, c.level, f.id AS finding FROM cases c JOIN case_findings cf ON cf.case_id = c.id "
            "JOIN findings f ON f.id = cf.finding_id WHERE c.rule = ANY($1::text[])",
            list(INTEGRITY),
        )
        assert sorted(int(r["finding"]) for r in cases) == sorted(findings)
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


async def test_simulated_monitoring_faults_as_upload_files_become_county_cases_with_evidence(
    integrity_db: str, tmp_path: Path
) -> None:
    reg, _ = load_registry(REGISTRY)
    start = datetime.combine(
        datetime.now(UTC).astimezone(LOCAL).date() - timedelta(days=2), datetime.min.time().replace(hour=8), tzinfo=LOCAL
    ).astimezone(UTC)
    end = start + timedelta(hours=HOURS)
    files = MineFiles(World(reg, 7, start, end, load_scenario(SCENARIO, reg)), MINE, OPTIONS)
    # The rules' present: just after the data (nothing is silent yet at the end of the run).
    clock = FrozenClock(end + timedelta(seconds=20))
    conn = await asyncpg.connect(integrity_db)
    rules = RuleWorker(integrity_db, builtin_pack("default"), clock=clock, settings=RulesSettings(poll_s=0.2, clock_s=3_600))
    running = asyncio.create_task(rules.run())
    found: list[Found] = []
    try:
        stats = await upload_and_ingest(integrity_db, files, tmp_path / "drop", clock)
        # An FZSS every whole minute but the first (no station has reported yet at the run's start).
        assert stats.by_kind["YCBJ"] > 0 and stats.by_kind["FZSS"] == HOURS * 60 - 1

        async def evaluated() -> bool:
            nonlocal found
            if await conn.fetchval("SELECT count(*) FROM dirty_windows"):
                return False
            found = await integrity_findings(conn, start)
            return matched(found, FILE_EXPECTED)

        await wait_for("exactly the expected integrity findings", evaluated, lambda: found)
        rules.stop()
        await running

        evidence = await evidence_by_start(conn, start)
        # Each finding carries what a regulator needs to judge it without a database.
        stuck = evidence("stuck", CORNER, 60)
        # 3 h of snapshots every 10 s hold the frozen value: 1 080 rows, less up to one reading (3 snapshots)
        # at each end as the readings fall against the snapshots; more if a natural reading just before or
        # after the frozen span happens to show the same value (0.01 % steps), as over MQTT.
        assert stuck["witness"] in (FACE, RETURN, HEADING, CO) and 1_074 <= stuck["n_readings"] <= 1_110
        fault = evidence("station_fault", STATION_2, 201)
        assert fault["reported_state"] == 1 and fault["points"] == [HEADING, CO]
        pair = evidence("implausible_pair", RETURN, 250.5)
        assert (pair["upstream"], pair["downstream"]) == (FACE, RETURN) and pair["worst_difference"] > 0.3
        power = evidence("power_off_failure", FACE, 331.5)
        assert power["feed"] == RELAY and power["seen_feed_readings"] == 0 and power["last_feed_value"] is None
        assert power["readings"][FACE]
        # Unplugged at 50 min: 630 s between its last real reading before and its first after (21 slots of
        # 30 s), of which CDSS showed the last value for up to 300 s, each end rounded to a snapshot (< 10 s).
        offline = evidence("offline", HEADING, 55)
        assert offline["limit_s"] == 90 and 320 <= offline["seen_s"] <= 350

        await cases_at_the_county(integrity_db, conn, tmp_path, end + timedelta(seconds=30))
    finally:
        rules.stop()
        await running
        await conn.close()


DAY_REGISTRY = DATA / "registry_under_reporting.yaml"
DAY_SCENARIO = DATA / "under_reporting_day.yaml"
DAY_MINE = "149900000012"
DAY_FACE = f"{DAY_MINE}_01MN0001_T0001"
GRACE = timedelta(hours=2)  # rules.md §6: "its files had 2 h to arrive"
# Every point reports every 5 min (the sparse registry): a CDSS every 5 min, an FZSS and a TJSJ every 30 min
# (some 420 files for the day and the grace after it).
DAY_OPTIONS = FileOptions(cdss_every_s=300, fzss_every_s=1_800, tjsj_every_s=1_800)
# (rule, subject, start, end) in minutes after local midnight, by hand from the scenario: the day's three
# exceedances of the face (03:00, 10:00, 19:00, each to 1.2 % for 20 min) are all in the readings; the
# YCBJ reports those of 03:00 and 19:00 and leaves out the one of 10:00 (hide_alarm 09:50-10:20). One
# finding for the mine and the local day [00:00, 24:00), once the day's files had their 2 h.
DAY_EXPECTED: list[Found] = [("under_reporting", DAY_MINE, 0, 24 * 60)]
# The unreported exceedance: the face ramps from its natural level to 1.2 % over 10:00-10:05, so its first
# reading at or over 1.0 % (~10:04) comes within a reading period (5 min) of that.
HIDDEN_START_MIN = (10 * 60, 10 * 60 + 10)


@pytest.fixture
def day_db(pg_dsn: str) -> Iterator[str]:
    yield from db_with(pg_dsn, DAY_REGISTRY)


async def test_a_day_of_upload_files_whose_ycbj_leaves_out_one_of_three_exceedances_is_under_reporting(
    day_db: str, tmp_path: Path
) -> None:
    reg, _ = load_registry(DAY_REGISTRY)
    day = datetime.now(UTC).astimezone(LOCAL).date() - timedelta(days=3)
    d0 = datetime.combine(day, datetime.min.time(), tzinfo=LOCAL).astimezone(UTC)
    d1 = d0 + timedelta(days=1)  # Asia/Shanghai has no DST
    # The mine keeps uploading after midnight, through the grace: at its end nothing is silent.
    end = d1 + GRACE
    files = MineFiles(World(reg, 11, d0, end, load_scenario(DAY_SCENARIO, reg)), DAY_MINE, DAY_OPTIONS)
    # The rules' present: one second before the day's grace is over.
    clock = FrozenClock(end - timedelta(seconds=1))
    conn = await asyncpg.connect(day_db)
    rules = RuleWorker(day_db, builtin_pack("default"), clock=clock, settings=RulesSettings(poll_s=0.2, clock_s=3_600))
    running = asyncio.create_task(rules.run())
    found: list[Found] = []
    try:
        await upload_and_ingest(day_db, files, tmp_path / "drop", FrozenClock(end + timedelta(seconds=20)))

        async def evaluated() -> bool:
            nonlocal found
            if await conn.fetchval("SELECT count(*) FROM dirty_windows"):
                return False
            found = await integrity_findings(conn, d0)
            return not found

        # All stored and evaluated: the three exceedances are episodes of the face (the rules' own, from
        # the readings), the mine reported two of them, and nothing is judged yet.
        await wait_for("the day evaluated, no integrity finding yet", evaluated, lambda: found)
        rules.stop()
        await running
        episodes = await conn.fetch(
            "SELECT e.start_ts FROM episodes e JOIN points p ON p.id = e.point_id WHERE p.code = $1 ORDER BY e.start_ts",
            DAY_FACE,
        )
        assert [int(minutes(e["start_ts"], d0) or 0.0) // 60 for e in episodes] == [3, 10, 19]
        reported = await conn.fetch(
            "SELECT a.abnormal_code, a.started_at, a.ended_at FROM reported_abnormal a JOIN points p ON p.id = a.point_id "
            "WHERE p.code = $1 ORDER BY a.started_at",
            DAY_FACE,
        )
        assert [(r["abnormal_code"], int(minutes(r["started_at"], d0) or 0.0) // 60) for r in reported] == [
            ("001", 3),
            ("001", 19),
        ]
        assert all(r["ended_at"] is not None for r in reported)

        # One second before the grace is over, the clock-driven pass judges nothing ...
        await rules.clock_pass(conn)
        assert await integrity_findings(conn, d0) == []
        # ... at the end of the grace it finds the day's unreported exceedance, and only that.
        clock.advance(timedelta(seconds=1))
        assert await rules.clock_pass(conn)
        found = await integrity_findings(conn, d0)
        assert matched(found, DAY_EXPECTED), found
        row = await conn.fetchrow("SELECT level, evidence, updated_at FROM findings WHERE rule = 'under_reporting'")
        assert row is not None and row["level"] == "major"
        evidence = json.loads(row["evidence"])
        assert (evidence["day"], evidence["episodes"], evidence["reported"], evidence["points"]) == (
            day.isoformat(),
            3,
            2,
            [DAY_FACE],
        )
        (hidden,) = evidence["unreported"]
        start_min = minutes(datetime.fromisoformat(hidden["start"]), d0) or 0.0
        assert hidden["point"] == DAY_FACE and HIDDEN_START_MIN[0] <= start_min <= HIDDEN_START_MIN[1]
        assert hidden["peak"] == 1.2 and hidden["level"] == "alarm"
        # A second pass at the same clock writes nothing.
        assert not await rules.clock_pass(conn)
        assert await conn.fetchval("SELECT updated_at FROM findings WHERE rule = 'under_reporting'") == row["updated_at"]

        await cases_at_the_county(day_db, conn, tmp_path, end + timedelta(seconds=30))
    finally:
        rules.stop()
        await running
        await conn.close()
