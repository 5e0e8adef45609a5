"""CDDY / FZDY files update the registry: points, stations, relations, threshold versions by data time; and
the unknown-point dead letters they resolve are re-processed automatically."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from minewatch.clock import FrozenClock
from minewatch.db.registry_store import SINCE_FOREVER
from minewatch.registry import default_thresholds
from tests.ingest.files_db.helpers import (
    MINE,
    NOW,
    P_T0,
    body,
    dead_letters,
    execute,
    fetch,
    ingest,
    name,
    new_mine,
    readings,
    utc,
)

pytestmark = pytest.mark.integration

_codes = itertools.count(10)


async def fresh_mine(db: str) -> str:
    """A registered mine with nothing defined yet, its code unique within the module's database."""
    code = f"6108210033{next(_codes):02d}"
    await new_mine(db, code)
    return code


def cddy(point: str, station: str, *, alarm: str = "1.00", clear: str = "0.90", poweroff: str = "1.50",
         restore: str = "1.00", relations: str = "", when: str = "2024-05-14 13:30:00", unit: str = "%CH4",
         location: str = "11301回风巷", kind: str = "MN", sensor: str = "0001") -> str:
    return (f"{point};01;{station};{sensor};{kind};{unit};4.00;0.00;{alarm};{clear};;;{poweroff};{restore};;;;;"
            f"{location};512345.12;4123456.78;1020.5;{relations};{when}")


def relay(point: str, station: str, when: str = "2024-05-14 13:30:00") -> str:
    return f"{point};01;{station};1009;KG;;;;;;;;;;;;有电;无电;11301断电器;;;;;{when}"


async def thresholds(db: str, point: str) -> list[tuple[datetime, float | None, float | None]]:
    rows = await fetch(db, "SELECT t.effective_from, t.alarm_hi, t.poweroff_hi FROM point_thresholds t "
                           "JOIN points p ON p.id = t.point_id WHERE p.code = $1 ORDER BY t.effective_from", point)
    return [(r["effective_from"], r["alarm_hi"], r["poweroff_hi"]) for r in rows]


async def test_cddy_defines_points_stations_relations_and_first_thresholds(db: str) -> None:
    mine = await fresh_mine(db)
    p1, p2, p3, station = f"{mine}01MN0001T0101", f"{mine}01KG1009T0102", f"{mine}01MN0001T0103", f"{mine}00101"
    file = name("CDDY", mine=mine)
    summary = await ingest(db, file, body(
        cddy(p1, station, relations=f"D-{p1}-甲烷断电:K-{p2}"),  # line 2: its target is defined below
        relay(p2, station),  # line 3
        cddy(p3, station, relations=f"D-{p3}-断电:K-{mine}01KG1009T0199"),  # line 4: target never defined
        cddy(f"{mine}01MN0001T0104", station).replace("4.00", "4.0a"),  # line 5: bad number
        mine=mine))

    assert summary.state == "done"
    assert summary.stored == 3  # definitions applied
    assert summary.extra["created"] == 3 and summary.extra["relations"] == 1
    assert await dead_letters(db, file) == [(4, "unknown_relation_point"), (5, "bad_number")]
    rows = await fetch(db, "SELECT p.code, p.sensor_type, p.value_type, p.gas, p.unit, p.range_low, p.range_high, p.location, "
                           "p.x, p.active, s.code AS station, m.code AS mine FROM points p JOIN stations s ON s.id = p.station_id "
                           "JOIN mines m ON m.id = p.mine_id WHERE m.code = $1 ORDER BY p.code", mine)
    assert sorted((r["code"], r["gas"], r["unit"], r["range_high"], r["location"], r["x"], r["station"], r["active"]) for r in rows) == [
        (p2, "poweroff_relay", "", None, "11301断电器", None, station, True),
        (p1, "methane", "%CH4", 4.0, "11301回风巷", 512345.12, station, True),
        (p3, "methane", "%CH4", 4.0, "11301回风巷", 512345.12, station, True),
    ]
    # The point's station did not exist: created bare, its location comes with the FZDY.
    assert [(r["location"]) for r in await fetch(db, "SELECT location FROM stations WHERE code = $1", station)] == [""]
    rel = await fetch(db, "SELECT a.code AS src, r.kind, b.code AS dst, r.name FROM point_relations r "
                          "JOIN points a ON a.id = r.point_id JOIN points b ON b.id = r.target_point_id WHERE a.code = ANY($1)",
                      [p1, p3])
    assert [(r["src"], r["kind"], r["dst"], r["name"]) for r in rel] == [(p1, "D", p2, "甲烷断电")]
    # A point's first thresholds apply to all its history.
    assert await thresholds(db, p1) == [(SINCE_FOREVER, 1.0, 1.5)]
    ledger = await fetch(db, "SELECT state, stored FROM file_ledger WHERE name = $1", file)
    assert [(r["state"], r["stored"]) for r in ledger] == [("done", 3)]


async def test_threshold_versions_follow_the_data_time(db: str) -> None:
    mine = await fresh_mine(db)
    point, station = f"{mine}01MN0001T0101", f"{mine}00101"
    clock = FrozenClock(datetime(2024, 5, 15, tzinfo=UTC))

    async def define(alarm: str, when: str, upload: str) -> int:
        # clear = alarm: a clear level above the alarm is refused (see the test below)
        s = await ingest(db, name("CDDY", mine=mine), body(cddy(point, station, alarm=alarm, clear=alarm, when=when),
                                                           mine=mine, upload=upload), clock=clock)
        assert s.state == "done"
        return s.extra["threshold_versions"]

    assert await define("1.00", "2024-05-14 08:00:00", "2024-05-14 08:00:01") == 1  # first: all history
    assert await define("0.80", "2024-05-14 15:00:00", "2024-05-14 15:00:01") == 1  # a change at 07:00 UTC
    assert await define("0.80", "2024-05-14 16:00:00", "2024-05-14 16:00:01") == 0  # same again: no version
    assert await define("0.90", "2024-05-14 14:00:00", "2024-05-14 16:30:00") == 1  # a late file, earlier change
    assert await define("1.00", "2024-05-14 10:00:00", "2024-05-14 16:40:00") == 0  # what applied then anyway
    assert await thresholds(db, point) == [
        (SINCE_FOREVER, 1.0, 1.5),
        (utc("2024-05-14 06:00:00"), 0.9, 1.5),
        (utc("2024-05-14 07:00:00"), 0.8, 1.5),
    ]


async def test_disordered_thresholds_are_a_dead_letter_not_a_repaired_version(db: str) -> None:
    """A CDDY record whose clear level lies above its alarm (or whose power-off lies inside the
    alarm band) is refused whole with its reason; nothing of it is applied, nothing repaired."""
    mine = await fresh_mine(db)
    good, clear_above, poweroff_inside, station = (f"{mine}01MN0001T0101", f"{mine}01MN0001T0102",
                                                   f"{mine}01MN0001T0103", f"{mine}00101")
    file = name("CDDY", mine=mine)
    summary = await ingest(db, file, body(
        cddy(good, station),  # line 2
        cddy(clear_above, station, alarm="0.80", clear="0.90"),  # line 3
        cddy(poweroff_inside, station, alarm="1.00", clear="1.00", poweroff="0.80", restore="0.80"),  # line 4
        mine=mine))
    assert summary.state == "done" and summary.stored == 1
    assert await dead_letters(db, file) == [(3, "thresholds_out_of_order"), (4, "thresholds_out_of_order")]
    details = [r["detail"] for r in await fetch(db, "SELECT detail FROM dead_letters WHERE file = $1 ORDER BY line", file)]
    assert clear_above in details[0] and "clear_hi=0.9 must be at or below alarm_hi=0.8" in details[0], details
    assert poweroff_inside in details[1] and "alarm_hi=1.0 must be at or below poweroff_hi=0.8" in details[1], details
    assert await fetch(db, "SELECT code FROM points WHERE code = ANY($1::text[])", [clear_above, poweroff_inside]) == []
    assert [r[1:] for r in await thresholds(db, good)] == [(1.0, 1.5)]


async def test_a_record_without_thresholds_gets_the_catalogue_default(db: str) -> None:
    """The same catalogue judges a point without thresholds whichever path defined it: a CDDY
    methane point of unknown location type gets the registry's default, not no thresholds."""
    mine = await fresh_mine(db)
    point, station = f"{mine}01MN0001T0101", f"{mine}00101"
    summary = await ingest(db, name("CDDY", mine=mine), body(
        cddy(point, station, alarm="", clear="", poweroff="", restore=""), mine=mine))
    assert summary.state == "done" and summary.extra["threshold_versions"] == 1
    t = default_thresholds("methane", "other")
    assert await thresholds(db, point) == [(SINCE_FOREVER, t.alarm_hi, t.poweroff_hi)]


async def test_registry_point_keeps_its_past_thresholds(db: str) -> None:
    # A point of the registry file (first version since ever): the same thresholds add
    # nothing, new ones apply from the data time on.
    station = f"{MINE}S0002"
    same = await ingest(db, name("CDDY"), body(cddy(P_T0, station, alarm="1.0", clear="1.0", restore="1.0")))
    assert same.extra["threshold_versions"] == 0
    changed = await ingest(db, name("CDDY"), body(cddy(P_T0, station, alarm="0.8", clear="0.8", restore="0.8",
                                                       when="2024-05-14 13:00:00"), upload="2024-05-14 13:00:05"))
    assert changed.extra["threshold_versions"] == 1
    rows = await thresholds(db, P_T0)
    assert rows[0] == (SINCE_FOREVER, 1.0, 1.5)
    assert rows[-1] == (utc("2024-05-14 05:00:00"), 0.8, 1.5)


async def test_a_point_of_another_mine_is_not_redefined(db: str) -> None:
    mine = await fresh_mine(db)
    point = f"{mine}01MN0001T0101"
    await execute(db, "INSERT INTO points (mine_id, code, sensor_type, value_type, gas) "
                      "SELECT id, $1, '0001', 'MN', 'methane' FROM mines WHERE code = '140100000002'", point)
    file = name("CDDY", mine=mine)
    summary = await ingest(db, file, body(cddy(point, f"{mine}00101"), mine=mine))
    assert summary.stored == 0
    assert await dead_letters(db, file) == [(2, "mine_mismatch")]
    owner = await fetch(db, "SELECT m.code FROM points p JOIN mines m ON m.id = p.mine_id WHERE p.code = $1", point)
    assert [r["code"] for r in owner] == ["140100000002"]


async def test_fzdy_defines_stations(db: str) -> None:
    mine = await fresh_mine(db)
    file = name("FZDY", mine=mine)
    summary = await ingest(db, file, body(
        f"{mine}00101;11301回风巷分站;512340.10;4123450.20;1015.3;2024-05-14 13:30:00",
        f"{mine}00102;中央变电所分站;512400.00;4123500.00;2024-05-14 13:30:00",  # no Z (some sources)
        f"{mine}00103;分站;1;x;3;2024-05-14 13:30:00",  # line 4: bad number
        f"{MINE}S0002;别人的分站;1;2;3;2024-05-14 13:30:00",  # line 5: another mine's code
        mine=mine))
    assert (summary.stored, summary.extra["created"]) == (2, 2)
    assert await dead_letters(db, file) == [(4, "bad_number"), (5, "station_mine_mismatch")]
    rows = await fetch(db, "SELECT code, location, x, z FROM stations WHERE code LIKE $1 || '%' ORDER BY code", mine)
    assert [(r["code"], r["location"], r["x"], r["z"]) for r in rows] == [
        (f"{mine}00101", "11301回风巷分站", 512340.10, 1015.3),
        (f"{mine}00102", "中央变电所分站", 512400.0, None),
    ]


async def test_unknown_points_are_reprocessed_once_their_cddy_arrives(db: str) -> None:
    mine = await fresh_mine(db)
    p1, p2, later, station = f"{mine}01MN0001T0101", f"{mine}01KG1009T0102", f"{mine}01MN0001T0109", f"{mine}00101"
    cdss = name("CDSS", mine=mine)
    await ingest(db, cdss, body(
        f"{p1};甲烷;回风巷;0.42;%CH4;0;2024-05-14 13:35:00",
        f"{p2};断电器;x;1;;0;2024-05-14 13:35:00",
        f"{later};甲烷;x;0.30;%CH4;0;2024-05-14 13:35:00",  # still unknown after the CDDY
        mine=mine))
    tjsj = name("TJSJ", mine=mine)
    await ingest(db, tjsj, body(f"{p1};甲烷;x;%CH4;2024-05-14 13:25:00;2024-05-14 13:30:00;0.5;;0.3;;0.4;"
                                "2024-05-14 13:30:00", mine=mine))
    fzss = name("FZSS", mine=mine)
    await ingest(db, fzss, body(f"{station};0;1;2024-05-14 13:35:00", mine=mine))
    # An item that came over MQTT for the same point, dead-lettered by the MQTT ingest.
    item = msgspec.json.encode({"point": p1, "ts": "2024-05-14T13:35:10+08:00", "value": 0.44, "status": 0}).decode()
    await execute(db, "INSERT INTO dead_letters (received_at, source, topic, mine_code, reason, payload) "
                      "VALUES ($1, 'mqtt', $2, $3, 'unknown_point', $4)", NOW, f"mines/{mine}/safety", mine, item)
    assert await dead_letters(db, cdss) == [(2, "unknown_point"), (3, "unknown_point"), (4, "unknown_point")]
    assert not await readings(db, [p1, p2])

    summary = await ingest(db, name("CDDY", mine=mine), body(cddy(p1, station), relay(p2, station), mine=mine))

    assert summary.extra["reprocessed"] == 5  # 2 CDSS, 1 TJSJ, 1 MQTT item and the FZSS (the CDDY made the station)
    assert summary.extra["still_unknown"] == 1
    assert await readings(db, [p1, p2]) == {
        (p1, utc("2024-05-14 05:35:00"), 0.42, 0),
        (p2, utc("2024-05-14 05:35:00"), 1.0, 0),
        (p1, utc("2024-05-14 05:35:10"), 0.44, 0),
    }
    marks = await fetch(db, "SELECT file, line, source, reprocessed_at FROM dead_letters WHERE mine_code = $1 "
                            "ORDER BY id", mine)
    assert [(r["file"], r["line"], r["reprocessed_at"] is not None) for r in marks] == [
        (cdss, 2, True), (cdss, 3, True), (cdss, 4, False), (tjsj, 2, True), (fzss, 2, True), (None, None, True)]
    stats = await fetch(db, "SELECT file, line, avg FROM reported_stats r JOIN points p ON p.id = r.point_id "
                            "WHERE p.code = $1", p1)
    assert [(r["file"], r["line"], r["avg"]) for r in stats] == [(tjsj, 2, 0.4)]
    states = await fetch(db, "SELECT s.state, s.power FROM station_states s JOIN stations st ON st.id = s.station_id "
                             "WHERE st.code = $1", station)
    assert [(r["state"], r["power"]) for r in states] == [(0, 1)]

    # The last one is resolved by its own definition later; nothing is stored twice.
    again = await ingest(db, name("CDDY", mine=mine), body(cddy(later, station), mine=mine,
                                                           upload="2024-05-14 13:40:00"))
    assert (again.extra["reprocessed"], again.extra["still_unknown"]) == (1, 0)
    assert len(await readings(db, [p1, p2, later])) == 4


async def test_a_reprocessed_letter_failing_for_another_reason_is_rerouted(db: str) -> None:
    mine = await fresh_mine(db)
    point, station = f"{mine}01MN0001T0101", f"{mine}00101"
    cdss = name("CDSS", mine=mine)
    await ingest(db, cdss, body(f"{point};甲烷;x;0.42;%CH4;0;2024-05-14 13:35:00", mine=mine))
    # By the time its definition arrives the point belongs to another mine's registry entry.
    await execute(db, "INSERT INTO points (mine_id, code, sensor_type, value_type, gas) "
                      "SELECT id, $1, '0001', 'MN', 'methane' FROM mines WHERE code = '140100000002'", point)
    summary = await ingest(db, name("CDDY", mine=mine), body(cddy(f"{mine}01MN0001T0102", station), mine=mine),
                           clock=FrozenClock(NOW + timedelta(minutes=1)))
    assert summary.extra["reprocessed"] == 1
    assert await dead_letters(db, cdss) == [(2, "unknown_point"), (2, "mine_mismatch")]
