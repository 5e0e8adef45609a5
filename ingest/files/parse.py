"""Parsing a complete upload file into typed records and per-record errors (pure: bytes in).

Record error reasons (`RecordError.reason`), stable snake_case codes:

- `field_count`: the record does not have the type's number of fields
- `missing_field`: a required field is empty
- `bad_number`: a number does not parse (or is NaN / infinite)
- `bad_time`: a time is not `yyyy-MM-dd HH:mm:ss` or not a real local time
- `bad_status`: a point status is not a non-negative integer
- `point_code_too_long`: a point code exceeds the length limit (see `point_code_limit`)
- `point_mine_mismatch`: a point code does not start with the file's mine code
- `station_mine_mismatch`: a station code does not start with the file's mine code
- `bad_relations`: a CDDY relation group is malformed
- `unterminated_record`: text after the last `~` (the record has no end mark)

Empty optional fields become None; an empty CDSS status means 0 (normal), as in the MQTT
contract where `status` defaults to 0.

Whole-file problems raise `IncompleteFile` or `FileRejected` (see `errors.REJECT_REASONS`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from ingest.files.container import (
    RecordSplitter,
    Row,
    is_complete,
    parse_file_name,
    parse_header,
    split_fields,
    strip_terminator,
)
from ingest.files.encoding import decode
from ingest.files.errors import FileRejected, IncompleteFile
from ingest.files.records import (
    ABNORMAL_TYPES,
    POWER_TABLE_DC0,
    RUN_STATES,
    CddyRecord,
    CdssRecord,
    FzdyRecord,
    FzssRecord,
    ParsedFile,
    Record,
    RecordError,
    Relation,
    TjsjRecord,
    YcbjRecord,
)
from ingest.files.relations import RelationSyntaxError, parse_relations
from ingest.files.wallclock import WallClock
from minewatch.timeutil import zone

RECORD_ERROR_REASONS: tuple[str, ...] = (
    "field_count",
    "missing_field",
    "bad_number",
    "bad_time",
    "bad_status",
    "point_code_too_long",
    "point_mine_mismatch",
    "station_mine_mismatch",
    "bad_relations",
    "unterminated_record",
)

# formats.md: a point code is at most 28 characters for a 12-character mine code (12 + 2
# system + 2 value type + 4 sensor type + 8 own id). Longer mine codes exist and cannot fit
# 28, so the limit keeps the 16 characters after the mine code instead of shrinking them.
POINT_CODE_MAX = 28
_POINT_SUFFIX_MAX = POINT_CODE_MAX - 12


def point_code_limit(mine_code: str) -> int:
    """The longest point code accepted for a mine: 28, or mine code + 16 for longer codes."""
    return max(POINT_CODE_MAX, len(mine_code) + _POINT_SUFFIX_MAX)


class _Bad(Exception):
    """Internal: one record is bad; becomes a RecordError."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


class _Ctx:
    """What every field converter of one file needs."""

    __slots__ = ("mine", "point_max", "power_table", "wall")

    def __init__(self, mine: str, wall: WallClock, power_table: Mapping[int, str]) -> None:
        self.mine = mine
        self.wall = wall
        self.power_table = power_table
        self.point_max = point_code_limit(mine)

    def point(self, code: str) -> str:
        if not code:
            raise _Bad("missing_field", "point code is empty")
        if len(code) > self.point_max:
            raise _Bad("point_code_too_long", f"{code!r} has {len(code)} > {self.point_max} chars")
        if not code.startswith(self.mine):
            raise _Bad("point_mine_mismatch", f"{code!r} does not start with {self.mine!r}")
        return code

    def station(self, code: str) -> str:
        if not code:
            raise _Bad("missing_field", "station code is empty")
        if not code.startswith(self.mine):
            raise _Bad("station_mine_mismatch", f"{code!r} does not start with {self.mine!r}")
        return code

    def time(self, text: str, what: str) -> datetime:
        if not text:
            raise _Bad("missing_field", f"{what} is empty")
        try:
            return self.wall.to_utc(text)
        except ValueError:
            raise _Bad("bad_time", f"{what} {text!r} is not yyyy-MM-dd HH:mm:ss") from None

    def opt_time(self, text: str, what: str) -> datetime | None:
        return self.time(text, what) if text else None


def _num(text: str, what: str) -> float:
    if not text:
        raise _Bad("missing_field", f"{what} is empty")
    try:
        value = float(text)
    except ValueError:
        raise _Bad("bad_number", f"{what} {text!r} is not a number") from None
    if value - value != 0.0:  # NaN or ±inf: float() accepts them, the files must not
        raise _Bad("bad_number", f"{what} {text!r} is not finite")
    return value


def _opt_num(text: str, what: str) -> float | None:
    return _num(text, what) if text else None


def _int(text: str, what: str) -> int:
    if not text:
        raise _Bad("missing_field", f"{what} is empty")
    try:
        return int(text)
    except ValueError:
        raise _Bad("bad_number", f"{what} {text!r} is not an integer") from None


def _req(text: str, what: str) -> str:
    if not text:
        raise _Bad("missing_field", f"{what} is empty")
    return text


def _count(fields: list[str], *allowed: int) -> None:
    if len(fields) not in allowed:
        expected = " or ".join(map(str, allowed))
        raise _Bad("field_count", f"{len(fields)} fields, expected {expected}")


class _TooMany(Exception):
    """Internal: more bad records than the caller's limit; the parse stops here."""


def _cdss(rows: list[Row], ctx: _Ctx, out: list[Record], errors: list[RecordError], max_errors: float) -> None:
    # The hot path: locals for everything looked up per row, the cached time lookup inlined.
    point_max = ctx.point_max
    mine = ctx.mine
    times = ctx.wall.known  # the converter's cache, read here to skip a call per row
    to_time = ctx.time
    append = out.append
    for line, ordinal, text in rows:
        fields = text.split(";")
        # The slow path is split_fields' full treatment (blanks, a stray trailing `;`); the
        # test is needs_strip(text) inlined, since it runs once per row.
        if len(fields) != 7 or text[-1] == ";" or not text.isprintable() or "; " in text or " ;" in text:
            fields = split_fields(text)
        try:
            if len(fields) != 7:
                raise _Bad("field_count", f"{len(fields)} fields, expected 7")
            point, type_name, location, value, unit, status, when = fields
            # Checked in field order, so a record with several faults reports the first.
            if not point or len(point) > point_max or not point.startswith(mine):
                point = ctx.point(point)  # raises with the precise reason
            number = _num(value, "value")
            code = int(status) if status.isdecimal() else (_status(status) if status else 0)
            stamp = times.get(when)
            if stamp is None:
                stamp = to_time(when, "data time")
            record = CdssRecord(point, type_name or None, location or None, number, unit or None, code, stamp, line, ordinal)
            append(record)
        except _Bad as bad:
            errors.append(RecordError(line, ordinal, bad.reason, bad.detail, text))
            if len(errors) > max_errors:
                raise _TooMany from None


def _status(text: str) -> int:
    # Only reached when the text is not plain digits: `+1`, `-1`, `1.0`, garbage.
    try:
        code = int(text)
    except ValueError:
        raise _Bad("bad_status", f"status {text!r} is not a non-negative integer") from None
    if code < 0:
        raise _Bad("bad_status", f"status {text!r} is negative")
    return code


def _cddy(f: list[str], ctx: _Ctx, line: int, ordinal: int) -> CddyRecord:
    _count(f, 24)
    # Fields are checked in file order, so a record with several faults reports the first.
    return CddyRecord(
        ctx.point(f[0]),
        _req(f[1], "system code"),
        ctx.station(f[2]) if f[2] else None,
        _req(f[3], "sensor type"),
        _req(f[4], "value type"),
        f[5] or None,
        _opt_num(f[6], "range high"),
        _opt_num(f[7], "range low"),
        _opt_num(f[8], "upper alarm"),
        _opt_num(f[9], "upper clear"),
        _opt_num(f[10], "lower alarm"),
        _opt_num(f[11], "lower clear"),
        _opt_num(f[12], "upper power-off"),
        _opt_num(f[13], "upper restore"),
        _opt_num(f[14], "lower power-off"),
        _opt_num(f[15], "lower restore"),
        f[16] or None,
        f[17] or None,
        f[18] or None,
        _opt_num(f[19], "X"),
        _opt_num(f[20], "Y"),
        _opt_num(f[21], "Z"),
        _relations(f[22]),
        ctx.time(f[23], "data time"),
        line,
        ordinal,
    )


def _relations(text: str) -> tuple[Relation, ...]:
    try:
        return parse_relations(text)
    except RelationSyntaxError as exc:
        raise _Bad("bad_relations", str(exc)) from None


def _fzdy(f: list[str], ctx: _Ctx, line: int, ordinal: int) -> FzdyRecord:
    _count(f, 5, 6)
    z = _opt_num(f[4], "Z") if len(f) == 6 else None
    return FzdyRecord(
        ctx.station(f[0]),
        f[1] or None,
        _opt_num(f[2], "X"),
        _opt_num(f[3], "Y"),
        z,
        ctx.time(f[-1], "data time"),
        line,
        ordinal,
    )


def _fzss(f: list[str], ctx: _Ctx, line: int, ordinal: int) -> FzssRecord:
    _count(f, 4)
    run = _int(f[1], "run state")
    power = _int(f[2], "power state") if f[2] else None
    return FzssRecord(
        ctx.station(f[0]),
        run,
        RUN_STATES.get(run),
        power,
        None if power is None else ctx.power_table.get(power),
        ctx.time(f[3], "data time"),
        line,
        ordinal,
    )


def _tjsj(f: list[str], ctx: _Ctx, line: int, ordinal: int) -> TjsjRecord:
    _count(f, 12)
    return TjsjRecord(
        ctx.point(f[0]),
        f[1] or None,
        f[2] or None,
        f[3] or None,
        ctx.time(f[4], "start"),
        ctx.time(f[5], "end"),
        _opt_num(f[6], "max"),
        ctx.opt_time(f[7], "max time"),
        _opt_num(f[8], "min"),
        ctx.opt_time(f[9], "min time"),
        _opt_num(f[10], "average"),
        ctx.time(f[11], "data time"),
        line,
        ordinal,
    )


def _ycbj(f: list[str], ctx: _Ctx, line: int, ordinal: int) -> YcbjRecord:
    _count(f, 17)
    code = _req(f[4], "abnormal type")
    name = ABNORMAL_TYPES.get(int(code)) if code.isascii() and code.isdigit() else None
    return YcbjRecord(
        ctx.point(f[0]),
        f[1] or None,
        f[2] or None,
        f[3] or None,
        code,
        name,
        name is not None,
        ctx.time(f[5], "start"),
        ctx.opt_time(f[6], "end"),
        _opt_num(f[7], "max"),
        ctx.opt_time(f[8], "max time"),
        _opt_num(f[9], "min"),
        ctx.opt_time(f[10], "min time"),
        _opt_num(f[11], "average"),
        f[12] or None,
        f[13] or None,
        ctx.opt_time(f[14], "entry time"),
        f[15] or None,
        ctx.time(f[16], "data time"),
        line,
        ordinal,
    )


_RowParser = Callable[[list[str], _Ctx, int, int], Record]
_PARSERS: dict[str, _RowParser] = {"CDDY": _cddy, "FZDY": _fzdy, "FZSS": _fzss, "TJSJ": _tjsj, "YCBJ": _ycbj}


def _parse_rows(kind: str, rows: list[Row], ctx: _Ctx, out: list[Record], errors: list[RecordError],
                max_errors: float) -> None:
    # Records of one type from already-split rows; one RecordError per bad row.
    if kind == "CDSS":
        _cdss(rows, ctx, out, errors, max_errors)
        return
    parser = _PARSERS[kind]
    for line, ordinal, text in rows:
        try:
            out.append(parser(split_fields(text), ctx, line, ordinal))
        except _Bad as bad:
            errors.append(RecordError(line, ordinal, bad.reason, bad.detail, text))
            if len(errors) > max_errors:
                raise _TooMany from None


def too_many(errors: Sequence[RecordError], limit: int) -> FileRejected:
    """The whole-file refusal of a file with more than `limit` bad records: one summary, not one per record."""
    tally = Counter(e.reason for e in errors)
    reasons = ", ".join(f"{r} {n}" for r, n in tally.most_common())
    first = errors[0]
    return FileRejected("too_many_errors", f"more than {limit} bad records (first at line {first.line}: "
                                           f"{first.reason}); the first {len(errors)}: {reasons}")


def parse_file(
    name: str,
    data: bytes,
    *,
    tz: ZoneInfo | None = None,
    power_table: Mapping[int, str] = POWER_TABLE_DC0,
    encoding: str | None = None,
    max_errors: int | None = None,
) -> ParsedFile:
    """Parse one complete upload file.

    `tz` is the mine's zone (default Asia/Shanghai) for the local wall-clock times;
    `power_table` maps FZSS power-state codes (`records.POWER_TABLES`); `encoding` names a
    source's known encoding instead of detecting it (see `encoding.decode`).
    Raises `IncompleteFile` (no `||`: leave the file alone) before anything else, then
    `FileRejected` for a bad name, unknown type, bad encoding, bad header or a mine mismatch,
    and `too_many_errors` as soon as more than `max_errors` records are bad (the rest of the
    file is not even split: memory stays bounded whatever the file holds).
    """
    if not is_complete(data):
        raise IncompleteFile(f"{name}: no `||` terminator: the file is incomplete")
    wall = WallClock(tz if tz is not None else zone())
    file_name = parse_file_name(name, wall)
    text, used = decode(data, encoding)
    splitter = RecordSplitter(strip_terminator(text))
    del text
    blocks = iter(splitter)
    rows = next(blocks, None)
    if not rows:
        raise FileRejected("bad_header", f"{name}: no `~`-terminated header record")
    header = parse_header(rows[0], wall)
    if header.mine_code != file_name.mine_code:
        raise FileRejected(
            "mine_mismatch",
            f"file name says {file_name.mine_code!r}, header says {header.mine_code!r}",
        )
    ctx = _Ctx(header.mine_code, wall, power_table)
    records: list[Record] = []
    errors: list[RecordError] = []
    limit = float("inf") if max_errors is None else max_errors
    try:
        _parse_rows(file_name.type, rows[1:], ctx, records, errors, limit)
        for rows in blocks:
            _parse_rows(file_name.type, rows, ctx, records, errors, limit)
        if splitter.rest is not None:
            line, ordinal, raw = splitter.rest
            errors.append(RecordError(line, ordinal, "unterminated_record", "no `~` before `||`", raw))
            if len(errors) > limit:
                raise _TooMany
    except _TooMany:
        assert max_errors is not None
        raise too_many(errors, max_errors) from None
    return ParsedFile(name, header.mine_code, file_name.type, file_name.stamp, header, records, errors, used)
