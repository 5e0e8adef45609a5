"""The processed-files ledger, and the ledger-guarded ingestion of one complete upload file.

The ledger is keyed by the sha256 of a file's bytes. Its row is written in the transaction
that commits the rows it counts, so it never says more (or less) than the database holds:
`done` means every record is committed (the content is never ingested again, whatever the
file is called), `started` says up to which record (`done_ordinal`) a stopped run got, and
the next run resumes after it. Data files are stored in chunks, each one transaction of rows,
dead letters and ledger progress; registry files (CDDY, FZDY) update the registry in one
transaction, then re-process the dead letters they resolve, then are marked done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import asyncpg

from ingest.errors import IngestError
from ingest.files.container import FILE_TYPES, is_complete, parse_file_name
from ingest.files.errors import FileRejected
from ingest.files.parse import parse_file, too_many
from ingest.files.records import CddyRecord, FzdyRecord, ParsedFile, Record, RecordError
from ingest.files.registry_update import apply_cddy, apply_fzdy, load_lookup, load_mine, reprocess
from ingest.files.source import (
    INCOMPLETE,
    REGISTRY_KINDS,
    UNKNOWN_MINE,
    Converted,
    FileSourceSettings,
    FileSummary,
    MineInfo,
    chunks,
    convert,
    display_name,
    file_dead_letter,
    raw_records,
    record_dead_letter,
    reject_dead_letter,
)
from ingest.files.stats import store_chunk
from ingest.files.wallclock import WallClock
from ingest.metrics import IngestMetrics
from ingest.store import BatchStore, DeadLetter
from ingest.validate import DUPLICATE_CONFLICT, UNPROCESSABLE, Lookup
from minewatch.clock import Clock
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.text import log_safe
from minewatch.timeutil import zone

log = logging.getLogger(__name__)

STARTED = "started"
DONE = "done"
QUARANTINED = "quarantined"

_COLUMNS = ("id, sha256, name, size, mine_code, kind, state, records, done_ordinal, stored, duplicates, "
            "rejected, summary, reason, detail, attempts, started_at, finished_at")


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row."""

    id: int
    sha256: str
    name: str
    size: int
    mine_code: str | None
    kind: str | None
    state: str
    records: int
    done_ordinal: int
    stored: int
    duplicates: int
    rejected: dict[str, int] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    detail: str | None = None
    attempts: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None


def _entry(r: asyncpg.Record) -> LedgerEntry:
    return LedgerEntry(r["id"], r["sha256"], r["name"], r["size"], r["mine_code"], r["kind"], r["state"],
                       r["records"], r["done_ordinal"], r["stored"], r["duplicates"], json.loads(r["rejected"]),
                       json.loads(r["summary"]), r["reason"], r["detail"], r["attempts"], r["started_at"],
                       r["finished_at"])


@dataclass(frozen=True)
class FileKey:
    """The file a ledger row is about: its content hash and what was read from it."""

    sha256: str
    name: str
    size: int
    mine_code: str
    kind: str
    records: int  # data records, good and bad


@dataclass(frozen=True)
class Progress:
    """Where a file's ingestion stands after a committed chunk (absolute totals, not increments)."""

    upto: int
    stored: int
    duplicates: int
    rejected: Mapping[str, int]
    summary: Mapping[str, int]


class Ledger:
    """Reads and writes `file_ledger` on one connection (inside the caller's transactions)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, sha256: str) -> LedgerEntry | None:
        """The row of this content, if any file with it was seen."""
        r = await self.conn.fetchrow(f"SELECT {_COLUMNS} FROM file_ledger WHERE sha256 = $1", sha256)  # noqa: S608 (constant)
        return None if r is None else _entry(r)

    async def by_name(self, name: str) -> list[LedgerEntry]:
        """Every row recorded under this file name, oldest first."""
        rows = await self.conn.fetch(f"SELECT {_COLUMNS} FROM file_ledger WHERE name = $1 ORDER BY id", name)  # noqa: S608
        return [_entry(r) for r in rows]

    async def record(self, key: FileKey, progress: Progress, *, done: bool, new_run: bool, now: datetime) -> None:
        """Insert or update the row after a committed chunk; `new_run` counts an attempt."""
        await self.conn.execute(
            "INSERT INTO file_ledger (sha256, name, size, mine_code, kind, state, records, done_ordinal, stored, "
            "duplicates, rejected, summary, started_at, finished_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14) "
            "ON CONFLICT (sha256) DO UPDATE SET name = EXCLUDED.name, size = EXCLUDED.size, "
            "mine_code = EXCLUDED.mine_code, kind = EXCLUDED.kind, state = EXCLUDED.state, "
            "records = EXCLUDED.records, done_ordinal = EXCLUDED.done_ordinal, stored = EXCLUDED.stored, "
            "duplicates = EXCLUDED.duplicates, rejected = EXCLUDED.rejected, summary = EXCLUDED.summary, "
            "reason = NULL, detail = NULL, finished_at = EXCLUDED.finished_at, "
            "attempts = file_ledger.attempts + $15::int, "
            "started_at = CASE WHEN $15::int = 1 THEN EXCLUDED.started_at ELSE file_ledger.started_at END",
            key.sha256, key.name, key.size, key.mine_code, key.kind, DONE if done else STARTED, key.records, progress.upto,
            progress.stored, progress.duplicates, json.dumps(dict(progress.rejected)),
            json.dumps(dict(progress.summary)), now, now if done else None, 1 if new_run else 0)

    async def quarantine(self, *, sha256: str, name: str, size: int, mine_code: str | None, kind: str | None,
                         reason: str, detail: str, now: datetime) -> None:
        """Record that a whole file was refused (it goes to the quarantine directory)."""
        await self.conn.execute(
            "INSERT INTO file_ledger (sha256, name, size, mine_code, kind, state, reason, detail, started_at, "
            "finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) "
            "ON CONFLICT (sha256) DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state, "
            "mine_code = EXCLUDED.mine_code, kind = EXCLUDED.kind, reason = EXCLUDED.reason, "
            "detail = EXCLUDED.detail, finished_at = EXCLUDED.finished_at, attempts = file_ledger.attempts + 1",
            sha256, name, size, mine_code, kind, QUARANTINED, reason, detail, now)


# SQLSTATE classes that say "try again later" (connection, rollback, resources, operator
# intervention, system); any other database error is about the file's content and would
# fail the same way for ever, so the file is quarantined as unprocessable instead.
_TRANSIENT: Final = ("08", "40", "53", "57", "58", "XX")

Report = Callable[[int, int], None]  # (records done, records in the file): progress bars


class _ReportFailed(Exception):
    """The caller's `progress` raised: `_guard` re-raises the caller's exception as it was (a stop
    asked for by the caller is not a fault of the file)."""


def _tally(dead: list[DeadLetter]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dead:
        out[d.reason] = out.get(d.reason, 0) + 1
    return out


class FileIngester:
    """Stores complete upload files in PostgreSQL, one at a time, on one connection of its own."""

    def __init__(self, dsn: str, *, clock: Clock, settings: FileSourceSettings | None = None,
                 metrics: IngestMetrics | None = None) -> None:
        self.dsn = dsn
        self.clock = clock
        self.settings = settings or FileSourceSettings()
        self.metrics = metrics
        self._tolerance = timedelta(seconds=self.settings.future_tolerance_s)
        self._conn: asyncpg.Connection | None = None
        self._keeper: PartitionKeeper | None = None
        self._mines: dict[str, tuple[MineInfo | None, Lookup | None, float]] = {}

    async def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 2)
        self._conn = None

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "minewatch-files"})
            self._keeper = PartitionKeeper(await current_backend(self._conn))
        return self._conn

    def _store(self, conn: asyncpg.Connection) -> BatchStore:
        assert self._keeper is not None
        return BatchStore(conn, self._keeper, source="file")

    async def ingest(self, name: str, data: bytes, *, progress: Report | None = None,
                     recovered: bool = False) -> FileSummary:
        """Store one file (`name` as uploaded, `data` its bytes) and say what became of it.

        States: `done`; `already_done` (this content is in the ledger as done: nothing is
        stored again); `incomplete` (no `||`: nothing done, look again later); `rejected` (a
        whole-file reason: a ledger row and a dead letter). `recovered`: the watcher took this
        file before a stop and finds it again; if the ledger already quarantined this content
        no second dead letter is written. Raises `IngestError` while the database is unavailable.
        The name may be anything a directory listing returns (see `display_name`).
        """
        name = display_name(name)
        return await self._guard(name, data, lambda: self._ingest(name, data, progress, recovered))

    async def refuse(self, name: str, data: bytes, reason: str, detail: str, *, sha: str | None = None,
                     size: int | None = None, ledger: bool = True, recovered: bool = False) -> FileSummary:
        """Refuse a whole file the watcher judged unusable: a dead letter (and a ledger row).

        `data` is what the dead letter keeps (the head of an oversized file); `sha` and `size`
        are of the whole file when `data` is not all of it. `ledger=False` for entries that
        have no content (a link): a dead letter only.
        """
        name = display_name(name)
        return await self._guard(name, data, lambda: self._refuse(name, data, reason, detail, sha, size, ledger,
                                                                 recovered))

    async def _refuse(self, name: str, data: bytes, reason: str, detail: str, sha: str | None, size: int | None,
                      ledger: bool, recovered: bool) -> FileSummary:
        if recovered:
            conn = await self._connect()
            entry = await Ledger(conn).get(sha or hashlib.sha256(data).hexdigest())
            if entry is not None and entry.state == QUARANTINED:
                return self._again(entry)
        return await self._reject(name, data, reason, detail, sha=sha, size=size, ledger=ledger)

    @staticmethod
    def _again(entry: LedgerEntry) -> FileSummary:
        # A file this run's predecessor refused but could not move: not dead-lettered again.
        return FileSummary(entry.name, "rejected", entry.kind, entry.mine_code, reason=entry.reason,
                           detail=entry.detail, sha256=entry.sha256)

    async def quarantine_incomplete(self, name: str, data: bytes, *, waited: timedelta) -> FileSummary:
        """Record that a file stayed without `||` too long: a ledger row and a dead letter."""
        name = display_name(name)
        detail = f"no `||` terminator after {waited.total_seconds():.0f} s: cut off in transfer"
        return await self._guard(name, data, lambda: self._reject(name, data, INCOMPLETE, detail))

    async def _guard(self, name: str, data: bytes, work: Callable[[], Awaitable[FileSummary]]) -> FileSummary:
        try:
            return await work()
        except _ReportFailed as exc:
            assert exc.__cause__ is not None
            raise exc.__cause__ from None
        except (OSError, asyncpg.InterfaceError) as exc:
            await self.close()
            raise IngestError(f"{name}: database unavailable: {exc}") from exc
        except asyncpg.PostgresError as exc:
            await self.close()
            state = str(getattr(exc, "sqlstate", "") or "")
            if not state or state[:2] in _TRANSIENT:
                raise IngestError(f"{name}: database error: {exc}") from exc
            log.exception("%s cannot be stored; it is refused as unprocessable", log_safe(name))
            failure = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug must cost this one file (kept whole, dead-lettered), not the file worker
            await self.close()
            log.exception("%s could not be processed; it is refused as unprocessable", log_safe(name))
            failure = f"{type(exc).__name__}: {exc}"
        try:
            return await self._reject(name, data, UNPROCESSABLE, failure)
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresError) as again:
            await self.close()
            raise IngestError(f"{name}: database error: {again}") from again

    async def _ingest(self, name: str, data: bytes, progress: Report | None, recovered: bool) -> FileSummary:
        conn = await self._connect()
        sha = hashlib.sha256(data).hexdigest()
        entry = await Ledger(conn).get(sha)
        if entry is not None and entry.state == DONE:
            return FileSummary(name, "already_done", entry.kind, entry.mine_code, entry.records,
                               detail=f"same content as {entry.name}, done at {entry.finished_at}", sha256=sha)
        if recovered and entry is not None and entry.state == QUARANTINED:
            return self._again(entry)
        if not is_complete(data):
            return FileSummary(name, "incomplete")
        try:
            code = parse_file_name(name, WallClock(zone())).mine_code
        except FileRejected as exc:
            return await self._reject(name, data, exc.reason, exc.detail)
        mine, lookup = await self._mine(code)
        if mine is None or lookup is None:
            return await self._reject(name, data, UNKNOWN_MINE, f"mine {code!r} is not in the registry", mine=code)
        limit = self.settings.max_record_errors
        try:
            parsed = parse_file(name, data, tz=mine.tz, power_table=mine.power_table, encoding=mine.encoding,
                                max_errors=limit)
        except FileRejected as exc:
            return await self._reject(name, data, exc.reason, exc.detail, mine=code)
        resume = entry if entry is not None and entry.state == STARTED else None
        if resume is None and parsed.type not in REGISTRY_KINDS and len(parsed.records) + len(parsed.errors) > limit:
            # Counted before anything is stored, so a file over the limit stores nothing.
            bad, lookup = await self._refusals(parsed, mine, lookup)
            if len(bad) > limit:
                refusal = too_many(bad, limit)
                return await self._reject(name, data, refusal.reason, refusal.detail, mine=code)
        key = FileKey(sha, name, len(data), mine.code, parsed.type, len(parsed.records) + len(parsed.errors))
        summary = FileSummary(name, "done", parsed.type, mine.code, key.records, sha256=sha)
        if resume is not None:  # what the chunks an earlier run committed did
            summary.add(resume.stored, resume.duplicates, resume.rejected)
            summary.extra.update(resume.summary)
        if parsed.type in REGISTRY_KINDS:
            await self._registry(conn, parsed, data, mine, key, resume, summary)
        else:
            await self._data(conn, parsed, data, mine, lookup, key, resume, summary, progress)
        self._count(summary)
        return summary

    async def _mine(self, code: str, *, fresh: bool = False) -> tuple[MineInfo | None, Lookup | None]:
        """The mine and its lookup, cached for `lookup_refresh_s` (a registry file of the mine resets it)."""
        cached = self._mines.get(code)
        if cached is not None and not fresh and time.monotonic() - cached[2] < self.settings.lookup_refresh_s:
            return cached[0], cached[1]
        conn = await self._connect()
        mine = await load_mine(conn, code)
        lookup = None if mine is None else await load_lookup(conn, mine)
        self._mines[code] = (mine, lookup, time.monotonic())
        return mine, lookup

    def _convert(self, kind: str, records: Sequence[Record], lookup: Lookup, mine: str, now: datetime) -> Converted:
        oldest = now - timedelta(days=self.settings.retention_days)
        return convert(kind, records, lookup, mine, now=now, future_tolerance=self._tolerance, oldest=oldest)

    async def _refusals(self, parsed: ParsedFile, mine: MineInfo, lookup: Lookup) -> tuple[list[RecordError], Lookup]:
        """The file's bad records (parse errors, then registry refusals) up to one past the limit."""
        bad = list(parsed.errors)
        now = self.clock.now()
        refreshed = False
        for chunk in chunks(parsed.records, (), self.settings.chunk_rows):
            conv = self._convert(parsed.type, chunk.records, lookup, mine.code, now)
            if not refreshed and any(r.reason.startswith("unknown_") for r in conv.rejects):
                refreshed = True
                fresh = (await self._mine(mine.code, fresh=True))[1]
                if fresh is not None:
                    lookup = fresh
                    conv = self._convert(parsed.type, chunk.records, lookup, mine.code, now)
            bad += [RecordError(r.line, r.ordinal, r.reason, r.detail, "") for r in conv.rejects]
            if len(bad) > self.settings.max_record_errors:
                break
        bad.sort(key=lambda e: e.ordinal)
        return bad, lookup

    async def _data(self, conn: asyncpg.Connection, parsed: ParsedFile, data: bytes, mine: MineInfo, lookup: Lookup,
                    key: FileKey, resume: LedgerEntry | None, summary: FileSummary, progress: Report | None) -> None:
        now = self.clock.now()
        ledger, store = Ledger(conn), self._store(conn)
        after = resume.done_ordinal if resume is not None else 0
        parts = list(chunks(parsed.records, parsed.errors, self.settings.chunk_rows, after=after))
        raw: dict[int, str] | None = None

        def texts() -> dict[int, str]:
            nonlocal raw
            raw = raw if raw is not None else raw_records(data, parsed.encoding)
            return raw

        refreshed = False
        for i, chunk in enumerate(parts):
            conv = self._convert(key.kind, chunk.records, lookup, mine.code, now)
            if not refreshed and any(r.reason.startswith("unknown_") for r in conv.rejects):
                # Our copy of the registry may predate a definition: refresh it once per file.
                refreshed = True
                fresh = (await self._mine(mine.code, fresh=True))[1]
                if fresh is not None:
                    lookup = fresh
                    conv = self._convert(key.kind, chunk.records, lookup, mine.code, now)
            dead = [record_dead_letter(e, name=key.name, mine=mine.code, now=now) for e in chunk.errors]
            if conv.rejects:
                dead += [reject_dead_letter(r, texts().get(r.ordinal, ""), name=key.name, mine=mine.code, now=now)
                         for r in conv.rejects]
            async with conn.transaction():
                done = await store_chunk(conn, store, conv, dead, name=key.name, mine_id=mine.id,
                                         mine_code=mine.code, now=now, records=chunk.records, texts=texts)
                rejected = _tally(dead)
                if done.conflicts:
                    rejected[DUPLICATE_CONFLICT] = done.conflicts
                summary.add(done.stored, done.duplicates, rejected)
                await ledger.record(key, Progress(chunk.upto, summary.stored, summary.duplicates, summary.rejected,
                                                  summary.extra), done=i == len(parts) - 1, new_run=i == 0, now=now)
            if progress is not None:
                try:
                    progress(chunk.upto, key.records)
                except Exception as exc:
                    raise _ReportFailed from exc

    async def _registry(self, conn: asyncpg.Connection, parsed: ParsedFile, data: bytes, mine: MineInfo, key: FileKey,
                        resume: LedgerEntry | None, summary: FileSummary) -> None:
        """Apply the definitions (once: a resumed run only re-processes), then the dead letters they resolve."""
        now = self.clock.now()
        ledger = Ledger(conn)
        last = max([r.ordinal for r in parsed.records] + [e.ordinal for e in parsed.errors] + [0])
        if resume is None or resume.done_ordinal < last:
            limit = now + self._tolerance
            async with conn.transaction():
                if key.kind == "CDDY":
                    cddy = [r for r in parsed.records if isinstance(r, CddyRecord)]
                    applied = await apply_cddy(conn, mine, cddy, now=now, limit=limit)
                else:
                    fzdy = [r for r in parsed.records if isinstance(r, FzdyRecord)]
                    applied = await apply_fzdy(conn, mine, fzdy, limit=limit)
                dead = [record_dead_letter(e, name=key.name, mine=mine.code, now=now) for e in parsed.errors]
                if applied.rejects:
                    raw = raw_records(data, parsed.encoding)
                    dead += [reject_dead_letter(r, raw.get(r.ordinal, ""), name=key.name, mine=mine.code, now=now)
                             for r in applied.rejects]
                if dead:
                    await self._store(conn).write({}, dead, now=now)
                summary.add(applied.definitions, 0, _tally(dead))
                summary.extra.update(created=applied.created, threshold_versions=applied.threshold_versions,
                                     relations=applied.relations)
                await conn.execute(
                    "INSERT INTO registry_loads (loaded_at, source, checksum, summary) VALUES ($1, $2, $3, $4::jsonb)",
                    now, f"file:{key.name}", key.sha256, json.dumps(summary.extra))
                # Still `started`: the dead letters these definitions resolve come next.
                await ledger.record(key, Progress(last, summary.stored, 0, summary.rejected, summary.extra),
                                    done=False, new_run=True, now=now)
        _, lookup = await self._mine(mine.code, fresh=True)
        assert lookup is not None and self._keeper is not None
        again = await reprocess(conn, mine=mine, lookup=lookup, keeper=self._keeper, now=now,
                                future_tolerance=self._tolerance,
                                oldest=now - timedelta(days=self.settings.retention_days))
        summary.extra.update(reprocessed=again.resolved, reprocessed_stored=again.stored,
                             still_unknown=again.still_unknown)
        async with conn.transaction():
            await ledger.record(key, Progress(last, summary.stored, 0, summary.rejected, summary.extra),
                                done=True, new_run=False, now=now)

    async def _reject(self, name: str, data: bytes, reason: str, detail: str, *, mine: str | None = None,
                      sha: str | None = None, size: int | None = None, ledger: bool = True) -> FileSummary:
        """A whole file refused: a dead letter and a ledger row, in one transaction."""
        conn = await self._connect()
        now = self.clock.now()
        parts = name.rsplit(".", 1)[0].rsplit("_", 2)
        kind = parts[1].upper() if len(parts) == 3 and parts[1].upper() in FILE_TYPES else None
        sha = sha or hashlib.sha256(data).hexdigest()
        async with conn.transaction():
            await self._store(conn).write({}, [file_dead_letter(name, data, reason, detail, mine=mine, now=now)], now=now)
            if ledger:
                await Ledger(conn).quarantine(sha256=sha, name=name, size=len(data) if size is None else size,
                                              mine_code=mine, kind=kind, reason=reason, detail=detail, now=now)
        summary = FileSummary(name, "rejected", kind, mine, reason=reason, detail=detail,
                              sha256=sha if ledger else None)
        self._count(summary)
        return summary

    def _count(self, s: FileSummary) -> None:
        if self.metrics is None:
            return
        m = self.metrics
        m.messages.labels("file").inc()
        table = {"CDSS": "readings", "FZSS": "station_states", "TJSJ": "reported_stats",
                 "YCBJ": "reported_abnormal"}.get(s.kind or "", "registry")
        m.received.labels(f"file_{(s.kind or 'unknown').lower()}").inc(s.records)
        m.stored.labels(table).inc(s.stored)
        m.duplicates.labels(table).inc(s.duplicates)
        for reason, n in s.rejected.items():
            m.rejected.labels(reason).inc(n)
        if s.reason is not None:
            m.rejected.labels(s.reason).inc()
