"""Every way a hand-written file of every type can be malformed, and where each refused record ends up.

Acceptance of the upload-file issue: every rejected record is in `dead_letters` with its
file, its line and its reason (plus the record's text as payload, the mine and
`source = file`), while its good neighbours are stored. One file per type below carries one
record per reason that type can meet (parser, registry checks, storage); the last test
checks that, together with the whole-file refusals, these tables exercise every documented
reason, so a reason added later without a test here fails.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import timedelta

import pytest

import ingest.files.ledger as ledger_module
from ingest.files import RECORD_ERROR_REASONS
from ingest.files.source import FILE_REASONS, NOT_REGULAR, UNKNOWN_RELATION_POINT
from ingest.validate import (
    BAD_VALUE,
    DUPLICATE_CONFLICT,
    FUTURE_TIME,
    MINE_MISMATCH,
    TOO_LARGE,
    UNKNOWN_POINT,
    UNKNOWN_STATION,
    UNPROCESSABLE,
)
from minewatch.clock import FrozenClock
from tests.ingest.files_db.helpers import (
    MINE,
    NOW,
    P_T0,
    P_T1,
    S_FACE,
    S_SHAFT,
    body,
    execute,
    fetch,
    header,
    ingest,
    ingester,
    name,
    new_mine,
    readings,
    utc,
)

pytestmark = pytest.mark.integration

T = "2024-05-14 13:35:00"  # 05:35 UTC, before the tests' clock (NOW, 14:00 local)
FUTURE = "2024-05-14 14:10:00"  # 10 min after NOW: beyond the 5 min tolerance
OTHER = "140100000002"  # another coal mine of the sample registry
LONG_POINT = f"{MINE}_01MN0001_T" + "9" * 20  # 43 > 28 characters
FOREIGN_POINT = f"{MINE}_01MN0001_T0998"  # starts with MINE's code, registered to OTHER (fixture)
FOREIGN_STATION = f"{MINE}S0998"  # likewise

# (expected line, expected reason or None for a stored record, record text). Lines start at
# 2 (the header is line 1); the unterminated record is appended after the last `~`.
Case = tuple[int, str | None, str]


def numbered(*records: tuple[str | None, str]) -> list[Case]:
    return [(i + 2, reason, text) for i, (reason, text) in enumerate(records)]


CDSS = numbered(
    (None, f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;{T}"),
    ("field_count", "garbage"),
    ("missing_field", f"{P_T0};甲烷;回风隅角;;%CH4;0;{T}"),
    ("missing_field", f";甲烷;回风隅角;0.42;%CH4;0;{T}"),
    ("bad_number", f"{P_T0};甲烷;回风隅角;0,42;%CH4;0;{T}"),
    ("bad_number", f"{P_T0};甲烷;回风隅角;NaN;%CH4;0;{T}"),
    ("bad_time", f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;2024-05-14 25:00:00"),
    ("bad_time", f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;2024/05/14 13:35:00"),
    ("bad_status", f"{P_T0};甲烷;回风隅角;0.42;%CH4;-1;{T}"),
    ("bad_status", f"{P_T0};甲烷;回风隅角;0.42;%CH4;报警;{T}"),
    ("point_code_too_long", f"{LONG_POINT};甲烷;回风隅角;0.42;%CH4;0;{T}"),
    ("point_mine_mismatch", f"{OTHER}_01MN0001_T0003;甲烷;回风隅角;0.42;%CH4;0;{T}"),
    (UNKNOWN_POINT, f"{MINE}_01MN0001_T9998;甲烷;回风隅角;0.42;%CH4;0;{T}"),
    (MINE_MISMATCH, f"{FOREIGN_POINT};甲烷;回风隅角;0.42;%CH4;0;{T}"),
    (FUTURE_TIME, f"{P_T1};甲烷;工作面;0.42;%CH4;0;{FUTURE}"),
    (BAD_VALUE, f"{P_T1};甲烷;工作面;0.42;%CH4;70000;{T}"),
    (DUPLICATE_CONFLICT, f"{P_T0};甲烷;回风隅角;0.99;%CH4;0;{T}"),  # same point and time as line 2
    (None, f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;{T}"),  # identical duplicate: counted, not a dead letter
    (None, f"{P_T1} ; 甲烷 ; 工作面 ; 0.51 ; %CH4 ; 1 ; {T} ;"),  # blanks and a stray `;` are tolerated
)
CDSS_CUT = f"{P_T1};甲烷;工作面;0.50;%CH4;0;2024-05-14 13:35:10"  # after the last `~`: unterminated

FZSS = numbered(
    (None, f"{S_SHAFT};0;1;{T}"),
    ("field_count", f"{S_SHAFT};0;1"),
    ("missing_field", f"{S_SHAFT};;1;{T}"),
    ("bad_number", f"{S_SHAFT};x;1;{T}"),
    ("bad_time", f"{S_SHAFT};0;1;2024-05-14"),
    ("station_mine_mismatch", f"{OTHER}S0001;0;1;{T}"),
    (UNKNOWN_STATION, f"{MINE}S0099;0;1;{T}"),
    (MINE_MISMATCH, f"{FOREIGN_STATION};0;1;{T}"),
    (FUTURE_TIME, f"{S_FACE};0;1;{FUTURE}"),
    (BAD_VALUE, f"{S_FACE};0;300;{T}"),
    (DUPLICATE_CONFLICT, f"{S_SHAFT};2;1;{T}"),  # same station and time as line 2
    (None, f"{S_FACE};0;;{T}"),  # the power state is optional
)
FZSS_CUT = f"{S_FACE};1;1;2024-05-14 13:36:00"

_IV = f"{T};2024-05-14 13:40:00"  # a TJSJ interval
TJSJ = numbered(
    (None, f"{P_T0};甲烷;回风隅角;%CH4;{_IV};0.52;{T};0.31;{T};0.40;2024-05-14 13:40:00"),
    (None, f"{P_T1};甲烷;工作面;%CH4;{_IV};;;;;;2024-05-14 13:40:00"),  # optional statistics empty
    ("field_count", f"{P_T0};甲烷;回风隅角;%CH4;{_IV};0.52;{T};0.31;{T};0.40"),
    ("missing_field", f"{P_T0};甲烷;回风隅角;%CH4;;2024-05-14 13:40:00;0.5;;0.3;;0.4;2024-05-14 13:40:00"),
    ("bad_number", f"{P_T0};甲烷;回风隅角;%CH4;{_IV};零点五;;0.3;;0.4;2024-05-14 13:40:00"),
    ("bad_time", f"{P_T0};甲烷;回风隅角;%CH4;{_IV};0.5;13:37:00;0.3;;0.4;2024-05-14 13:40:00"),
    ("point_code_too_long", f"{LONG_POINT};甲烷;x;%CH4;{_IV};0.5;;0.3;;0.4;2024-05-14 13:40:00"),
    ("point_mine_mismatch", f"{OTHER}_01MN0001_T0003;甲烷;x;%CH4;{_IV};0.5;;0.3;;0.4;2024-05-14 13:40:00"),
    (UNKNOWN_POINT, f"{MINE}_01MN0001_T9998;甲烷;x;%CH4;{_IV};0.5;;0.3;;0.4;2024-05-14 13:40:00"),
    (MINE_MISMATCH, f"{FOREIGN_POINT};甲烷;x;%CH4;{_IV};0.5;;0.3;;0.4;2024-05-14 13:40:00"),
    (FUTURE_TIME, f"{P_T0};甲烷;回风隅角;%CH4;2024-05-14 14:05:00;{FUTURE};0.5;;0.3;;0.4;{FUTURE}"),
)
TJSJ_CUT = f"{P_T0};甲烷;回风隅角;%CH4;{_IV};0.52;;0.31;;0.40;2024-05-14 13:41:00"

_S = "2024-05-14 12:10:00"  # a YCBJ start
_E = "2024-05-14 12:40:00"  # entry and data time
YCBJ = numbered(
    (None, f"{P_T1};甲烷;工作面;%CH4;001;{_S};{T};1.32;{_S};1.01;{_S};1.18;停风;撤人;{_E};张三;{_E}"),
    (None, f"{P_T0};甲烷;回风隅角;%CH4;002;{_S};;;;;;;;;;;{_E}"),  # ongoing: every optional field empty
    ("field_count", f"{P_T0};甲烷;回风隅角;%CH4;001;{_S};;;;;;;;;;{_E}"),
    ("missing_field", f"{P_T0};甲烷;回风隅角;%CH4;;{_S};;;;;;;;;;;{_E}"),  # no abnormal type
    ("missing_field", f"{P_T0};甲烷;回风隅角;%CH4;003;;;;;;;;;;;;{_E}"),  # no start
    ("bad_number", f"{P_T0};甲烷;回风隅角;%CH4;001;{_S};;1..2;;;;;;;;;{_E}"),
    ("bad_time", f"{P_T0};甲烷;回风隅角;%CH4;001;{_S};;;;;;;;;昨天;;{_E}"),
    ("point_code_too_long", f"{LONG_POINT};甲烷;x;%CH4;001;{_S};;;;;;;;;;;{_E}"),
    ("point_mine_mismatch", f"{OTHER}_01MN0001_T0003;甲烷;x;%CH4;001;{_S};;;;;;;;;;;{_E}"),
    (UNKNOWN_POINT, f"{MINE}_01MN0001_T9998;甲烷;x;%CH4;001;{_S};;;;;;;;;;;{_E}"),
    (MINE_MISMATCH, f"{FOREIGN_POINT};甲烷;x;%CH4;001;{_S};;;;;;;;;;;{_E}"),
    (FUTURE_TIME, f"{P_T0};甲烷;回风隅角;%CH4;004;{_S};;;;;;;;;;;{FUTURE}"),
)
YCBJ_CUT = f"{P_T0};甲烷;回风隅角;%CH4;007;{_S};;;;;;;;;;;{_E}"

# CDDY / FZDY go to a mine of their own (DEF, registered bare), so the sample registry stays as it is.
DEF = "610821003399"
DEF_OTHER = "610821003398"  # registered too; owns a point and a station whose codes start with DEF
P1, P2, RELAY, STATION = f"{DEF}01MN0001T0101", f"{DEF}01MN0001T0102", f"{DEF}01KG1009T0103", f"{DEF}00101"


def cddy(point: str, *, station: str = STATION, relations: str = "", when: str = T, high: str = "4.00",
         sensor: str = "0001") -> str:
    return (f"{point};01;{station};{sensor};MN;%CH4;{high};0.00;1.00;0.90;;;1.50;1.00;;;;;11301回风巷;"
            f"512345.12;4123456.78;1020.5;{relations};{when}")


CDDY = numbered(
    (None, f"{RELAY};01;{STATION};1009;KG;;;;;;;;;;;;有电;无电;11301断电器;;;;;{T}"),
    (None, cddy(P1, relations=f"D-{P1}-甲烷断电:K-{RELAY}")),
    ("field_count", cddy(P2) + ";"  + T),
    ("missing_field", cddy(P2, sensor="")),
    ("bad_number", cddy(P2, high="4.0a")),
    ("bad_time", cddy(P2, when="2024-02-30 00:00:00")),
    ("bad_relations", cddy(P2, relations=f"D-{P2}-断电")),  # no `:Y-<point>` part
    ("bad_relations", cddy(P2, relations=f"Q-{P2}-断电:K-{RELAY}")),  # Q is not a relation kind
    ("point_code_too_long", cddy(f"{DEF}01MN0001T" + "1" * 20)),
    ("point_mine_mismatch", cddy(f"{DEF_OTHER}01MN0001T0101")),
    ("station_mine_mismatch", cddy(P2, station=f"{DEF_OTHER}00101")),
    (MINE_MISMATCH, cddy(f"{DEF}01MN0001T0998")),  # registered to DEF_OTHER (fixture)
    (MINE_MISMATCH, cddy(P2, station=f"{DEF}00998")),  # its station is DEF_OTHER's
    (FUTURE_TIME, cddy(P2, when=FUTURE)),
    (UNKNOWN_RELATION_POINT, cddy(P2, relations=f"D-{P2}-断电:K-{DEF}01KG1009T0199")),  # P2 itself is applied
)
CDDY_CUT = cddy(f"{DEF}01MN0001T0104")

FZDY = numbered(
    (None, f"{STATION};11301分站;512345.1;4123456.7;1020.5;{T}"),
    (None, f"{DEF}00102;11302分站;512345.1;4123456.7;{T}"),  # no Z, as some sources write it
    ("field_count", f"{DEF}00103;11303分站;1;2;3;4;{T}"),
    ("missing_field", f";11303分站;1;2;3;{T}"),
    ("bad_number", f"{DEF}00103;11303分站;东;2;3;{T}"),
    ("bad_time", f"{DEF}00103;11303分站;1;2;3;2024-05-14 13:35"),
    ("station_mine_mismatch", f"{DEF_OTHER}00103;11303分站;1;2;3;{T}"),
    (MINE_MISMATCH, f"{DEF}00998;借用分站;1;2;3;{T}"),  # registered to DEF_OTHER (fixture)
    (FUTURE_TIME, f"{DEF}00104;11304分站;1;2;3;{FUTURE}"),
)
FZDY_CUT = f"{DEF}00105;11305分站;1;2;3;{T}"

TABLES: dict[str, tuple[str, list[Case], str]] = {
    "CDSS": (MINE, CDSS, CDSS_CUT),
    "FZSS": (MINE, FZSS, FZSS_CUT),
    "TJSJ": (MINE, TJSJ, TJSJ_CUT),
    "YCBJ": (MINE, YCBJ, YCBJ_CUT),
    "FZDY": (DEF, FZDY, FZDY_CUT),  # before CDDY: the CDDY's points name its stations
    "CDDY": (DEF, CDDY, CDDY_CUT),
}

_stamps = itertools.count(1)


def file_of(kind: str, newline: str = "\n", encoding: str = "utf-8") -> tuple[str, bytes, list[Case]]:
    """The type's file (header, the records, the unterminated one, `||`) and the expected rows."""
    mine, cases, cut = TABLES[kind]
    last = cases[-1][0] + (1 if newline else 0)
    expected = [*cases, (last if newline else 1, "unterminated_record", cut)]
    if not newline:
        expected = [(1, reason, text) for _, reason, text in expected]
    lines = [header(mine), *(text for _, _, text in cases)]
    data = ("".join(f"{r}~{newline}" for r in lines) + f"{cut}{newline}||").encode(encoding)
    return name(kind, mine=mine, stamp=f"2024051413{next(_stamps):02d}00"), data, expected


@pytest.fixture(scope="module")
def setup(db: str) -> str:
    """The sample registry, plus the bare mines DEF / DEF_OTHER and the foreign codes the cases name."""
    asyncio.run(_setup(db))
    return db


async def _setup(db: str) -> None:
    await new_mine(db, DEF)
    other_id = await new_mine(db, DEF_OTHER)
    await execute(db, "INSERT INTO points (mine_id, code, sensor_type, value_type, gas) SELECT id, $1, '0001', 'MN', "
                      "'methane' FROM mines WHERE code = $2", FOREIGN_POINT, OTHER)
    await execute(db, "INSERT INTO stations (mine_id, code) SELECT id, $1 FROM mines WHERE code = $2", FOREIGN_STATION, OTHER)
    await execute(db, "INSERT INTO stations (mine_id, code) VALUES ($1, $2)", other_id, f"{DEF}00998")
    await execute(db, "INSERT INTO points (mine_id, code, sensor_type, value_type, gas) VALUES ($1, $2, '0001', 'MN', "
                      "'methane')", other_id, f"{DEF}01MN0001T0998")


async def letters(db: str, file: str) -> list[tuple[int | None, str, str, str | None, str | None, str]]:
    rows = await fetch(db, "SELECT line, reason, payload, mine_code, topic, source, detail FROM dead_letters "
                           "WHERE file = $1 ORDER BY line NULLS FIRST, id", file)
    for r in rows:
        assert r["detail"], r  # every dead letter says why, not only which reason
    return [(r["line"], r["reason"], r["payload"], r["mine_code"], r["topic"], r["source"]) for r in rows]


@pytest.mark.parametrize("kind", list(TABLES))
async def test_every_refused_record_is_a_dead_letter_with_file_line_and_reason(setup: str, kind: str) -> None:
    db = setup
    mine, _, _ = TABLES[kind]
    file, data, expected = file_of(kind)
    summary = await ingest(db, file, data)

    assert summary.state == "done", summary
    refused = [(line, reason, text) for line, reason, text in expected if reason is not None]
    assert await letters(db, file) == [(line, reason, text, mine, None, "file") for line, reason, text in refused]
    assert dict(summary.rejected) == dict(Counter(reason for _, reason, _ in refused))
    assert summary.records == len(expected)
    # The good neighbours are stored (a CDDY point whose relation is refused is applied too);
    # the ledger counts the file done, every record seen.
    good = len(expected) - len(refused) + sum(reason == UNKNOWN_RELATION_POINT for _, reason, _ in refused)
    assert summary.stored + summary.duplicates == good
    ledger = await fetch(db, "SELECT state, records, done_ordinal, stored FROM file_ledger WHERE name = $1", file)
    assert [tuple(r) for r in ledger] == [("done", len(expected), len(expected), summary.stored)]


async def test_what_the_good_records_stored(setup: str) -> None:
    db = setup  # runs after the parametrized test above (same module, same database)
    assert await readings(db, [P_T0, P_T1]) >= {(P_T0, utc("2024-05-14 05:35:00"), 0.42, 0),
                                                (P_T1, utc("2024-05-14 05:35:00"), 0.51, 1)}
    assert not await readings(db, [LONG_POINT, FOREIGN_POINT, f"{MINE}_01MN0001_T9998"])
    states = await fetch(db, "SELECT s.code, x.state, x.power FROM station_states x JOIN stations s ON s.id = x.station_id "
                             "WHERE x.ts = $1 ORDER BY s.code", utc("2024-05-14 05:35:00"))
    assert [tuple(r) for r in states] == [(S_SHAFT, 0, 1), (S_FACE, 0, None)]
    stats = await fetch(db, "SELECT p.code, r.max, r.avg FROM reported_stats r JOIN points p ON p.id = r.point_id "
                            "WHERE r.period_start = $1 ORDER BY p.code", utc("2024-05-14 05:35:00"))
    assert [tuple(r) for r in stats] == [(P_T0, 0.52, 0.40), (P_T1, None, None)]
    abnormal = await fetch(db, "SELECT p.code, a.abnormal_type, a.ended_at FROM reported_abnormal a "
                               "JOIN points p ON p.id = a.point_id WHERE a.started_at = $1 ORDER BY p.code",
                           utc("2024-05-14 04:10:00"))
    assert [tuple(r) for r in abnormal] == [(P_T0, "power_off_alarm", None),
                                            (P_T1, "over_limit_alarm", utc("2024-05-14 05:35:00"))]
    points = await fetch(db, "SELECT p.code FROM points p JOIN mines m ON m.id = p.mine_id WHERE m.code = $1 "
                             "ORDER BY p.code", DEF)
    assert [r["code"] for r in points] == sorted([P1, P2, RELAY])  # P2 from its last record (relation refused)
    stations = await fetch(db, "SELECT s.code FROM stations s JOIN mines m ON m.id = s.mine_id WHERE m.code = $1 "
                               "ORDER BY s.code", DEF)
    assert [r["code"] for r in stations] == [STATION, f"{DEF}00102"]


@pytest.mark.parametrize(("newline", "encoding"), [("", "utf-8"), ("\r\n", "gbk")])
async def test_lines_and_payloads_hold_in_other_layouts_and_encodings(setup: str, newline: str, encoding: str) -> None:
    # No newline after `~` (every record on line 1) and a CRLF GBK file: the lines follow the
    # layout, the payload is the record's text whatever the file's encoding.
    db = setup
    file, data, expected = file_of("CDSS", newline=newline, encoding=encoding)
    summary = await ingest(db, file, data)
    refused = [(line, reason, text) for line, reason, text in expected if reason is not None]
    assert summary.state == "done"
    # Sorted: records sharing a line are told apart by their ordinal, which dead letters do not keep.
    assert sorted(await letters(db, file)) == sorted((line, reason, text, MINE, None, "file")
                                                     for line, reason, text in refused)


async def test_a_file_postgresql_refuses_is_quarantined_as_unprocessable(setup: str) -> None:
    # A content error only the database sees (here a CHECK constraint on the reported
    # statistics) would fail the same way on every retry: the whole file is refused, once.
    db = setup
    file = name("TJSJ", stamp="20240514135900")
    data = body(f"{P_T0};甲烷;回风隅角;%CH4;2024-05-14 13:50:00;2024-05-14 13:55:00;-1;;-2;;-1.5;2024-05-14 13:55:00")
    await execute(db, "ALTER TABLE reported_stats ADD CONSTRAINT test_no_negative_max CHECK (max >= 0)")
    try:
        summary = await ingest(db, file, data)
    finally:
        await execute(db, "ALTER TABLE reported_stats DROP CONSTRAINT test_no_negative_max")
    assert (summary.state, summary.reason) == ("rejected", UNPROCESSABLE)
    assert summary.detail is not None and "CheckViolation" in summary.detail
    [letter] = await letters(db, file)
    assert letter[:2] == (None, UNPROCESSABLE) and letter[2] == data.decode()
    ledger = await fetch(db, "SELECT state, reason FROM file_ledger WHERE name = $1", file)
    assert [tuple(r) for r in ledger] == [("quarantined", UNPROCESSABLE)]


async def test_a_file_that_trips_a_bug_is_quarantined_and_the_next_file_goes_through(
        setup: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found the hard way: a status with bit 15 once overflowed the smallint in the driver, an
    # OverflowError no handler expected, which stopped the file worker on every retry. An
    # unexpected error now costs that one file, kept whole as a dead letter, like a message
    # the MQTT validator trips on.
    db = setup

    def broken(*args: object, **kwargs: object) -> None:
        raise OverflowError("value out of int16 range")

    file = name("CDSS", stamp="20240514135800")
    data = body(f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;{T}")
    ing = ingester(db)
    try:
        with monkeypatch.context() as m:
            m.setattr(ledger_module, "convert", broken)
            summary = await ing.ingest(file, data)
        assert (summary.state, summary.reason) == ("rejected", UNPROCESSABLE)
        assert summary.detail == "OverflowError: value out of int16 range"
        [letter] = await letters(db, file)
        assert letter[:2] == (None, UNPROCESSABLE) and letter[2] == data.decode()
        ledger = await fetch(db, "SELECT state, reason FROM file_ledger WHERE name = $1", file)
        assert [tuple(r) for r in ledger] == [("quarantined", UNPROCESSABLE)]
        # The same ingester goes on with the next file.
        after = await ing.ingest(name("CDSS", stamp="20240514135801"), body(f"{P_T1};甲烷;工作面;0.3;%CH4;0;2024-05-14 13:31:17"))
        assert (after.state, after.stored) == ("done", 1)
    finally:
        await ing.close()


def _whole_files() -> dict[str, tuple[str, bytes]]:
    good = f"{P_T0};甲烷;回风隅角;0.42;%CH4;0;{T}"
    return {
        "bad_file_name": (f"{MINE}_CDSS_2024051413.txt", body(good)),
        "unknown_type": (name("RYSS", stamp="20240514135001"), body(good)),
        "bad_encoding": (name("CDSS", stamp="20240514135002"), header().encode() + b"~\n\xff\xfe\x80;1~\n||"),
        "bad_header": (name("CDSS", stamp="20240514135003"), body(good).replace(b";2026-12-31;", b";31/12/2026;", 1)),
        MINE_MISMATCH: (name("CDSS", stamp="20240514135004"), body(good.replace(MINE, OTHER), mine=OTHER)),
        "unknown_mine": (name("CDSS", mine="999999999999", stamp="20240514135005"), body(mine="999999999999")),
        "incomplete": (name("CDSS", stamp="20240514135006"), body(good, end="")),  # cut in transfer: no `||`
        # One dead letter for the file, not 1 001: the default limit is 1 000 bad records.
        "too_many_errors": (name("CDSS", stamp="20240514135007"), body(*["x"] * 1001)),
    }


async def test_whole_file_refusals_are_one_dead_letter_each(setup: str) -> None:
    db = setup
    ing = ingester(db, FrozenClock(NOW))
    try:
        for reason, (file, data) in _whole_files().items():
            if reason == "incomplete":
                assert (await ing.ingest(file, data)).state == "incomplete"  # left alone first
                summary = await ing.quarantine_incomplete(file, data, waited=timedelta(minutes=11))
            else:
                summary = await ing.ingest(file, data)
            assert (summary.state, summary.reason) == ("rejected", reason), file
            assert [x[:2] for x in await letters(db, file)] == [(None, reason)], file
    finally:
        await ing.close()


def test_every_documented_reason_is_exercised_here() -> None:
    # Record reasons of the parser and of the registry checks, and whole-file reasons: each
    # has a case in this module (DUPLICATE_CONFLICT comes from storage, UNPROCESSABLE from it too).
    exercised = {reason for _, cases, _ in TABLES.values() for _, reason, _ in cases if reason is not None}
    exercised |= {"unterminated_record"} | set(_whole_files()) | {UNPROCESSABLE}
    registry = {UNKNOWN_POINT, UNKNOWN_STATION, MINE_MISMATCH, FUTURE_TIME, BAD_VALUE, DUPLICATE_CONFLICT,
                UNKNOWN_RELATION_POINT}
    # Only the drop directory can tell these: exercised in test_hostile_drop.py.
    exercised |= {NOT_REGULAR, TOO_LARGE}
    assert exercised == set(RECORD_ERROR_REASONS) | registry | set(FILE_REASONS) | {UNPROCESSABLE}
    assert set(TABLES) == {"CDDY", "CDSS", "FZDY", "FZSS", "TJSJ", "YCBJ"}
