"""Acceptance: (a) a simulated day of one mine through the file path and through MQTT stores the same rows
(and, run by the rules worker, the same findings); (b) the file source SIGKILLed in the middle of a
100 000-row CDSS file and restarted stores every row exactly once.

(a) compares equal data on purpose: the simulator's file mode samples each point every 10 s
(what a CDSS carries), and the MQTT side publishes exactly those snapshots (`snapshot_messages`),
so any difference is the ingest's. The day includes a threshold change (the file path learns it
from the CDDY the simulator uploads on change, the MQTT path from a registry load with the same
effective time), so equal findings also show that a CDDY versions thresholds as the registry does.
See docs/files.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from ingest.files import CdssRecord, Header, write_file
from ingest.files.ledger import FileIngester
from ingest.files.watch import DropWatcher
from minewatch.clock import SystemClock
from minewatch.db.registry_store import sync_registry
from minewatch.registry import Registry, Thresholds, load_registry
from simulators.files import FileOptions, MineFiles, Redefinition, single_mine, snapshot_messages, write_history
from simulators.publish import MqttSink
from simulators.scenario import parse_scenario
from simulators.world import World
from tests.conftest import SAMPLE_REGISTRY, _create_db, _drop_db, spawn_minewatch
from tests.ingest.files_db.helpers import MINE, fetch, readings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Rows = set[tuple[object, ...]]

RISE = f"{MINE}_01MN0001_T0003"  # upper corner methane: alarm 1.0, power-off 1.5 in the registry
LOWERED = Thresholds(alarm_hi=0.8, clear_hi=0.7, poweroff_hi=1.2, restore_hi=0.8)


def redefinition(end: datetime) -> Redefinition:
    """Six hours into the day (between two uploads), the upper corner's thresholds are lowered."""
    return Redefinition(at=end - timedelta(hours=18) + timedelta(seconds=4), point=RISE, thresholds=LOWERED)


def with_redefinition(reg: Registry, change: Redefinition) -> Registry:
    """The registry as an operator would load it after the change: new thresholds from `change.at`."""
    mine = reg.mine(MINE)
    points = tuple(p.model_copy(update={"thresholds": change.thresholds, "thresholds_effective_from": change.at})
                   if p.code == change.point else p for p in mine.points)
    mines = tuple(m.model_copy(update={"points": points}) if m.code == MINE else m for m in reg.mines)
    return reg.model_copy(update={"mines": mines})


def world(end: datetime) -> World:
    reg, _ = load_registry(SAMPLE_REGISTRY)
    reg = single_mine(reg, MINE)
    start = end - timedelta(days=1)
    # A methane rise (alarm, then power-off) and a station fault, so the rules have work too.
    scenario = parse_scenario({"events": [
        {"at": (start + timedelta(hours=9)).isoformat(), "point": RISE, "kind": "methane_rise",
         "to": 1.8, "duration": "6m", "ramp": "1m"},
        {"at": (start + timedelta(hours=15)).isoformat(), "station": f"{MINE}S0003", "kind": "station_down",
         "duration": "12m", "state": 2},
    ]}, registry=reg)
    return World(reg, 5, start, end, scenario)


async def stored(dsn: str) -> tuple[Rows, Rows, int]:
    conn = await asyncpg.connect(dsn)
    try:
        r = await conn.fetch("SELECT p.code, r.ts, r.value, r.status FROM readings r JOIN points p ON p.id = r.point_id")
        s = await conn.fetch("SELECT st.code, s.ts, s.state, s.power FROM station_states s "
                             "JOIN stations st ON st.id = s.station_id")
        dead = int(await conn.fetchval("SELECT count(*) FROM dead_letters"))
        return {tuple(x) for x in r}, {tuple(x) for x in s}, dead
    finally:
        await conn.close()


async def through_files(dsn: str, drop: Path, w: World, change: Redefinition) -> None:
    stats = await asyncio.to_thread(write_history, MineFiles(w, MINE, FileOptions(), [change]), drop)
    assert stats.files > 10_000
    assert stats.by_kind["CDDY"] == 2 and stats.by_kind["FZDY"] == 1  # on start, and on the change
    # A TJSJ every 5 min of the day (287 when the day does not start on a 5-minute mark).
    assert stats.by_kind["TJSJ"] in (287, 288) and stats.by_kind["YCBJ"] > 0
    ing = FileIngester(dsn, clock=SystemClock())
    try:
        done = await DropWatcher(ing, drop, clock=SystemClock()).scan()
    finally:
        await ing.close()
    assert len(done) == stats.files and {s.state for s in done} == {"done"}


def tail(log: Path) -> str:
    return log.read_text()[-2000:] if log.exists() else ""


def wait_connected(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while "connected to" not in tail(log):
        assert time.monotonic() < deadline and proc.poll() is None, tail(log)
        time.sleep(0.05)
    time.sleep(0.5)  # SUBACK


async def through_mqtt(dsn: str, url: str, prefix: str, w: World, log: Path, change: Redefinition) -> int:
    conn = await asyncpg.connect(dsn)  # the change, as a registry load with its effective time
    try:
        reg, _ = load_registry(SAMPLE_REGISTRY)
        await sync_registry(conn, with_redefinition(reg, change), checksum="acceptance", source="acceptance",
                            now=datetime.now(UTC))
    finally:
        await conn.close()
    proc = spawn_minewatch(["ingest", "--topic-prefix", prefix, "--client-id", f"accept-{prefix.strip('/')}",
                            "--burst", "4"], {"DATABASE_URL": dsn, "MQTT_URL": url}, log)
    try:
        await asyncio.to_thread(wait_connected, proc, log)

        def publish() -> int:
            sink = MqttSink(url, max_inflight=500, threaded=False)  # the simulators' history-mode publisher
            sink.connect()
            items = 0
            for m in snapshot_messages(MineFiles(w, MINE, FileOptions()), prefix):
                sink.send(m.topic, m.payload)
                items += m.items
            sink.close()
            return items

        items = await asyncio.to_thread(publish)
        assert await asyncio.to_thread(proc.wait, 180) == 0, tail(log)
        return items
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def two_paths(pg_dsn: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int]]:
    """One simulated day stored through the file source in one database and through MQTT in another."""
    tmp = tmp_path_factory.mktemp("acceptance")
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    files_db, mqtt_db = asyncio.run(_create_db(pg_dsn, registry=True)), asyncio.run(_create_db(pg_dsn, registry=True))
    try:
        asyncio.run(through_files(files_db, tmp / "drop", world(end), redefinition(end)))
        items = asyncio.run(through_mqtt(mqtt_db, mqtt_url, f"acc{os.getpid()}/", world(end), tmp / "ingest.log",
                                         redefinition(end)))
        yield files_db, mqtt_db, items
    finally:
        for dsn in (files_db, mqtt_db):
            asyncio.run(_drop_db(pg_dsn, dsn))


async def test_a_simulated_day_through_files_and_mqtt_stores_the_same_rows(two_paths: tuple[str, str, int]) -> None:
    files_db, mqtt_db, items = two_paths
    by_file, by_mqtt = await stored(files_db), await stored(mqtt_db)
    assert len(by_file[0]) > 300_000 and len(by_file[1]) > 1_000
    assert len(by_file[0]) + len(by_file[1]) == items  # every snapshot stored, once
    assert by_file[0] == by_mqtt[0]
    assert by_file[1] == by_mqtt[1]
    assert by_file[2] == by_mqtt[2] == 0  # nothing refused on either path
    # The scenario is in the data: the alarm and power-off bits of the methane rise.
    assert any(status & 3 == 3 for code, _, _, status in by_file[0] if code == RISE)


VERSIONS = ("SELECT t.effective_from, t.alarm_hi, t.clear_hi, t.poweroff_hi, t.restore_hi FROM point_thresholds t "
            "JOIN points p ON p.id = t.point_id WHERE p.code = $1 ORDER BY t.effective_from")


async def test_the_file_path_also_keeps_what_the_mine_reported_and_its_definitions(
        two_paths: tuple[str, str, int]) -> None:
    files_db, mqtt_db, _ = two_paths
    # TJSJ every 5 min for each analog point; YCBJ for the methane rise (over-limit 001), with its end.
    assert (await fetch(files_db, "SELECT count(DISTINCT period_end) AS n FROM reported_stats"))[0]["n"] in (287, 288)
    abnormal = await fetch(files_db, "SELECT a.abnormal_code, a.ended_at FROM reported_abnormal a "
                                     "JOIN points p ON p.id = a.point_id WHERE p.code = $1", RISE)
    assert any(r["abnormal_code"] == "001" and r["ended_at"] is not None for r in abnormal)
    # The CDDY uploaded on the change versioned the thresholds exactly as the registry load did.
    by_file = [tuple(r) for r in await fetch(files_db, VERSIONS, RISE)]
    assert by_file == [tuple(r) for r in await fetch(mqtt_db, VERSIONS, RISE)]
    reg, _ = load_registry(SAMPLE_REGISTRY)
    before = next(p for p in reg.mine(MINE).points if p.code == RISE).effective_thresholds()
    assert [v[1:] for v in by_file] == [(before.alarm_hi, before.clear_hi, before.poweroff_hi, before.restore_hi),
                                        (0.8, 0.7, 1.2, 0.8)]
    assert by_file[1][0].second == 4  # from the change's own time (hh:mm:04), not the upload's (hh:mm:10)
    every = ("SELECT p.code, t.effective_from, t.alarm_hi, t.clear_hi, t.poweroff_hi, t.restore_hi, t.alarm_lo, "
             "t.clear_lo, t.poweroff_lo, t.restore_lo FROM point_thresholds t JOIN points p ON p.id = t.point_id")
    assert {tuple(r) for r in await fetch(files_db, every)} == {tuple(r) for r in await fetch(mqtt_db, every)}


def _rules_worker(dsn: str, log: Path) -> None:
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        done = subprocess.run([sys.executable, "-m", "launcher", "rules", "worker", "--burst"], env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)
    assert done.returncode == 0, log.read_text()[-2000:]


async def test_rules_findings_agree_between_file_and_mqtt_paths(two_paths: tuple[str, str, int], tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("rules.worker") is None:
        pytest.skip("rules/worker.py (the rules worker's burst mode) is not in the tree yet")
    files_db, mqtt_db, _ = two_paths
    for dsn, label in ((files_db, "files"), (mqtt_db, "mqtt")):
        await asyncio.to_thread(_rules_worker, dsn, tmp_path / f"rules-{label}.log")
    # Everything the rule engine wrote, by content (ids differ between the two databases).
    queries = {
        "findings": "SELECT f.rule, m.code, f.subject, f.start_ts, f.end_ts, f.level, f.tier, f.state, f.ref_table "
                    "FROM findings f JOIN mines m ON m.id = f.mine_id",
        "episodes": "SELECT p.code, e.start_ts, e.end_ts, e.end_reason, e.peak, e.peak_ts, e.level, e.thresholds::text, "
                    "e.threshold_from FROM episodes e JOIN points p ON p.id = e.point_id",
        "events": "SELECT gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, tier FROM exceedance_events",
        "orders": "SELECT rule, pack, start_ts, min_end_ts, ladder_step, state FROM orders",
    }
    found: dict[str, Rows] = {}
    for what, query in queries.items():
        found[what] = {tuple(r) for r in await fetch(files_db, query)}
        assert found[what] == {tuple(r) for r in await fetch(mqtt_db, query)}, what
    assert found["findings"] and found["events"], "the scenario's methane rise must give findings"
    # The rise came after the change: judged by the lowered thresholds, in effect from the change.
    changed_at = [v[0] for v in await fetch(files_db, VERSIONS, RISE)][-1]
    rise = [e for e in found["episodes"] if e[0] == RISE]
    assert rise and all(e[8] == changed_at and json.loads(str(e[7]))["alarm_hi"] == 0.8 for e in rise), rise


def big_cdss(rows: int, end: datetime, unknown_every: int) -> tuple[str, bytes, set[tuple[object, ...]], list[int]]:
    reg, _ = load_registry(SAMPLE_REGISTRY)
    points = [p.code for p in reg.mine(MINE).points]
    t0 = end - timedelta(seconds=10 * (rows // len(points) + 1))
    records, expected, unknown_lines = [], set(), []
    for i in range(rows):
        when = t0 + timedelta(seconds=10 * (i // len(points)))
        point, value = points[i % len(points)], round((i % 997) / 1000, 3)
        if i % unknown_every == unknown_every - 1:
            point = f"{MINE}_01MN0001_T9{i % 1000:03d}"
            unknown_lines.append(i + 2)
        else:
            expected.add((point, when, value, 0))
        records.append(CdssRecord(point, "甲烷", "x", value, "%CH4", 0, when))
    name, data = write_file("CDSS", Header(MINE, "测试", None, None, None, None, end), records)
    return name, data, expected, unknown_lines


async def test_sigkill_in_the_middle_of_a_big_file_then_restart_stores_every_row_once(
        fresh_db: str, tmp_path: Path) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    name, data, expected, unknown_lines = big_cdss(100_000, end, unknown_every=10_000)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / name).write_bytes(data)
    env = {"DATABASE_URL": fresh_db}
    args = ["ingest-files", "--watch", str(drop), "--chunk-rows", "2000", "--poll-s", "0.2", "--lang", "en"]
    proc = spawn_minewatch(args, env, tmp_path / "first.log")
    conn = await asyncpg.connect(fresh_db)
    try:
        done = 0
        deadline = time.monotonic() + 60
        while not 10_000 <= done < 90_000:  # well inside the file
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
            done = await conn.fetchval("SELECT coalesce(max(done_ordinal), 0) FROM file_ledger WHERE name = $1", name)
            await asyncio.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        state, done = await conn.fetchrow("SELECT state, done_ordinal FROM file_ledger WHERE name = $1", name)
        partial = await conn.fetchval("SELECT count(*) FROM readings")
        assert state == "started" and 0 < partial < len(expected), (state, partial)
        # Taken into processing before it was read, not archived: not done.
        assert [p.name for p in (drop / ".minewatch-processing").glob("*/*")] == [name]

        again = spawn_minewatch([*args, "--once"], env, tmp_path / "second.log")
        assert again.wait(120) == 0, (tmp_path / "second.log").read_text()[-2000:]
        assert await readings(fresh_db) == expected
        assert await conn.fetchval("SELECT count(*) FROM readings") == len(expected)  # nothing twice
        lines = [r["line"] for r in await conn.fetch("SELECT line FROM dead_letters WHERE file = $1 ORDER BY line", name)]
        assert lines == unknown_lines  # each refused record once, across both runs
        # Resumed after the last committed chunk, not restarted: no row met twice (duplicates 0).
        row = await conn.fetchrow("SELECT state, attempts, stored, duplicates, records, done_ordinal FROM file_ledger "
                                  "WHERE name = $1", name)
        assert tuple(row) == ("done", 2, len(expected), 0, 100_000, 100_000)
        day = end.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y/%m/%d")
        assert (tmp_path / "drop.archive" / day / name).exists()
        assert not list((drop / ".minewatch-processing").iterdir())
    finally:
        await conn.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
