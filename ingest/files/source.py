"""The file source's pure core: parsed upload-file records checked against the registry, as rows and rejects.

The same checks as the MQTT validator (`ingest.validate`), applied to typed records: an
unknown point or station, a point owned by another mine, a time more than the tolerance
ahead of `now`, a status or code outside its range. Nothing here touches a file, a clock or
the database; `watch.py` does the IO.
"""

from __future__ import annotations

import bisect
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from ingest.files.container import split_records, strip_terminator
from ingest.files.encoding import decode
from ingest.files.errors import REJECT_REASONS
from ingest.files.records import (
    CdssRecord,
    FzssRecord,
    Record,
    RecordError,
    TjsjRecord,
    YcbjRecord,
)
from ingest.store import DeadLetter, stored_status
from ingest.validate import (
    BAD_VALUE,
    FUTURE_TIME,
    MINE_MISMATCH,
    TOO_LARGE,
    TOO_OLD,
    UNKNOWN_POINT,
    UNKNOWN_STATION,
    Lookup,
)
from minewatch.text import MAX_NAME_CHARS, storable

# Whole-file reasons: the parser's, plus those only the source can tell.
UNKNOWN_MINE: Final = "unknown_mine"  # the file's mine is not in the registry
INCOMPLETE: Final = "incomplete"  # still no `||` after the quarantine timeout
NOT_REGULAR: Final = "not_regular_file"  # a link, FIFO, socket, device or hard link in the drop: never read
FILE_REASONS: Final = (*REJECT_REASONS, UNKNOWN_MINE, INCOMPLETE, NOT_REGULAR, TOO_LARGE)

# A relation in a CDDY record names a point that is not defined (here or earlier).
UNKNOWN_RELATION_POINT: Final = "unknown_relation_point"

# Which table each data file type fills; CDDY and FZDY update the registry instead.
TABLE_OF_KIND: Final = {
    "CDSS": "readings",
    "FZSS": "station_states",
    "TJSJ": "reported_stats",
    "YCBJ": "reported_abnormal",
}
REGISTRY_KINDS: Final = ("CDDY", "FZDY")

# Whole-file dead letters hold the file's text up to this size: the file itself is kept
# whole in quarantine, and a dead-letter row of hundreds of megabytes helps nobody.
MAX_FILE_PAYLOAD: Final = 1 << 20

_SMALLINT_CODE = range(256)  # run / power codes: the MQTT validator's bound


class FileSourceSettings(BaseModel):
    """How the file source polls, waits for incomplete files and sizes its transactions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A mine uploads every 10 s; polling every second adds little latency for one listing.
    poll_s: float = Field(default=1.0, gt=0, le=3600)
    # A file without `||` this long after it last changed is taken as cut off in transfer.
    incomplete_timeout_s: float = Field(default=600.0, ge=0)
    # Records per transaction: big enough that COPY dominates the per-commit cost, small
    # enough that a crash redoes little and memory stays flat on files of millions of rows.
    chunk_rows: int = Field(default=20_000, ge=1, le=1_000_000)
    # As for MQTT: data times further ahead of the server clock are refused.
    future_tolerance_s: int = Field(default=300, ge=0)
    # How long a copy of a mine's points and stations is trusted (its CDDY / FZDY resets it).
    lookup_refresh_s: float = Field(default=30.0, gt=0)
    # The drop directory reads no file bigger than this (it is quarantined whole, unread).
    # formats.md sizes it: the biggest legitimate upload is a CDDY of a large mine, some 5 000
    # points of 24 fields (≤ ~600 bytes each with Chinese names and relations) ≈ 3 MB; a
    # CDSS snapshot of the same mine is ≈ 0.75 MB. 32 MiB is ten times the biggest and keeps
    # the watcher's peak memory (decoded text + records) near 0.5 GB at worst. Backfills of
    # bigger files go through `minewatch import`, which an operator runs on chosen files.
    max_file_bytes: int = Field(default=32 << 20, ge=1024)
    # After this many bad records (parse errors and registry refusals) a file is quarantined
    # whole with ONE dead letter: a file of millions of broken records is one fault, and
    # writing millions of dead letters (10 M for a 20 MB file) would be the attack's payoff.
    # A real file with a handful of bad records stays far below it.
    max_record_errors: int = Field(default=1_000, ge=1)
    # Records older than this (the database's retention) are `too_old` dead letters: they
    # would be dropped with their partition at the next retention run, and a year-0001 time
    # must not make anyone create partitions.
    retention_days: int = Field(default=730, ge=1)


@dataclass(frozen=True)
class MineInfo:
    """What the file source needs to know about the mine a file comes from."""

    id: int
    code: str
    tz: ZoneInfo
    power_table: Mapping[int, str]
    encoding: str | None  # a known encoding, or None to detect it


@dataclass(frozen=True)
class Reject:
    """A record refused by the registry checks; `raw` is filled in from the file text later."""

    line: int
    ordinal: int
    reason: str
    detail: str


@dataclass
class Converted:
    """Rows for one table from a run of records, the line of each row, and the refused records."""

    table: str
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    lo: datetime | None = None
    hi: datetime | None = None


@dataclass(frozen=True)
class Chunk:
    """Records and parse errors with ordinals in (after, upto]: one transaction's worth."""

    records: Sequence[Record]
    errors: Sequence[RecordError]
    upto: int


@dataclass
class FileSummary:
    """What became of one file: counts for the ledger, the CLI and the metrics."""

    name: str
    state: str  # done | already_done | rejected | incomplete
    kind: str | None = None
    mine_code: str | None = None
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    extra: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    detail: str | None = None
    moved_to: str | None = None  # where the watcher put the file (archive or quarantine)
    sha256: str | None = None  # of the bytes read (None when nothing was read)

    def add(self, stored: int, duplicates: int, rejected: Mapping[str, int]) -> None:
        self.stored += stored
        self.duplicates += duplicates
        self.rejected.update(rejected)


def chunks(records: Sequence[Record], errors: Sequence[RecordError], size: int, *, after: int = 0) -> Iterator[Chunk]:
    """Cut a file's records (and its parse errors) into chunks of at most `size` records.

    Records and errors are in ordinal order (the parser's); those with ordinal <= `after`
    were committed by an earlier run and are skipped. Every error goes with the chunk whose
    ordinal range holds it, the last chunk takes the rest, and a file with no records left
    still yields one (possibly empty) chunk so that its ledger row gets finished.
    """
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    ordinals = [r.ordinal for r in records]
    err_ordinals = [e.ordinal for e in errors]
    i = bisect.bisect_right(ordinals, after)
    j = bisect.bisect_right(err_ordinals, after)
    last = max(ordinals[-1] if ordinals else 0, err_ordinals[-1] if err_ordinals else 0, after)
    while True:
        part = records[i : i + size]
        i += len(part)
        upto = last if i >= len(records) else part[-1].ordinal
        k = bisect.bisect_right(err_ordinals, upto)
        yield Chunk(part, errors[j:k], upto)
        j = k
        if i >= len(records):
            return


def convert(kind: str, records: Sequence[Record], lookup: Lookup, mine: str, *, now: datetime,
            future_tolerance: timedelta = timedelta(minutes=5), oldest: datetime | None = None) -> Converted:
    """Rows of `TABLE_OF_KIND[kind]` for the records that pass the registry checks, rejects for the rest.

    A record whose data time is before `oldest` (the retention horizon) is refused `too_old`.
    """
    out = Converted(TABLE_OF_KIND[kind])
    limit = now + future_tolerance
    if kind == "CDSS":
        _cdss(records, lookup.points, mine, limit, out)
    elif kind == "FZSS":
        _fzss(records, lookup.stations, mine, limit, out)
    elif kind in ("TJSJ", "YCBJ"):
        _reported(records, lookup.points, mine, limit, out)
    else:
        raise ValueError(f"{kind} records are registry definitions, not rows")
    if oldest is not None and out.rows:
        _too_old(kind, records, oldest, out)
    if out.rows:
        times = [r[1] for r in out.rows] if kind in ("CDSS", "FZSS") else [r[-2] for r in out.rows]
        out.lo, out.hi = min(times), max(times)
    return out


def _cdss(records: Sequence[Record], points: Mapping[str, tuple[int, str]], mine: str, limit: datetime,
          out: Converted) -> None:
    # The hot path (100 000+ rows/s): one dict lookup and three comparisons per record.
    append = out.rows.append
    line = out.lines.append
    for r in records:
        assert isinstance(r, CdssRecord)
        known = points.get(r.point)
        if known is None or known[1] != mine or r.data_time > limit or r.status > 65_535:
            out.rejects.append(_refuse_point(r, known, mine, limit))
            continue
        append((known[0], r.data_time, r.value, stored_status(r.status)))
        line(r.line)


def _refuse_point(r: CdssRecord | TjsjRecord | YcbjRecord, known: tuple[int, str] | None, mine: str,
                  limit: datetime) -> Reject:
    # Same order of checks as the MQTT validator: registry, ownership, time, range.
    if known is None:
        return Reject(r.line, r.ordinal, UNKNOWN_POINT, f"point {r.point!r} is not in the registry")
    if known[1] != mine:
        return Reject(r.line, r.ordinal, MINE_MISMATCH, f"point {r.point!r} belongs to mine {known[1]}, file says {mine}")
    if r.data_time > limit:
        return Reject(r.line, r.ordinal, FUTURE_TIME, f"data time {r.data_time.isoformat()} is ahead of {limit.isoformat()}")
    assert isinstance(r, CdssRecord)
    return Reject(r.line, r.ordinal, BAD_VALUE, f"status {r.status} is not a 16-bit set of status bits")


def _fzss(records: Sequence[Record], stations: Mapping[str, tuple[int, str]], mine: str, limit: datetime,
          out: Converted) -> None:
    for r in records:
        assert isinstance(r, FzssRecord)
        known = stations.get(r.station)
        if known is None:
            out.rejects.append(Reject(r.line, r.ordinal, UNKNOWN_STATION, f"station {r.station!r} is not in the registry"))
        elif known[1] != mine:
            out.rejects.append(Reject(r.line, r.ordinal, MINE_MISMATCH,
                                      f"station {r.station!r} belongs to mine {known[1]}, file says {mine}"))
        elif r.data_time > limit:
            out.rejects.append(Reject(r.line, r.ordinal, FUTURE_TIME,
                                      f"data time {r.data_time.isoformat()} is ahead of {limit.isoformat()}"))
        elif r.run_code not in _SMALLINT_CODE or (r.power_code is not None and r.power_code not in _SMALLINT_CODE):
            out.rejects.append(Reject(r.line, r.ordinal, BAD_VALUE, "run / power code out of range 0..255"))
        else:
            # The raw power code is stored; its meaning comes from the mine's scheme (a view).
            out.rows.append((known[0], r.data_time, r.run_code, r.power_code))
            out.lines.append(r.line)


def _reported(records: Sequence[Record], points: Mapping[str, tuple[int, str]], mine: str, limit: datetime,
              out: Converted) -> None:
    for r in records:
        assert isinstance(r, TjsjRecord | YcbjRecord)
        known = points.get(r.point)
        if known is None or known[1] != mine or r.data_time > limit:
            out.rejects.append(_refuse_point(r, known, mine, limit))
            continue
        if isinstance(r, TjsjRecord):
            row: tuple[Any, ...] = (known[0], r.start, r.end, r.max, r.max_time, r.min, r.min_time, r.average,
                                    _opt_text(r.unit), r.data_time, r.line)
        else:
            row = (known[0], text_safe(r.abnormal_code), r.abnormal_type, r.start, r.end, r.max, r.max_time, r.min,
                   r.min_time, r.average, _opt_text(r.cause), _opt_text(r.measures), r.entry_time,
                   _opt_text(r.entered_by), _opt_text(r.unit), r.data_time, r.line)
        out.rows.append(row)
        out.lines.append(r.line)


def _too_old(kind: str, records: Sequence[Record], oldest: datetime, out: Converted) -> None:
    # Rare (a backlog beyond retention, a hostile year 0001): filter after the hot path.
    at = 1 if kind in ("CDSS", "FZSS") else -2
    if all(row[at] >= oldest for row in out.rows):
        return
    by_line: dict[int, list[Record]] = {}
    for r in records:
        by_line.setdefault(r.line, []).append(r)
    rows: list[tuple[Any, ...]] = []
    lines: list[int] = []
    for row, line in zip(out.rows, out.lines, strict=True):
        if row[at] >= oldest:
            rows.append(row)
            lines.append(line)
            continue
        ordinal = next((r.ordinal for r in by_line.get(line, ()) if r.data_time == row[at]), 0)
        out.rejects.append(Reject(line, ordinal, TOO_OLD,
                                  f"data time {row[at].isoformat()} is before the retention horizon {oldest.isoformat()}"))
    out.rows, out.lines = rows, lines
    out.rejects.sort(key=lambda r: r.ordinal)


def display_name(name: str) -> str:
    """A file name as storable, readable text: bytes that are not UTF-8 (surrogate escapes from
    `os.fsdecode`) shown as `\\xNN`, NUL replaced, cut to the dead-letter name limit."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = os.fsencode(name).decode("utf-8", "backslashreplace")
    return storable(name, MAX_NAME_CHARS)


def raw_records(data: bytes, encoding: str) -> dict[int, str]:
    """Ordinal -> text of every data record of a complete file (for dead letters).

    Parsed records keep no text (the CDSS hot path would pay for it on every row), so the
    text of the few refused ones is recovered by splitting the file again.
    """
    text, _ = decode(data, encoding)
    rows, rest = split_records(strip_terminator(text))
    out = {ordinal: raw for _, ordinal, raw in rows[1:]}
    if rest is not None:
        out[rest[1]] = rest[2]
    return out


def text_safe(text: str) -> str:
    """Text PostgreSQL accepts: it refuses NUL in `text`, which a damaged file may well contain."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _opt_text(text: str | None) -> str | None:
    return None if text is None else text_safe(text)


def record_dead_letter(error: RecordError, *, name: str, mine: str | None, now: datetime) -> DeadLetter:
    """A dead letter for a record the parser could not read."""
    return DeadLetter(now, "file", None, name, error.line, mine, error.reason, text_safe(error.detail),
                      text_safe(error.raw))


def reject_dead_letter(reject: Reject, raw: str, *, name: str, mine: str, now: datetime) -> DeadLetter:
    """A dead letter for a record the registry checks refused."""
    return DeadLetter(now, "file", None, name, reject.line, mine, reject.reason, text_safe(reject.detail),
                      text_safe(raw))


def file_dead_letter(name: str, data: bytes, reason: str, detail: str, *, mine: str | None, now: datetime) -> DeadLetter:
    """A dead letter for a whole file; the payload is its text (up to `MAX_FILE_PAYLOAD` bytes)."""
    if len(data) > MAX_FILE_PAYLOAD:
        detail += f" (payload: first {MAX_FILE_PAYLOAD} of {len(data)} bytes; the file is kept whole)"
    return DeadLetter(now, "file", None, name, None, mine, reason, text_safe(detail),
                      text_safe(_readable(data[:MAX_FILE_PAYLOAD], cut=len(data) > MAX_FILE_PAYLOAD)))


def _readable(data: bytes, *, cut: bool) -> str:
    # Dead letters are text: UTF-8 or GB18030 when the bytes decode (a cut may split the
    # last character, hence the few bytes of slack), else UTF-8 with replacement characters.
    for codec in ("utf-8", "gb18030"):
        for drop in range(4 if cut else 1):
            try:
                return data[: len(data) - drop].decode(codec)
            except UnicodeDecodeError:
                continue
    return data.decode("utf-8", "replace")
