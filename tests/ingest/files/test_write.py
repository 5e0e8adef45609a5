"""The writer is the parser's inverse: write -> parse gives the same records (property tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.files import (
    ABNORMAL_TYPES,
    POWER_TABLE_DC0,
    POWER_TABLE_DC1,
    RUN_STATES,
    CddyRecord,
    CdssRecord,
    FileFormatError,
    FzdyRecord,
    FzssRecord,
    Header,
    Record,
    Relation,
    TjsjRecord,
    YcbjRecord,
    file_name,
    parse_file,
    render,
    write_file,
)
from tests.ingest.files.helpers import MINE, utc

LONG_MINE = "150622B0012000200092"

# Text that survives the format: no separators or line breaks, no blanks at the ends,
# never empty (an empty optional field reads back as None).
_ALPHABET = st.sampled_from(list("回风巷进工作面甲烷分站主斜井皮带abcXYZ0123 #()-_.%℃/:：|，"))
text = st.text(_ALPHABET, min_size=1, max_size=12).map(str.strip).filter(bool)
opt_text = st.none() | text
code_chars = st.sampled_from(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"))
number = st.floats(allow_nan=False, allow_infinity=False)
opt_number = st.none() | number
moment = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)
opt_moment = st.none() | moment


def point(mine: str) -> st.SearchStrategy[str]:
    # mine code + system + value type + sensor type + own id, up to the limit for the mine
    return st.builds(
        lambda system, kind, sensor, own: f"{mine}{system}{kind}{sensor}{own}",
        st.sampled_from(["01", "02"]),
        st.sampled_from(["MN", "KG", "LJ", "DT"]),
        st.text(st.sampled_from("0123456789"), min_size=4, max_size=4),
        st.text(code_chars, min_size=1, max_size=8),
    )


def station(mine: str) -> st.SearchStrategy[str]:
    return st.text(code_chars, min_size=5, max_size=5).map(lambda s: mine + s)


def relation(mine: str) -> st.SearchStrategy[Relation]:
    # names may hold `-` and `:`; only blanks at the ends and `◇` cannot be written
    name = st.just("") | text
    return st.builds(
        Relation,
        st.sampled_from("BGKZDHT"),
        point(mine),
        name,
        point(mine),
        st.sampled_from("BGKZDHT"),
    )


def header(mine: str) -> st.SearchStrategy[Header]:
    return st.builds(
        Header,
        st.just(mine),
        opt_text,
        opt_text,
        opt_text,
        opt_text,
        st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
        moment,
    )


def records(kind: str, mine: str, table: dict[int, str]) -> st.SearchStrategy[Any]:
    if kind == "CDDY":
        return st.builds(
            CddyRecord,
            point(mine),
            st.sampled_from(["01", "02"]),
            st.none() | station(mine),
            st.sampled_from(["0001", "1011", "3001"]),
            st.sampled_from(["MN", "KG", "LJ"]),
            opt_text,
            *[opt_number] * 10,
            opt_text,
            opt_text,
            opt_text,
            opt_number,
            opt_number,
            opt_number,
            st.lists(relation(mine), max_size=3).map(tuple),
            moment,
        )
    if kind == "CDSS":
        return st.builds(
            CdssRecord,
            point(mine),
            opt_text,
            opt_text,
            number,
            opt_text,
            st.integers(0, 255),
            moment,
        )
    if kind == "FZDY":
        return st.builds(FzdyRecord, station(mine), opt_text, opt_number, opt_number, opt_number, moment)
    if kind == "FZSS":
        return st.builds(
            lambda s, run, power, t: FzssRecord(
                s,
                run,
                RUN_STATES.get(run),
                power,
                None if power is None else table.get(power),
                t,
            ),
            station(mine),
            st.integers(0, 10),
            st.none() | st.integers(0, 10),
            moment,
        )
    if kind == "TJSJ":
        return st.builds(
            TjsjRecord,
            point(mine),
            opt_text,
            opt_text,
            opt_text,
            moment,
            moment,
            opt_number,
            opt_moment,
            opt_number,
            opt_moment,
            opt_number,
            moment,
        )
    assert kind == "YCBJ"
    return st.builds(
        lambda p, name, loc, unit, n, *rest: YcbjRecord(
            p, name, loc, unit, f"{n:03d}", ABNORMAL_TYPES.get(n), n in ABNORMAL_TYPES, *rest
        ),
        point(mine),
        opt_text,
        opt_text,
        opt_text,
        st.integers(0, 12),
        moment,
        opt_moment,
        opt_number,
        opt_moment,
        opt_number,
        opt_moment,
        opt_number,
        opt_text,
        opt_text,
        opt_moment,
        opt_text,
        moment,
    )


def unplaced(items: Sequence[Record]) -> list[Record]:
    return [msgspec.structs.replace(r, line=0, ordinal=0) for r in items]


@pytest.mark.parametrize("kind", ["CDDY", "CDSS", "FZDY", "FZSS", "TJSJ", "YCBJ"])
@pytest.mark.parametrize("mine", [MINE, LONG_MINE])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(kind: str, mine: str, data: st.DataObject) -> None:
    table = data.draw(st.sampled_from([POWER_TABLE_DC0, POWER_TABLE_DC1]))
    head = data.draw(header(mine))
    items = data.draw(st.lists(records(kind, mine, table), max_size=5))
    newline = data.draw(st.sampled_from(["\n", "\r\n", ""]))
    encoding = data.draw(st.sampled_from(["utf-8", "gb18030"]))
    name, raw = write_file(kind, head, items, newline=newline, encoding=encoding)
    # A short GB18030 text can be valid UTF-8 (see encoding.decode), so it is named here;
    # detection of real GBK files is covered by the sample and encoding tests.
    parsed = parse_file(name, raw, power_table=table, encoding=None if encoding == "utf-8" else encoding)
    assert parsed.encoding == encoding
    assert parsed.errors == []
    assert parsed.header == head
    assert unplaced(parsed.records) == items
    assert [r.ordinal for r in parsed.records] == list(range(1, len(items) + 1))
    if newline:
        assert [r.line for r in parsed.records] == list(range(2, len(items) + 2))


def test_rendered_text_is_the_documented_layout() -> None:
    head = Header(MINE, "某煤矿", None, None, None, date(2026, 12, 31), utc("2024-05-14 05:35:11"))
    record = CdssRecord(f"{MINE}01MN0001T0101", "甲烷", "11301回风巷", 0.42, "%CH4", 0, utc("2024-05-14 05:35:00"))
    assert render("CDSS", head, [record]) == (
        f"{MINE};某煤矿;;;;2026-12-31;2024-05-14 13:35:11~\n"
        f"{MINE}01MN0001T0101;甲烷;11301回风巷;0.42;%CH4;0;2024-05-14 13:35:00~\n"
        "||"
    )
    assert file_name(MINE, "CDSS", utc("2024-05-14 05:35:11")) == (f"{MINE}_CDSS_20240514133511.txt")


@pytest.mark.parametrize(
    "bad",
    [
        {"location": "11301;回风巷"},
        {"location": "11301~回风巷"},
        {"location": "11301\n回风巷"},
        {"location": " 11301回风巷"},
        {"unit": "%CH4 "},
    ],
)
def test_unwritable_fields_raise(bad: dict[str, str]) -> None:
    head = Header(MINE, None, None, None, None, None, utc("2024-05-14 05:35:11"))
    record = CdssRecord(f"{MINE}01MN0001T0101", "甲烷", "11301回风巷", 0.42, "%CH4", 0, utc("2024-05-14 05:35:00"))
    with pytest.raises(FileFormatError):
        render("CDSS", head, [msgspec.structs.replace(record, **bad)])


@pytest.mark.parametrize(
    "rel",
    [
        Relation("X", f"{MINE}01MN0001T0101", "名", f"{MINE}01KG1009T0102", "K"),
        Relation("D", f"{MINE}01MN-0001", "名", f"{MINE}01KG1009T0102", "K"),
        Relation("D", f"{MINE}01MN0001T0101", "名", f"{MINE}01KG 1009T0102", "K"),
        Relation("D", f"{MINE}01MN0001T0101", " 名", f"{MINE}01KG1009T0102", "K"),
        Relation("D", f"{MINE}01MN0001T0101", "名◇", f"{MINE}01KG1009T0102", "K"),
    ],
)
def test_unwritable_relations_raise(rel: Relation) -> None:
    head = Header(MINE, None, None, None, None, None, utc("2024-05-14 05:35:11"))
    record = CddyRecord(
        f"{MINE}01MN0001T0101",
        "01",
        None,
        "0001",
        "MN",
        None,
        *[None] * 10,
        None,
        None,
        None,
        None,
        None,
        None,
        (rel,),
        utc("2024-05-14 05:35:00"),
    )
    with pytest.raises(FileFormatError):
        render("CDDY", head, [record])


def test_record_of_another_type_raises() -> None:
    head = Header(MINE, None, None, None, None, None, utc("2024-05-14 05:35:11"))
    station = FzdyRecord(f"{MINE}00101", None, None, None, None, utc("2024-05-14 05:35:00"))
    with pytest.raises(FileFormatError):
        render("CDSS", head, [station])
    with pytest.raises(FileFormatError):
        render("RYSS", head, [])
