"""The upload-file container: its name, the `~` records, the `||` terminator and the header."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import NamedTuple

from ingest.files.errors import FileRejected, IncompleteFile
from ingest.files.records import RECORD_TYPES, Header
from ingest.files.wallclock import WallClock

FILE_TYPES: tuple[str, ...] = tuple(RECORD_TYPES)
HEADER_FIELDS = 7
TERMINATOR = "||"
RECORD_END = "~"
FIELD_SEP = ";"

# Trailing bytes ignored after `||`: line ends, blanks and the NUL padding of preallocated files.
_TRAILING = " \t\r\n\x00"

# (line, ordinal, text): where a record starts (1-based line), its position among the file's
# records (header 0, data records 1..n) and its text without `~` and surrounding blanks.
Row = tuple[int, int, str]


class FileName(NamedTuple):
    """The parts of `{mine code}_{TYPE}_{yyyyMMddHHmmss}.txt`."""

    mine_code: str
    type: str
    stamp: datetime  # aware UTC


def parse_file_name(name: str, wall: WallClock) -> FileName:
    """Split a file name (a directory part is ignored); the mine code is opaque text.

    Raises `FileRejected` with `bad_file_name` or `unknown_type`.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot or ext.lower() != "txt":
        raise FileRejected("bad_file_name", f"{base!r} does not end in .txt")
    # rsplit: the mine code is opaque and may itself contain `_`.
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not parts[0].strip():
        raise FileRejected("bad_file_name", f"{base!r} is not {{mine}}_{{TYPE}}_{{time}}.txt")
    mine, kind, stamp = parts
    if len(stamp) != 14 or not (stamp.isascii() and stamp.isdigit()):
        raise FileRejected("bad_file_name", f"{base!r}: time {stamp!r} is not yyyyMMddHHmmss")
    text = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[8:10]}:{stamp[10:12]}:{stamp[12:14]}"
    try:
        when = wall.to_utc(text)
    except ValueError as exc:
        raise FileRejected("bad_file_name", f"{base!r}: time {stamp!r} is not a date") from exc
    if kind.upper() not in RECORD_TYPES:
        raise FileRejected("unknown_type", f"{base!r}: type {kind!r} not one of {', '.join(FILE_TYPES)}")
    return FileName(mine, kind.upper(), when)


def is_complete(data: bytes) -> bool:
    """Whether the bytes end with the `||` terminator (trailing blanks allowed).

    Checked on bytes, before decoding, so that a file cut inside a multi-byte character is
    reported as incomplete rather than as mis-encoded.
    """
    return data.rstrip(_TRAILING.encode()).endswith(TERMINATOR.encode())


def strip_terminator(text: str) -> str:
    """The text before `||`; raises `IncompleteFile` when the terminator is missing."""
    trimmed = text.rstrip(_TRAILING)
    if not trimmed.endswith(TERMINATOR):
        raise IncompleteFile("no `||` terminator: the file is incomplete")
    return trimmed[: -len(TERMINATOR)]


# Records are split a block of about this many characters at a time: `str.split` keeps the
# per-record cost in C, and the block bound keeps a file of millions of tiny records from
# becoming millions of strings at once (a parse that stops early then never builds them).
_BLOCK_CHARS = 1 << 20


class RecordSplitter:
    """The `~`-terminated records of `body` (header first), a block (list of rows) at a time.

    After iteration `rest` holds the unterminated text after the last `~`, if any. Blank
    records (`~~`, blank lines) are skipped. Line numbers count `\\n`, so CRLF and LF files
    number alike; records that share a line (no newline after `~`) share its number and are
    told apart by their ordinal.
    """

    def __init__(self, body: str, block: int = _BLOCK_CHARS) -> None:
        self.body = body
        self.block = block
        self.rest: Row | None = None
        self.line = 1
        self.ordinal = 0

    def __iter__(self) -> Iterator[list[Row]]:
        body = self.body
        end = body.rfind(RECORD_END)
        pos = 0
        while pos <= end:
            cut = body.rfind(RECORD_END, pos, pos + self.block)
            if cut < 0:
                cut = body.find(RECORD_END, pos + self.block)
            rows = self._rows(body[pos:cut].split(RECORD_END))
            pos = cut + 1
            if rows:
                yield rows
        tail = body[end + 1 :]  # whatever follows the last `~`: blank in a well-formed file
        text = tail.strip()
        if text:
            self.rest = (self.line + tail.count("\n", 0, tail.find(text[0])), self.ordinal, text)

    def _rows(self, chunks: list[str]) -> list[Row]:
        rows: list[Row] = []
        append = rows.append
        line = self.line
        ordinal = self.ordinal
        for chunk in chunks:
            text = chunk.strip()
            newlines = chunk.count("\n")
            if text:
                if newlines == 0 or (newlines == 1 and (chunk[0] == "\n" or chunk.startswith("\r\n"))):
                    # The usual layouts: records on one line, or one record per line (LF or CRLF).
                    start = line + newlines
                else:
                    # Count the newlines before the record's first non-blank character.
                    start = line + chunk.count("\n", 0, chunk.find(text[0]))
                append((start, ordinal, text))
                ordinal += 1
            line += newlines
        self.line, self.ordinal = line, ordinal
        return rows


def split_records(body: str) -> tuple[list[Row], Row | None]:
    """All the `~`-terminated records of `body` and the unterminated rest (see `RecordSplitter`)."""
    splitter = RecordSplitter(body)
    rows = [row for block in splitter for row in block]
    return rows, splitter.rest


def needs_strip(text: str) -> bool:
    """Whether a (stripped) record may have blanks around a `;` that must be removed.

    ASCII space is the only whitespace that `isprintable()` accepts, so one C scan rules out
    tabs, CR/LF, U+3000 and every other blank; a space then matters only next to a `;`
    (times contain a space, so `" " in text` would send every record down the slow path).
    """
    return not text.isprintable() or "; " in text or " ;" in text


def split_fields(text: str) -> list[str]:
    """The `;` fields of one record, blanks around each stripped.

    One trailing empty field (`...;~`) is dropped: no record type ends with an optional field
    (the data time always comes last), so it can only be a stray separator.
    """
    fields = text.split(FIELD_SEP)
    if needs_strip(text):
        fields = [f.strip() for f in fields]
    if len(fields) > 1 and not fields[-1]:
        fields.pop()
    return fields


def parse_header(row: Row, wall: WallClock) -> Header:
    """The header record; raises `FileRejected("bad_header")` if it cannot be read."""
    line, _, text = row
    fields = split_fields(text)
    if len(fields) != HEADER_FIELDS:
        raise FileRejected("bad_header", f"line {line}: {len(fields)} fields, expected {HEADER_FIELDS}")
    mine, mine_name, model, system, maker, expiry, uploaded = fields
    if not mine:
        raise FileRejected("bad_header", f"line {line}: empty mine code")
    try:
        upload_time = wall.to_utc(uploaded)
    except ValueError as exc:
        raise FileRejected("bad_header", f"line {line}: upload time {uploaded!r}") from exc
    return Header(
        mine,
        mine_name or None,
        model or None,
        system or None,
        maker or None,
        _expiry(expiry, line),
        upload_time,
    )


def _expiry(text: str, line: int) -> date | None:
    # yyyy-MM-dd; a full date-time is tolerated (some systems write the midnight time too).
    if not text:
        return None
    if len(text) in (10, 19) and text[4] == "-" and text[7] == "-":
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            pass
    raise FileRejected("bad_header", f"line {line}: certificate expiry {text!r} is not yyyy-MM-dd")
