"""The optimised CDSS path agrees with a plain reference parser on arbitrary rows."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.files import CdssRecord, parse_file
from tests.ingest.files.helpers import HEADER, MINE

SHANGHAI = ZoneInfo("Asia/Shanghai")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}")


def reference(text: str, line: int, ordinal: int) -> CdssRecord | str:
    """One CDSS row the slow, obvious way: a record, or the reason it is refused."""
    fields = [f.strip() for f in text.split(";")]
    if len(fields) > 1 and fields[-1] == "":
        fields.pop()
    if len(fields) != 7:
        return "field_count"
    point, type_name, location, value, unit, status, when = fields
    if point == "":
        return "missing_field"
    if len(point) > 28:
        return "point_code_too_long"
    if not point.startswith(MINE):
        return "point_mine_mismatch"
    if value == "":
        return "missing_field"
    try:
        number = float(value)
    except ValueError:
        return "bad_number"
    if not math.isfinite(number):
        return "bad_number"
    code = 0
    if status != "":
        try:
            code = int(status)
        except ValueError:
            return "bad_status"
        if code < 0:
            return "bad_status"
    if when == "":
        return "missing_field"
    if not _TIME.fullmatch(when):
        return "bad_time"
    try:
        naive = datetime.strptime(when.replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return "bad_time"
    stamp = naive.replace(tzinfo=SHANGHAI).astimezone(UTC)
    return CdssRecord(point, type_name or None, location or None, number, unit or None, code, stamp, line, ordinal)


# Blanks of one row come from one of these sets: rows whose only blanks are tabs, U+3000
# or vertical tabs exercise the fast path's test for blanks that are not a plain space.
blank_sets = st.sampled_from([["", " ", "\t", "\u3000", "\x0b", " \t "], ["", "\t", "\u3000", "\x0b"], [""]])
points = st.sampled_from([f"{MINE}01MN0001T0101", f"{MINE}01MN0001" + "9" * 9, "", "X" * 10, f"{MINE}01KG1011T0102"])
values = st.sampled_from(["0.42", "1", "-3.5e2", "", "abc", "nan", "inf", "1,2", "0x1", "1_0"])
statuses = st.sampled_from(["0", "1", "136", "", "-1", "+2", "1.0", "x", "０"])
times = st.sampled_from(
    [
        "2024-05-14 13:35:00",
        "2024-05-14T13:35:00",
        "2024-05-14 13:35",
        "2024-02-30 00:00:00",
        "",
        "2024/05/14 13:35:00",
        "2024-05-14 24:00:00",
    ]
)
words = st.sampled_from(["甲烷", "11301回风巷", "%CH4", "", "11301 回风巷", "m/s"])


@st.composite
def row(draw: st.DrawFn) -> str:
    fields = [
        draw(points),
        draw(words),
        draw(words),
        draw(values),
        draw(words),
        draw(statuses),
        draw(times),
    ]
    # sometimes too few or too many fields, sometimes a stray trailing separator
    shape = draw(st.sampled_from(["ok", "ok", "ok", "short", "long", "trailing"]))
    if shape == "short":
        fields = fields[: draw(st.integers(1, 6))]
    elif shape == "long":
        fields.append(draw(words))
    blank = st.sampled_from(draw(blank_sets))
    text = ";".join(draw(blank) + f + draw(blank) for f in fields)
    if shape == "trailing":
        text += ";"
    return text.strip() or "x"


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row(), min_size=1, max_size=20))
def test_fast_path_matches_reference(rows: list[str]) -> None:
    data = "".join(r + "~\n" for r in (HEADER, *rows)).encode() + b"||"
    parsed = parse_file(f"{MINE}_CDSS_20240514133511.txt", data)
    expected = [reference(r.strip(), i + 2, i + 1) for i, r in enumerate(rows)]
    assert parsed.records == [e for e in expected if isinstance(e, CdssRecord)]
    assert [(e.line, e.reason) for e in parsed.errors] == [(i + 2, e) for i, e in enumerate(expected) if isinstance(e, str)]
