"""Every sample file parsed into exactly the records and errors written down by hand."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from ingest.files import (
    POWER_TABLE_DC0,
    POWER_TABLE_DC1,
    CddyRecord,
    CdssRecord,
    FileRejected,
    FzdyRecord,
    FzssRecord,
    Header,
    IncompleteFile,
    ParsedFile,
    Relation,
    TjsjRecord,
    YcbjRecord,
    parse_file,
)
from tests.ingest.files.helpers import MINE, read_sample, utc


def parse(name: str, power_table: Mapping[int, str] = POWER_TABLE_DC0) -> ParsedFile:
    return parse_file(name, read_sample(name), power_table=power_table)


def errors_of(parsed: ParsedFile) -> list[tuple[int, int, str]]:
    return [(e.line, e.ordinal, e.reason) for e in parsed.errors]


STANDARD_HEADER = dict(
    mine_code=MINE,
    mine_name="陕西某某矿业有限公司某某煤矿",
    system_model="KJ95X",
    system_name="煤矿安全监控系统",
    manufacturer="天地(常州)自动化股份有限公司",
    certificate_expiry=date(2026, 12, 31),
)


def test_cddy_utf8_definitions_with_relations_and_bad_neighbours() -> None:
    parsed = parse("610821003303_CDDY_20240514133511.txt")
    assert (parsed.mine_code, parsed.type, parsed.encoding) == (MINE, "CDDY", "utf-8")
    assert parsed.stamp == utc("2024-05-14 05:35:11")
    assert parsed.header == Header(**STANDARD_HEADER, upload_time=utc("2024-05-14 05:35:11"))
    empty10 = dict.fromkeys(
        [
            "range_high",
            "range_low",
            "alarm_upper",
            "clear_upper",
            "alarm_lower",
            "clear_lower",
            "power_off_upper",
            "restore_upper",
            "power_off_lower",
            "restore_lower",
        ]
    )
    assert parsed.records == [
        CddyRecord(
            point="61082100330301MN0001T0101",
            system_code="01",
            station="61082100330300101",
            sensor_type="0001",
            value_type="MN",
            unit="%CH4",
            range_high=4.0,
            range_low=0.0,
            alarm_upper=1.0,
            clear_upper=0.9,
            alarm_lower=None,
            clear_lower=None,
            power_off_upper=1.0,
            restore_upper=0.9,
            power_off_lower=None,
            restore_lower=None,
            on_text=None,
            off_text=None,
            location="11301回风巷",
            x=512345.12,
            y=4123456.78,
            z=1020.5,
            relations=(
                Relation("D", "61082100330301MN0001T0101", "甲烷断电", "61082100330301KG1009T0102", "K"),
                Relation("B", "61082100330301MN0001T0101", "风电闭锁", "61082100330301KG1001T0103", "K"),
            ),
            data_time=utc("2024-05-14 05:30:00"),
            line=2,
            ordinal=1,
        ),
        CddyRecord(
            point="61082100330301KG1011T0102",
            system_code="01",
            station="61082100330300101",
            sensor_type="1011",
            value_type="KG",
            unit=None,
            **empty10,
            on_text="有电",
            off_text="无电",
            location="11301回风巷馈电",
            x=512346.0,
            y=4123457.0,
            z=None,
            relations=(),
            data_time=utc("2024-05-14 05:30:00"),
            line=3,
            ordinal=2,
        ),
        CddyRecord(
            point="61082100330301LJ3001T0201",
            system_code="01",
            station=None,
            sensor_type="3001",
            value_type="LJ",
            unit="t",
            **empty10,
            on_text=None,
            off_text=None,
            location="主斜井皮带",
            x=None,
            y=None,
            z=None,
            relations=(),
            data_time=utc("2024-05-14 05:30:00"),
            line=4,
            ordinal=3,
        ),
    ]
    assert errors_of(parsed) == [
        (5, 4, "bad_relations"),  # kind X is not one of B G K Z D H T
        (6, 5, "field_count"),  # 23 fields
        (7, 6, "bad_number"),  # range high 4.0a
        (8, 7, "point_mine_mismatch"),
        (9, 8, "point_code_too_long"),  # 32 characters
        (10, 9, "bad_time"),  # 2024/05/14
        (11, 10, "missing_field"),  # empty system code, reported before its bad relation
    ]
    assert parsed.errors[5].raw.startswith("61082100330301MN0001T0108;01;")
    assert parsed.errors[5].raw.endswith("2024/05/14 13:30:00")  # without its `~`


def test_cdss_bom_crlf_blanks_and_every_bad_row() -> None:
    parsed = parse("610821003303_CDSS_20240514133520.txt")
    assert parsed.encoding == "utf-8-sig"
    assert parsed.header.mine_code == MINE  # the BOM is not part of the mine code
    t = utc("2024-05-14 05:35:00")
    assert parsed.records == [
        CdssRecord("61082100330301MN0001T0101", "甲烷", "11301回风巷", 0.42, "%CH4", 0, t, 2, 1),
        CdssRecord("61082100330301MN0002T0104", "风速", "11301进风巷", 2.1, "m/s", 0, t, 3, 2),
        CdssRecord("61082100330301KG1011T0102", "馈电", "11301回风巷馈电", 1.0, None, 0, t, 4, 3),
        CdssRecord("61082100330301MN0001T0105", "甲烷", "11302回风巷", 1.2, "%CH4", 1, t, 5, 4),
        # a stray `;` before `~` is tolerated
        CdssRecord("61082100330301MN0003T0111", "温度", "11302工作面", 24.5, "℃", 0, t, 11, 10),
        # an empty status means 0, as in the MQTT contract
        CdssRecord("61082100330301MN0004T0112", "一氧化碳", "11302工作面", 12.0, "ppm", 0, t, 12, 11),
    ]
    assert errors_of(parsed) == [
        (6, 5, "missing_field"),  # empty value
        (7, 6, "bad_number"),  # abc
        (8, 7, "bad_time"),  # 2024-05-14 13:35
        (9, 8, "field_count"),  # 6 fields
        (10, 9, "bad_status"),  # -1
        (13, 12, "bad_number"),  # nan
        (14, 13, "missing_field"),  # empty point code
        (15, 14, "bad_time"),  # 24:00:00
    ]


def test_cdss_gbk_all_records_on_one_line() -> None:
    parsed = parse("610821003303_CDSS_20240514133530.txt")
    assert parsed.encoding == "gbk"
    assert parsed.header.mine_name == "陕西某某矿业有限公司某某煤矿"
    t = utc("2024-05-14 05:35:10")
    assert parsed.records == [
        CdssRecord("61082100330301MN0001T0101", "甲烷", "11301回风巷", 0.44, "%CH4", 0, t, 1, 1),
        CdssRecord("61082100330301MN0003T0111", "温度", "11302工作面", 24.6, "℃", 0, t, 1, 2),
        CdssRecord("61082100330301MN0001T0106", "甲烷", "11302工作面", 0.08, "%CH4", 4, t, 1, 4),
    ]
    # Records sharing a line are told apart by their ordinal.
    assert errors_of(parsed) == [(1, 3, "bad_number")]  # 1,2 (a decimal comma)
    assert parsed.errors[0].raw == ("61082100330301MN0001T0105;甲烷;11302回风巷;1,2;%CH4;0;2024-05-14 13:35:10")


def test_cdss_longer_mine_code_keeps_sixteen_characters_after_it() -> None:
    mine = "150622B0012000200092"
    parsed = parse(f"{mine}_CDSS_20240514133511.txt")
    assert parsed.mine_code == mine
    assert parsed.header.certificate_expiry is None  # empty in this header
    t = utc("2024-05-14 05:35:00")
    assert parsed.records == [
        CdssRecord(f"{mine}01MN0001T0101", "甲烷", "1201回风顺槽", 0.12, "%CH4", 0, t, 2, 1),
        CdssRecord(f"{mine}01MN000100000001", "甲烷", "1201工作面", 0.2, "%CH4", 0, t, 4, 3),
    ]
    assert errors_of(parsed) == [(3, 2, "point_code_too_long"), (5, 4, "point_mine_mismatch")]
    assert "40 > 36" in parsed.errors[0].detail


def test_fzdy_with_and_without_z() -> None:
    parsed = parse("610821003303_FZDY_20240514133511.txt")
    t = utc("2024-05-14 05:30:00")
    assert parsed.records == [
        FzdyRecord("61082100330300101", "11301回风巷分站", 512340.1, 4123450.2, 1015.3, t, 2, 1),
        FzdyRecord("61082100330300102", "中央变电所分站", 512400.0, 4123500.0, None, t, 3, 2),
        FzdyRecord("61082100330300103", None, None, None, None, t, 4, 3),
    ]
    assert errors_of(parsed) == [
        (5, 4, "station_mine_mismatch"),
        (6, 5, "field_count"),
        (7, 6, "bad_number"),
        (8, 7, "missing_field"),
    ]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (POWER_TABLE_DC0, ["ac", "dc", "unknown", "fault", None]),
        (POWER_TABLE_DC1, ["dc", None, "fault", "ac", None]),
    ],
    ids=["0-dc", "1-dc"],
)
def test_fzss_power_state_through_either_table(table: dict[int, str], expected: list[str | None]) -> None:
    parsed = parse("610821003303_FZSS_20240514133511.txt", power_table=table)
    t = utc("2024-05-14 05:35:00")
    assert parsed.records == [
        FzssRecord("61082100330300101", 0, "ok", 1, expected[0], t, 2, 1),
        FzssRecord("61082100330300102", 1, "comm_lost", 0, expected[1], t, 3, 2),
        FzssRecord("61082100330300103", 2, "fault", 9, expected[2], t, 4, 3),
        FzssRecord("61082100330300104", 0, "ok", 2, expected[3], t, 5, 4),
        FzssRecord("61082100330300105", 7, None, None, expected[4], t, 6, 5),
    ]
    assert errors_of(parsed) == [(7, 6, "bad_number"), (8, 7, "bad_number")]


def test_fzss_default_table_is_zero_dc() -> None:
    parsed = parse("610821003303_FZSS_20240514133511.txt")
    assert [r.power_state for r in parsed.records if isinstance(r, FzssRecord)][:2] == [
        "ac",
        "dc",
    ]


def test_tjsj_statistics() -> None:
    parsed = parse("610821003303_TJSJ_20240514133500.txt")
    assert parsed.records == [
        TjsjRecord(
            "61082100330301MN0001T0101",
            "甲烷",
            "11301回风巷",
            "%CH4",
            utc("2024-05-14 05:25:00"),
            utc("2024-05-14 05:30:00"),
            0.52,
            utc("2024-05-14 05:27:13"),
            0.31,
            utc("2024-05-14 05:25:40"),
            0.4,
            utc("2024-05-14 05:30:00"),
            2,
            1,
        ),
        TjsjRecord(
            "61082100330301MN0002T0104",
            "风速",
            "11301进风巷",
            "m/s",
            utc("2024-05-14 05:25:00"),
            utc("2024-05-14 05:30:00"),
            None,
            None,
            None,
            None,
            None,
            utc("2024-05-14 05:30:00"),
            3,
            2,
        ),
    ]
    assert errors_of(parsed) == [(4, 3, "missing_field"), (5, 4, "bad_time")]


def test_ycbj_known_ongoing_and_unknown_abnormal_types() -> None:
    parsed = parse("610821003303_YCBJ_20240514133511.txt")
    none10 = dict.fromkeys(
        [
            "end",
            "max",
            "max_time",
            "min",
            "min_time",
            "average",
            "cause",
            "measures",
            "entry_time",
            "entered_by",
        ]
    )
    common = dict(
        type_name="甲烷",
        location="11302工作面",
        unit="%CH4",
        start=utc("2024-05-14 05:00:00"),
        data_time=utc("2024-05-14 05:35:00"),
    )
    assert parsed.records == [
        YcbjRecord(
            point="61082100330301MN0001T0105",
            type_name="甲烷",
            location="11302回风巷",
            unit="%CH4",
            abnormal_code="001",
            abnormal_type="over_limit_alarm",
            abnormal_known=True,
            start=utc("2024-05-14 04:10:00"),
            end=utc("2024-05-14 04:25:30"),
            max=1.32,
            max_time=utc("2024-05-14 04:15:02"),
            min=1.01,
            min_time=utc("2024-05-14 04:10:00"),
            average=1.18,
            cause="局部通风机停风",
            measures="恢复通风，撤出人员",
            entry_time=utc("2024-05-14 04:40:00"),
            entered_by="张三",
            data_time=utc("2024-05-14 04:40:00"),
            line=2,
            ordinal=1,
        ),
        YcbjRecord(
            point="61082100330301MN0001T0106",
            abnormal_code="004",
            abnormal_type="sensor_disconnected",
            abnormal_known=True,
            **common,
            **none10,
            line=3,
            ordinal=2,
        ),
        YcbjRecord(
            point="61082100330301MN0001T0107",
            abnormal_code="099",
            abnormal_type=None,
            abnormal_known=False,
            **common,
            **none10,
            line=4,
            ordinal=3,
        ),
    ]
    assert errors_of(parsed) == [(5, 4, "missing_field")]


def test_incomplete_file_is_never_half_parsed() -> None:
    with pytest.raises(IncompleteFile):
        parse("610821003303_CDSS_20240514133540.txt")


def test_header_of_another_mine_rejects_the_whole_file() -> None:
    with pytest.raises(FileRejected) as info:
        parse("610821003303_CDSS_20240514133550.txt")
    assert info.value.reason == "mine_mismatch"
    assert "610821003304" in info.value.detail
