"""Malformed files and records built inline: exact reasons, lines and ordinals."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from ingest.files import (
    RECORD_ERROR_REASONS,
    REJECT_REASONS,
    CdssRecord,
    FileRejected,
    IncompleteFile,
    RecordError,
    parse_file,
    point_code_limit,
)
from tests.ingest.files.helpers import HEADER, MINE, body, utc

CDSS = f"{MINE}_CDSS_20240514133511.txt"
T = "2024-05-14 13:35:00"
GOOD = f"{MINE}01MN0001T0101;甲烷;11301回风巷;0.42;%CH4;0;{T}"


def reasons(data: bytes, name: str = CDSS) -> list[tuple[int, int, str]]:
    return [(e.line, e.ordinal, e.reason) for e in parse_file(name, data).errors]


def test_every_reason_is_documented_in_the_module_docstring() -> None:
    import ingest.files.parse as parse_module

    assert parse_module.__doc__ is not None
    for reason in RECORD_ERROR_REASONS:
        assert f"`{reason}`" in parse_module.__doc__
    assert len(set(RECORD_ERROR_REASONS)) == len(RECORD_ERROR_REASONS)
    assert "mine_mismatch" in REJECT_REASONS


def test_file_errors_are_ingest_errors() -> None:
    from ingest.errors import IngestError

    assert issubclass(IncompleteFile, IngestError)
    assert issubclass(FileRejected, IngestError)


def test_good_record_survives_between_bad_ones() -> None:
    parsed = parse_file(CDSS, body("garbage", GOOD, f"{MINE}01MN0001T0102;甲烷;x;;;0;{T}"))
    assert parsed.records == [
        CdssRecord(
            f"{MINE}01MN0001T0101",
            "甲烷",
            "11301回风巷",
            0.42,
            "%CH4",
            0,
            utc("2024-05-14 05:35:00"),
            3,
            2,
        )
    ]
    assert parsed.errors == [
        RecordError(2, 1, "field_count", "1 fields, expected 7", "garbage"),
        RecordError(4, 3, "missing_field", "value is empty", f"{MINE}01MN0001T0102;甲烷;x;;;0;{T}"),
    ]


def test_header_only_file_has_no_records() -> None:
    parsed = parse_file(CDSS, body())
    assert parsed.records == []
    assert parsed.errors == []


def test_record_without_its_end_mark_is_an_error_not_a_record() -> None:
    data = (HEADER + "~\n" + GOOD + "~\n" + GOOD + "\n||").encode()
    parsed = parse_file(CDSS, data)
    assert len(parsed.records) == 1
    assert [(e.line, e.ordinal, e.reason) for e in parsed.errors] == [(3, 2, "unterminated_record")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"||", "bad_header"),
        (b"  \n||\n", "bad_header"),
        ((HEADER + "||").encode(), "bad_header"),  # the header has no `~`
        (f"{MINE};某煤矿;KJ95X~\n||".encode(), "bad_header"),
        (b"\xff\xfe\xff~||", "bad_encoding"),
        (body().replace(MINE.encode(), b"610821003304", 1), "mine_mismatch"),
    ],
)
def test_whole_file_rejections(data: bytes, reason: str) -> None:
    with pytest.raises(FileRejected) as info:
        parse_file(CDSS, data)
    assert info.value.reason == reason


def test_bad_name_and_unknown_type_are_rejected() -> None:
    with pytest.raises(FileRejected) as info:
        parse_file(f"{MINE}_CDSS.txt", body(GOOD))
    assert info.value.reason == "bad_file_name"
    with pytest.raises(FileRejected) as info:
        parse_file(f"{MINE}_RYSS_20240514133511.txt", body(GOOD))
    assert info.value.reason == "unknown_type"


@pytest.mark.parametrize(
    "data",
    [
        body(GOOD)[:-2],  # no terminator at all
        body(GOOD)[:-1],  # half a terminator
        body(GOOD)[:-2] + "某".encode("gbk")[:1],  # cut inside a GBK character
        b"",
    ],
)
def test_incomplete_files_raise_before_anything_else(data: bytes) -> None:
    with pytest.raises(IncompleteFile):
        parse_file(CDSS, data)
    # even a bad name does not make an unfinished file look rejected
    with pytest.raises(IncompleteFile):
        parse_file("not a name", data)


def test_the_same_file_as_gbk_and_utf8_bom_gives_the_same_records() -> None:
    text = body(GOOD, GOOD.replace("T0101", "T0102")).decode()
    utf8 = parse_file(CDSS, text.encode())
    bom = parse_file(CDSS, b"\xef\xbb\xbf" + text.encode())
    gbk = parse_file(CDSS, text.encode("gbk"))
    assert (utf8.encoding, bom.encoding, gbk.encoding) == ("utf-8", "utf-8-sig", "gbk")
    assert utf8.records == bom.records == gbk.records
    assert len(utf8.records) == 2


@pytest.mark.parametrize("newline", ["", "\n", "\r\n", " \r\n ", "\n\n"])
def test_layouts_give_the_same_records_apart_from_lines(newline: str) -> None:
    parsed = parse_file(CDSS, body(GOOD, GOOD.replace("T0101", "T0102"), newline=newline))
    assert [(r.point, r.ordinal) for r in parsed.records] == [
        (f"{MINE}01MN0001T0101", 1),
        (f"{MINE}01MN0001T0102", 2),
    ]
    per_record = newline.count("\n")
    assert [r.line for r in parsed.records] == [1 + per_record, 1 + 2 * per_record]


def test_point_code_length_limit_at_the_boundary() -> None:
    assert point_code_limit(MINE) == 28
    assert point_code_limit("150622B0012000200092") == 36
    at_limit = f"{MINE}01MN0001" + "1" * 8  # 28
    over = at_limit + "1"  # 29
    parsed = parse_file(
        CDSS,
        body(
            GOOD.replace(f"{MINE}01MN0001T0101", at_limit),
            GOOD.replace(f"{MINE}01MN0001T0101", over),
        ),
    )
    assert [r.point for r in parsed.records] == [at_limit]
    assert [(e.ordinal, e.reason) for e in parsed.errors] == [(2, "point_code_too_long")]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("0", 0), ("1", 1), ("136", 136), ("", 0), (" 4 ", 4), ("+2", 2)],
)
def test_cdss_status_kept_raw(status: str, expected: int) -> None:
    record = GOOD.replace(";0;2024", f";{status};2024")
    (parsed,) = parse_file(CDSS, body(record)).records
    assert isinstance(parsed, CdssRecord)
    assert parsed.status == expected


@pytest.mark.parametrize("status", ["-1", "1.0", "x", "０x"])
def test_cdss_bad_status(status: str) -> None:
    assert reasons(body(GOOD.replace(";0;2024", f";{status};2024"))) == [(2, 1, "bad_status")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("inf", "bad_number"),
        ("-inf", "bad_number"),
        ("1e999", "bad_number"),
        ("0x1", "bad_number"),
        ("", "missing_field"),
    ],
)
def test_cdss_bad_values(value: str, reason: str) -> None:
    assert reasons(body(GOOD.replace(";0.42;", f";{value};"))) == [(2, 1, reason)]


def test_first_fault_in_field_order_is_reported() -> None:
    # bad value and bad time: the value comes first in the record
    record = f"{MINE}01MN0001T0101;甲烷;x;abc;%CH4;0;bad"
    assert reasons(body(record)) == [(2, 1, "bad_number")]


@pytest.mark.parametrize(
    ("kind", "record", "reason"),
    [
        ("CDDY", ";".join([f"{MINE}01MN0001T0101"] * 25), "field_count"),
        ("CDDY", f"{MINE}01MN0001T0101;01;{MINE}00101;0001;MN" + ";" * 18 + T, "field_count"),
        (
            "CDDY",
            f"{MINE}01MN0001T0101;01;61082100430300101;0001;MN" + ";" * 19 + T,
            "station_mine_mismatch",
        ),
        ("CDDY", f"{MINE}01MN0001T0101;01;;;MN" + ";" * 19 + T, "missing_field"),
        ("CDDY", f"{MINE}01MN0001T0101;01;;0001;MN" + ";" * 15 + "1.5.2;;;;" + T, "bad_number"),
        ("FZDY", f"{MINE}00101;某分站;1;2;3;4;{T}", "field_count"),
        ("FZDY", f"{MINE}00101;某分站;1;2;;", "missing_field"),  # `;;` then the stray `;`
        ("FZDY", f"{MINE}00101;某分站;1;2;3;", "bad_time"),  # read as 5 fields, time "3"
        ("FZSS", f"{MINE}00101;0;1", "field_count"),
        ("FZSS", f"{MINE}00101;;1;{T}", "missing_field"),
        ("FZSS", f"{MINE}00101;0;1;2024-13-01 00:00:00", "bad_time"),
        ("FZSS", f"61082100430300101;0;1;{T}", "station_mine_mismatch"),
        ("TJSJ", f"{MINE}01MN0001T0101;甲烷;x;%;{T};{T};1;{T};0;{T};0.5", "field_count"),
        ("TJSJ", f"{MINE}01MN0001T0101;甲烷;x;%;{T};;1;{T};0;{T};0.5;{T}", "missing_field"),
        ("TJSJ", f"{MINE}01MN0001T0101;甲烷;x;%;{T};{T};一;{T};0;{T};0.5;{T}", "bad_number"),
        ("YCBJ", f"{MINE}01MN0001T0101;甲烷;x;%;001;{T}" + ";" * 10, "field_count"),
        ("YCBJ", f"{MINE}01MN0001T0101;甲烷;x;%;001;{T}" + ";" * 11 + "2024-05-14", "bad_time"),
        ("YCBJ", f"{MINE}01MN0001T0101;甲烷;x;%;001;{T};;;;;;;;;bad;;{T}", "bad_time"),
        ("YCBJ", f"{MINE}01MN0001T0101;甲烷;x;%;001;{T};;1.2.3;;;;;;;;;{T}", "bad_number"),
        ("YCBJ", f"{MINE}01MN0001T0101;甲烷;x;%;001;;;;;;;;;;;;{T}", "missing_field"),
    ],
)
def test_record_errors_of_every_type(kind: str, record: str, reason: str) -> None:
    assert reasons(body(record), f"{MINE}_{kind}_20240514133511.txt") == [(2, 1, reason)]


def test_ycbj_unpadded_code_maps_but_stays_raw() -> None:
    record = f"{MINE}01MN0001T0101;甲烷;x;%;7;{T};;;;;;;;;;;{T}"
    (parsed,) = parse_file(f"{MINE}_YCBJ_20240514133511.txt", body(record)).records
    assert (parsed.abnormal_code, parsed.abnormal_type, parsed.abnormal_known) == (  # type: ignore[union-attr]
        "7",
        "calibration",
        True,
    )


def test_all_ten_abnormal_types() -> None:
    names = [
        "over_limit_alarm",
        "power_off_alarm",
        "feed_abnormal",
        "sensor_disconnected",
        "station_power_loss",
        "station_unreachable",
        "calibration",
        "over_range",
        "upper_pre_warning",
        "lower_pre_warning",
    ]
    records = [f"{MINE}01MN0001T0101;甲烷;x;%;{n:03d};{T};;;;;;;;;;;{T}" for n in range(1, 12)]
    parsed = parse_file(f"{MINE}_YCBJ_20240514133511.txt", body(*records))
    assert [r.abnormal_type for r in parsed.records] == [*names, None]  # type: ignore[union-attr]


def test_zone_is_the_callers() -> None:
    parsed = parse_file(CDSS, body(GOOD), tz=ZoneInfo("Asia/Urumqi"))  # UTC+6
    assert parsed.records[0].data_time == utc("2024-05-14 07:35:00")  # type: ignore[union-attr]
    assert parsed.header.upload_time == utc("2024-05-14 07:35:11")
