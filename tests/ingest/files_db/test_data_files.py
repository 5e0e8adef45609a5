"""CDSS, FZSS, TJSJ and YCBJ files end to end into PostgreSQL: rows, dead letters with file and line, ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest

from minewatch.clock import FrozenClock
from tests.ingest.files_db.helpers import (
    MINE,
    NOW,
    P_FEED,
    P_T0,
    P_T1,
    S_FACE,
    S_SHAFT,
    body,
    dead_letters,
    execute,
    fetch,
    header,
    ingest,
    name,
    readings,
    utc,
)

pytestmark = pytest.mark.integration

T = "2024-05-14 13:35:00"  # 05:35 UTC


async def test_cdss_rows_stored_and_every_refused_record_dead_lettered_with_file_and_line(db: str) -> None:
    # A point whose code starts with this mine's code but is registered to another mine.
    await execute(db, "INSERT INTO points (mine_id, code, sensor_type, value_type, gas) "
                      "SELECT id, $1, '0001', 'MN', 'methane' FROM mines WHERE code = '140100000002'",
                  f"{MINE}_01MN0001_T0999")
    file = name("CDSS")
    records = [
        f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;{T}",  # line 2: stored
        f"{P_T1};甲烷;工作面;1.20;%CH4;1;{T}",  # 3: stored, alarm bit kept
        f"{MINE}_01MN0001_T9999;甲烷;工作面;0.10;%CH4;0;{T}",  # 4: unknown point
        f"{P_T0};甲烷;回风隅角;0.40;%CH4;0;2024-05-14 14:10:00",  # 5: 10 min ahead of the clock
        f"{P_T0};甲烷;回风隅角;abc;%CH4;0;{T}",  # 6: not a number
        f"{P_T0};甲烷;回风隅角;0.42;%CH4",  # 7: too few fields
        f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;{T}",  # 8: identical duplicate of line 2
        f"{P_T1};甲烷;工作面;1.30;%CH4;1;{T}",  # 9: same point and time as line 3, other value
        f"140100000002_01MN0001_T0003;甲烷;工作面;0.10;%CH4;0;{T}",  # 10: another mine's code
        f"{P_T0};甲烷;回风隅角;0.43;%CH4;70000;2024-05-14 13:35:10",  # 11: status beyond 16 bits
        f"{P_FEED};馈电;馈电;1;;0;{T}",  # 12: stored
        f"{MINE}_01MN0001_T0999;甲烷;工作面;0.10;%CH4;0;{T}",  # 13: registered to 140100000002
    ]
    summary = await ingest(db, file, body(*records))

    assert summary.state == "done"
    assert (summary.records, summary.stored, summary.duplicates) == (12, 3, 1)
    assert await readings(db, [P_T0, P_T1, P_FEED]) >= {
        (P_T0, utc("2024-05-14 05:35:00"), 0.42, 0),
        (P_T1, utc("2024-05-14 05:35:00"), 1.2, 1),
        (P_FEED, utc("2024-05-14 05:35:00"), 1.0, 0),
    }
    assert not await readings(db, [f"{MINE}_01MN0001_T0999"])
    expected = [(4, "unknown_point"), (5, "future_time"), (6, "bad_number"), (7, "field_count"),
                (9, "duplicate_conflict"), (10, "point_mine_mismatch"), (11, "bad_value"), (13, "mine_mismatch")]
    assert await dead_letters(db, file) == expected
    assert dict(summary.rejected) == {reason: 1 for _, reason in expected}
    # Kept whole: the record's text, the mine, the source.
    letter = (await fetch(db, "SELECT * FROM dead_letters WHERE file = $1 AND line = 4", file))[0]
    assert (letter["source"], letter["mine_code"], letter["topic"]) == ("file", MINE, None)
    assert letter["payload"] == records[2]
    conflict = (await fetch(db, "SELECT payload, detail FROM dead_letters WHERE file = $1 AND line = 9", file))[0]
    assert "1.3" in conflict["payload"] and "1.2" in conflict["detail"]
    # The rules worker is told which window changed.
    windows = await fetch(db, "SELECT d.min_ts, d.max_ts FROM dirty_windows d JOIN mines m ON m.id = d.mine_id "
                              "WHERE m.code = $1 AND d.kind = 'readings' AND d.min_ts = $2", MINE, utc("2024-05-14 05:35:00"))
    assert windows
    ledger = (await fetch(db, "SELECT * FROM file_ledger WHERE name = $1", file))[0]
    assert (ledger["state"], ledger["records"], ledger["done_ordinal"], ledger["stored"], ledger["duplicates"]) == (
        "done", 12, 12, 3, 1)


async def test_cdss_statuses_use_all_16_bits(db: str) -> None:
    """A status with bit 15 set is as valid in a file as over MQTT: stored (as the same 16 bits in
    the smallint), not a failed file."""
    statuses = [32767, 32768, 40000, 65535]
    file = name("CDSS")
    summary = await ingest(db, file, body(*(f"{P_T1};甲烷;工作面;0.21;%CH4;{s};2024-05-14 12:0{i}:00"
                                            for i, s in enumerate(statuses))))
    assert (summary.state, summary.stored, dict(summary.rejected)) == ("done", len(statuses), {})
    rows = await fetch(db, "SELECT r.status & 65535 AS bits FROM readings r JOIN points p ON p.id = r.point_id "
                           "WHERE p.code = $1 AND r.ts >= $2 AND r.ts < $3 ORDER BY r.ts", P_T1,
                       utc("2024-05-14 04:00:00"), utc("2024-05-14 04:04:00"))
    assert [r["bits"] for r in rows] == statuses


async def test_local_times_use_the_mines_zone(db: str) -> None:
    # A mine in another zone: its wall-clock times mean other instants.
    await execute(db, "UPDATE mines SET timezone = 'Asia/Urumqi' WHERE code = '140100000003'")
    point = "140100000003_01MN0001_T0003"
    file = name("CDSS", mine="140100000003")
    summary = await ingest(db, file, body(f"{point};甲烷;x;0.3;%CH4;0;2024-05-14 11:35:00", mine="140100000003"))
    assert summary.stored == 1
    assert await readings(db, [point]) == {(point, utc("2024-05-14 05:35:00"), 0.3, 0)}


async def test_fzss_keeps_raw_codes_and_the_mines_power_scheme_names_them(db: str) -> None:
    file = name("FZSS")
    data = body(
        f"{S_SHAFT};0;1;2024-05-14 13:36:00",
        f"{S_FACE};1;9;2024-05-14 13:36:00",
        f"{MINE}S0099;0;1;2024-05-14 13:36:00",  # line 4: unknown station
        f"{MINE}S0003;300;1;2024-05-14 13:36:00",  # line 5: run state out of range
        f"{MINE}S0004;x;1;2024-05-14 13:36:00",  # line 6: not a number
    )
    summary = await ingest(db, file, data)
    assert (summary.stored, dict(summary.rejected)) == (2, {"unknown_station": 1, "bad_value": 1, "bad_number": 1})
    assert await dead_letters(db, file) == [(4, "unknown_station"), (5, "bad_value"), (6, "bad_number")]

    async def named() -> set[tuple[str, int, str | None, int, str | None]]:
        rows = await fetch(db, "SELECT s.code, n.state, n.run_state, n.power, n.power_state FROM station_states_named n "
                               "JOIN stations s ON s.id = n.station_id WHERE n.ts = $1", utc("2024-05-14 05:36:00"))
        return {(r["code"], r["state"], r["run_state"], r["power"], r["power_state"]) for r in rows}

    assert await named() == {(S_SHAFT, 0, "ok", 1, "ac"), (S_FACE, 1, "comm_lost", 9, "unknown")}
    # The other scheme (1 DC / 2 AC / 9 fault) re-labels the same raw codes.
    await execute(db, "INSERT INTO mine_file_settings (mine_id, power_scheme) SELECT id, 'dc1' FROM mines WHERE code = $1",
                  MINE)
    try:
        assert await named() == {(S_SHAFT, 0, "ok", 1, "dc"), (S_FACE, 1, "comm_lost", 9, "fault")}
    finally:
        await execute(db, "DELETE FROM mine_file_settings")


async def test_tjsj_stored_as_reported_and_a_later_report_replaces_it(db: str) -> None:
    first, again = name("TJSJ"), name("TJSJ")
    interval = "2024-05-14 13:25:00;2024-05-14 13:30:00"
    await ingest(db, first, body(
        f"{P_T0};甲烷;回风隅角;%CH4;{interval};0.52;2024-05-14 13:27:13;0.31;2024-05-14 13:25:40;0.40;2024-05-14 13:30:00",
        f"{MINE}_01MN0001_T9999;甲烷;x;%CH4;{interval};0.5;;0.3;;0.4;2024-05-14 13:30:00",
    ))
    rows = await fetch(db, "SELECT * FROM reported_stats r JOIN points p ON p.id = r.point_id WHERE p.code = $1", P_T0)
    assert len(rows) == 1
    r = rows[0]
    assert (r["period_start"], r["period_end"], r["max"], r["max_at"], r["min"], r["avg"], r["unit"], r["file"], r["line"]) == (
        utc("2024-05-14 05:25:00"), utc("2024-05-14 05:30:00"), 0.52, utc("2024-05-14 05:27:13"), 0.31, 0.4, "%CH4", first, 2)
    assert await dead_letters(db, first) == [(3, "unknown_point")]
    # The same interval re-sent with a later data time (a corrected average) replaces it;
    # re-sent with the same data time it changes nothing.
    summary = await ingest(db, again, body(
        f"{P_T0};甲烷;回风隅角;%CH4;{interval};0.52;;0.31;;0.41;2024-05-14 13:31:00",
        f"{P_T0};甲烷;回风隅角;%CH4;{interval};0.52;;0.31;;0.99;2024-05-14 13:31:00",
    ))
    assert (summary.stored, summary.duplicates) == (1, 1)
    rows = await fetch(db, "SELECT avg, file, max_at FROM reported_stats r JOIN points p ON p.id = r.point_id "
                           "WHERE p.code = $1", P_T0)
    assert [(r["avg"], r["file"], r["max_at"]) for r in rows] == [(0.41, again, None)]


async def test_ycbj_ongoing_record_completed_by_a_later_report(db: str) -> None:
    ongoing, ended, stale = name("YCBJ"), name("YCBJ"), name("YCBJ")
    start = "2024-05-14 12:10:00"
    await ingest(db, ongoing, body(f"{P_T1};甲烷;工作面;%CH4;001;{start};;;;;;;;;;;2024-05-14 12:12:00"))
    await ingest(db, ended, body(
        f"{P_T1};甲烷;工作面;%CH4;001;{start};2024-05-14 12:25:30;1.32;2024-05-14 12:15:02;1.01;{start};1.18;"
        f"局部通风机停风;恢复通风，撤出人员;2024-05-14 12:40:00;张三;2024-05-14 12:40:00",
        f"{P_T1};甲烷;工作面;%CH4;099;{start};;;;;;;;;;;2024-05-14 12:40:00",  # a code not in the list: kept
    ))
    summary = await ingest(db, stale, body(f"{P_T1};甲烷;工作面;%CH4;001;{start};;;;;;;;;;;2024-05-14 12:12:00",
                                           upload="2024-05-14 13:50:00"))
    assert (summary.state, summary.stored, summary.duplicates) == ("done", 0, 1)  # older than stored: no change
    rows = await fetch(db, "SELECT * FROM reported_abnormal a JOIN points p ON p.id = a.point_id WHERE p.code = $1 "
                           "ORDER BY abnormal_code", P_T1)
    assert [(r["abnormal_code"], r["abnormal_type"], r["started_at"], r["ended_at"], r["max"], r["cause"], r["measures"],
             r["entered_by"], r["file"]) for r in rows] == [
        ("001", "over_limit_alarm", utc("2024-05-14 04:10:00"), utc("2024-05-14 04:25:30"), 1.32, "局部通风机停风",
         "恢复通风，撤出人员", "张三", ended),
        ("099", None, utc("2024-05-14 04:10:00"), None, None, None, None, None, ended),
    ]


async def test_gbk_file_and_crlf_lines(db: str) -> None:
    file = name("CDSS")
    text = "\r\n".join([header_gbk(), f"{P_T0};甲烷;回风隅角;0.55;%CH4;0;2024-05-14 13:40:00~", "||"])
    summary = await ingest(db, file, text.encode("gbk"))
    assert summary.stored == 1
    assert (P_T0, utc("2024-05-14 05:40:00"), 0.55, 0) in await readings(db, [P_T0])


def header_gbk() -> str:
    return f"{MINE};山西某某煤矿;KJ95X;安全监控系统;某公司;2026-12-31;2024-05-14 13:40:00~"


async def test_whole_file_refusals_are_dead_lettered_and_recorded(db: str) -> None:
    cases = {
        "unknown_mine": (name("CDSS", mine="999999999999"), body(f"999999999999_01MN0001_T0001;x;x;1;;0;{T}",
                                                                 mine="999999999999")),
        "bad_header": (name("CDSS"), f"{MINE};x;y~{P_T0};甲烷;x;0.1;%CH4;0;{T}~||".encode()),
        "mine_mismatch": (name("CDSS"), body(f"{P_T0};甲烷;x;0.1;%CH4;0;{T}", mine="140100000002")),
        "bad_encoding": (name("CDSS"), header(MINE).encode() + b"~\xff\xfe\xfa\xfb~||"),
        "bad_file_name": ("upload.txt", body()),
        "unknown_type": (name("ABCD"), body()),
    }
    for reason, (file, data) in cases.items():
        summary = await ingest(db, file, data)
        assert (summary.state, summary.reason) == ("rejected", reason), file
        assert await dead_letters(db, file) == [(None, reason)], file
        ledger = await fetch(db, "SELECT state, reason FROM file_ledger WHERE name = $1", file)
        assert [(r["state"], r["reason"]) for r in ledger] == [("quarantined", reason)]


async def test_now_is_the_injected_clock(db: str) -> None:
    # 13:41 local is 05:41 UTC: before NOW; with the clock an hour earlier it is the future.
    file = name("CDSS")
    summary = await ingest(db, file, body(f"{P_T1};甲烷;x;0.2;%CH4;0;2024-05-14 13:41:00"),
                           clock=FrozenClock(NOW - timedelta(hours=1)))
    assert dict(summary.rejected) == {"future_time": 1}
