"""The container: file names, the `||` terminator, `~` records with their lines, the header."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from ingest.files.container import (
    FileName,
    is_complete,
    parse_file_name,
    parse_header,
    split_fields,
    split_records,
    strip_terminator,
)
from ingest.files.errors import FileRejected, IncompleteFile
from ingest.files.wallclock import WallClock
from tests.ingest.files.helpers import utc

WALL = WallClock(ZoneInfo("Asia/Shanghai"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "610821003303_CDDY_20240514133511.txt",
            FileName("610821003303", "CDDY", utc("2024-05-14 05:35:11")),
        ),
        (
            "150622B0012000200092_CDSS_20240101000000.txt",
            FileName("150622B0012000200092", "CDSS", utc("2023-12-31 16:00:00")),
        ),
        # the mine code is opaque: underscores inside it survive
        (
            "6108_21003303_FZSS_20240514133511.TXT",
            FileName("6108_21003303", "FZSS", utc("2024-05-14 05:35:11")),
        ),
        (
            "/data/in/610821003303_ycbj_20240514133511.txt",
            FileName("610821003303", "YCBJ", utc("2024-05-14 05:35:11")),
        ),
        (
            "C:\\in\\610821003303_TJSJ_20240514133511.txt",
            FileName("610821003303", "TJSJ", utc("2024-05-14 05:35:11")),
        ),
    ],
)
def test_file_names(name: str, expected: FileName) -> None:
    assert parse_file_name(name, WALL) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("610821003303_CDSS_20240514133511.csv", "bad_file_name"),
        ("610821003303_CDSS_20240514133511", "bad_file_name"),
        ("610821003303_CDSS.txt", "bad_file_name"),
        ("_CDSS_20240514133511.txt", "bad_file_name"),
        ("610821003303_CDSS_2024051413351.txt", "bad_file_name"),  # 13 digits
        ("610821003303_CDSS_2024051413351x.txt", "bad_file_name"),
        ("610821003303_CDSS_20241314133511.txt", "bad_file_name"),  # month 13
        ("610821003303_CDSS_20240514253511.txt", "bad_file_name"),  # hour 25
        ("610821003303_RYSS_20240514133511.txt", "unknown_type"),
        ("610821003303__20240514133511.txt", "unknown_type"),
    ],
)
def test_bad_file_names(name: str, reason: str) -> None:
    with pytest.raises(FileRejected) as info:
        parse_file_name(name, WALL)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"h~\n||", True),
        (b"h~||", True),
        (b"h~\r\n||\r\n", True),
        (b"h~\n||  \n\x00\x00", True),
        (b"h~\n", False),
        (b"h~\n|", False),
        (b"h~\n||x", False),
        (b"", False),
    ],
)
def test_terminator(data: bytes, complete: bool) -> None:
    assert is_complete(data) is complete
    text = data.decode()
    if complete:
        assert strip_terminator(text).rstrip().endswith("~")
    else:
        with pytest.raises(IncompleteFile):
            strip_terminator(text)


def test_records_one_per_line_lf_and_crlf_number_alike() -> None:
    for nl in ("\n", "\r\n"):
        rows, rest = split_records(f"h;1~{nl}a;2~{nl}b;3~{nl}")
        assert rows == [(1, 0, "h;1"), (2, 1, "a;2"), (3, 2, "b;3")]
        assert rest is None


def test_records_without_newlines_share_line_one() -> None:
    rows, rest = split_records("h~a~b~")
    assert rows == [(1, 0, "h"), (1, 1, "a"), (1, 2, "b")]
    assert rest is None


def test_blank_lines_and_empty_records_are_skipped_but_counted() -> None:
    rows, _ = split_records("h~\n\n\n  a  ~~\n \t b~\n")
    assert rows == [(1, 0, "h"), (4, 1, "a"), (5, 2, "b")]


def test_record_spanning_lines_starts_where_its_text_starts() -> None:
    rows, _ = split_records("h~\n\r\n a;\nb~\nc~")
    assert rows == [(1, 0, "h"), (3, 1, "a;\nb"), (5, 2, "c")]


def test_text_after_the_last_record_end_is_returned() -> None:
    rows, rest = split_records("h~\na~\n b;c \n")
    assert rows == [(1, 0, "h"), (2, 1, "a")]
    assert rest == (3, 2, "b;c")


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("a;b;c", ["a", "b", "c"]),
        ("a ; b\t;  c", ["a", "b", "c"]),
        ("a;;c", ["a", "", "c"]),
        ("a;b;", ["a", "b"]),  # one stray trailing separator
        ("a;b; ", ["a", "b"]),
        ("a;b;;", ["a", "b", ""]),  # only one is dropped
        ("11301 回风巷;2024-05-14 13:35:00", ["11301 回风巷", "2024-05-14 13:35:00"]),
        ("a\u3000;b", ["a", "b"]),
    ],
)
def test_fields(text: str, fields: list[str]) -> None:
    assert split_fields(text) == fields


def test_header() -> None:
    header = parse_header(
        (1, 0, "610821003303;某煤矿;KJ95X;安全监控;某公司;2026-12-31 00:00:00;2024-05-14 13:35:11"),
        WALL,
    )
    assert header.certificate_expiry == date(2026, 12, 31)
    assert header.upload_time == utc("2024-05-14 05:35:11")


def test_header_empty_optional_fields_are_none() -> None:
    header = parse_header((1, 0, "610821003303;;;;;;2024-05-14 13:35:11"), WALL)
    assert header.mine_name is None
    assert header.manufacturer is None
    assert header.certificate_expiry is None


@pytest.mark.parametrize(
    "text",
    [
        "610821003303;某煤矿;KJ95X;安全监控;某公司;2026-12-31",  # 6 fields
        "610821003303;某煤矿;KJ95X;安全监控;某公司;2026-12-31;2024-05-14 13:35:11;x",
        ";某煤矿;KJ95X;安全监控;某公司;2026-12-31;2024-05-14 13:35:11",
        "610821003303;某煤矿;KJ95X;安全监控;某公司;2026/12/31;2024-05-14 13:35:11",
        "610821003303;某煤矿;KJ95X;安全监控;某公司;2026-02-30;2024-05-14 13:35:11",
        "610821003303;某煤矿;KJ95X;安全监控;某公司;2026-12-31;2024-05-14",
    ],
)
def test_bad_headers(text: str) -> None:
    with pytest.raises(FileRejected) as info:
        parse_header((1, 0, text), WALL)
    assert info.value.reason == "bad_header"
