"""Rendering records back into an upload file (the parser's inverse), for tests and simulators."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from ingest.files.errors import FileFormatError
from ingest.files.records import (
    RECORD_TYPES,
    CddyRecord,
    CdssRecord,
    FzdyRecord,
    FzssRecord,
    Header,
    Record,
    TjsjRecord,
    YcbjRecord,
)
from ingest.files.relations import RelationSyntaxError, parse_relations, render_relations
from ingest.files.wallclock import WallClock
from minewatch.timeutil import zone

Field = str | float | int | datetime | None

# Characters that would change how the file splits if they appeared inside a field.
_FORBIDDEN = (";", "~", "\n", "\r")


def file_name(mine_code: str, kind: str, stamp: datetime, *, tz: ZoneInfo | None = None) -> str:
    """`{mine}_{TYPE}_{yyyyMMddHHmmss}.txt`, the stamp in the mine's local time."""
    local = stamp.astimezone(tz if tz is not None else zone())
    return f"{mine_code}_{kind}_{local:%Y%m%d%H%M%S}.txt"


def render(
    kind: str,
    header: Header,
    records: Sequence[Record],
    *,
    tz: ZoneInfo | None = None,
    newline: str = "\n",
) -> str:
    """The file text: header, one `~`-terminated record per line, then `||`.

    Times are written in the mine's zone at second precision (the format has no fractions).
    Raises `FileFormatError` for a record of another type or a field that cannot be written
    (a separator or line break inside it, blanks at its ends, a relation that would not parse).
    """
    if kind not in RECORD_TYPES:
        raise FileFormatError(f"unknown file type {kind!r}")
    wall = WallClock(tz if tz is not None else zone())
    cls = RECORD_TYPES[kind]
    fields_of = _FIELDS[kind]
    lines = [_join(_header_fields(header), wall)]
    for record in records:
        if not isinstance(record, cls):
            raise FileFormatError(f"{type(record).__name__} in a {kind} file")
        lines.append(_join(fields_of(record), wall))
    return "".join(line + "~" + newline for line in lines) + "||"


def write_file(
    kind: str,
    header: Header,
    records: Sequence[Record],
    *,
    tz: ZoneInfo | None = None,
    stamp: datetime | None = None,
    newline: str = "\n",
    encoding: str = "utf-8",
) -> tuple[str, bytes]:
    """(file name, file bytes); the name's time is `stamp`, default the header's upload time."""
    name = file_name(header.mine_code, kind, stamp or header.upload_time, tz=tz)
    return name, render(kind, header, records, tz=tz, newline=newline).encode(encoding)


def _join(fields: Sequence[Field], wall: WallClock) -> str:
    return ";".join(_text(value, wall) for value in fields)


def _text(value: Field, wall: WallClock) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return wall.to_local_text(value)
    if isinstance(value, float):
        return repr(value)  # shortest text that parses back to the same float
    text = str(value)
    if any(bad in text for bad in _FORBIDDEN) or text != text.strip():
        raise FileFormatError(f"field {text!r} cannot be written: separator, line break or blanks")
    return text


def _header_fields(h: Header) -> list[Field]:
    expiry = h.certificate_expiry.isoformat() if h.certificate_expiry else None
    return [
        h.mine_code,
        h.mine_name,
        h.system_model,
        h.system_name,
        h.manufacturer,
        expiry,
        h.upload_time,
    ]


def _cddy(r: Record) -> list[Field]:
    assert isinstance(r, CddyRecord)
    relations = render_relations(r.relations)
    # The relation grammar has several ways to go wrong (kinds, `-` or `:` in the parts,
    # blanks); checking that the text parses back is exact and cheap at CDDY's size.
    try:
        parsed = parse_relations(relations)
    except RelationSyntaxError as exc:
        raise FileFormatError(f"relations of {r.point!r} cannot be written: {exc}") from exc
    if parsed != tuple(r.relations):
        raise FileFormatError(f"relations of {r.point!r} would not parse back as written")
    return [
        r.point,
        r.system_code,
        r.station,
        r.sensor_type,
        r.value_type,
        r.unit,
        r.range_high,
        r.range_low,
        r.alarm_upper,
        r.clear_upper,
        r.alarm_lower,
        r.clear_lower,
        r.power_off_upper,
        r.restore_upper,
        r.power_off_lower,
        r.restore_lower,
        r.on_text,
        r.off_text,
        r.location,
        r.x,
        r.y,
        r.z,
        relations or None,
        r.data_time,
    ]


def _cdss(r: Record) -> list[Field]:
    assert isinstance(r, CdssRecord)
    return [r.point, r.type_name, r.location, r.value, r.unit, r.status, r.data_time]


def _fzdy(r: Record) -> list[Field]:
    assert isinstance(r, FzdyRecord)
    return [r.station, r.location, r.x, r.y, r.z, r.data_time]


def _fzss(r: Record) -> list[Field]:
    assert isinstance(r, FzssRecord)
    return [r.station, r.run_code, r.power_code, r.data_time]


def _tjsj(r: Record) -> list[Field]:
    assert isinstance(r, TjsjRecord)
    return [
        r.point,
        r.type_name,
        r.location,
        r.unit,
        r.start,
        r.end,
        r.max,
        r.max_time,
        r.min,
        r.min_time,
        r.average,
        r.data_time,
    ]


def _ycbj(r: Record) -> list[Field]:
    assert isinstance(r, YcbjRecord)
    return [
        r.point,
        r.type_name,
        r.location,
        r.unit,
        r.abnormal_code,
        r.start,
        r.end,
        r.max,
        r.max_time,
        r.min,
        r.min_time,
        r.average,
        r.cause,
        r.measures,
        r.entry_time,
        r.entered_by,
        r.data_time,
    ]


_FIELDS: dict[str, Callable[[Record], list[Field]]] = {
    "CDDY": _cddy,
    "CDSS": _cdss,
    "FZDY": _fzdy,
    "FZSS": _fzss,
    "TJSJ": _tjsj,
    "YCBJ": _ycbj,
}
