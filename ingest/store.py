"""Idempotent batch storage: COPY into staging, INSERT ... ON CONFLICT DO NOTHING, one transaction per batch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import asyncpg
import numpy as np
from numpy.typing import NDArray

from minewatch.db import timeseries
from minewatch.db.timeseries import PartitionKeeper
from minewatch.registry.db import AlarmTable
from minewatch.text import (
    MAX_CODE_CHARS,
    MAX_DETAIL_CHARS,
    MAX_NAME_CHARS,
    opt_storable,
    storable,
    storable_payload,
)

from .errors import IngestError, UnstorableBatch
from .validate import DUPLICATE_CONFLICT


@dataclass(frozen=True)
class _Kind:
    table: str
    stage: str
    columns: tuple[str, ...]
    # SQL is constant per kind (no input reaches it); $1 is the kind label.
    insert: str
    conflicts: str


def _kind(table: str, cols: tuple[str, ...], key: tuple[str, str], mine_join: str, mine_col: str,
          stations: str = "NULL::int[]") -> _Kind:
    stage = f"stage_{table}"
    col_list = ", ".join(cols)
    keys = ", ".join(key)
    insert = (
        f"WITH ins AS (INSERT INTO {table} ({col_list}) "
        f"SELECT DISTINCT ON ({keys}) {col_list} FROM {stage} ORDER BY {keys}, seq "
        f"ON CONFLICT DO NOTHING RETURNING {col_list}), "
        f"w AS (INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows, urgent) "
        f"SELECT {mine_col}, '{table}', min(ins.ts), max(ins.ts), count(*), "
        f"{mine_col} = ANY($1::int[]) OR dirty_window_urgent({mine_col}, '{table}', min(ins.ts), max(ins.ts), "
        f"{stations}) FROM ins {mine_join} "
        f"GROUP BY {mine_col} RETURNING n_rows) "
        "SELECT coalesce(sum(n_rows), 0)::bigint FROM w"
    )
    value_cols = [c for c in cols if c not in key]
    differs = " OR ".join(f"s.{c} IS DISTINCT FROM t.{c}" for c in value_cols)
    conflicts = (
        f"SELECT s.seq, {', '.join('t.' + c for c in value_cols)} FROM {stage} s "
        f"JOIN {table} t ON {' AND '.join(f't.{k} = s.{k}' for k in key)} WHERE {differs} ORDER BY s.seq"
    )
    return _Kind(table, stage, ("seq", *cols), insert, conflicts)


KINDS: Final = {
    "readings": _kind("readings", ("point_id", "ts", "value", "status"), ("point_id", "ts"),
                      "JOIN points p ON p.id = ins.point_id", "p.mine_id"),
    "card_reads": _kind("card_reads", ("card_id", "ts", "station_id", "mine_id"), ("card_id", "ts"),
                        "", "ins.mine_id", "array_agg(DISTINCT ins.station_id)"),
    "station_states": _kind("station_states", ("station_id", "ts", "state", "power"), ("station_id", "ts"),
                            "JOIN stations st ON st.id = ins.station_id", "st.mine_id"),
}
_STAGE_DDL: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS stage_readings (seq integer, point_id integer, ts timestamptz, "
    "value double precision, status smallint) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS stage_card_reads (seq integer, card_id integer, ts timestamptz, "
    "station_id integer, mine_id integer) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS stage_station_states (seq integer, station_id integer, ts timestamptz, "
    "state smallint, power smallint) ON COMMIT DELETE ROWS",
)
DEAD_LETTER_COLUMNS: Final = ("received_at", "source", "topic", "file", "line", "mine_code", "reason", "detail",
                               "payload", "payload_raw", "payload_bytes")


@dataclass(frozen=True)
class DeadLetter:
    """A row for the dead-letter store.

    `payload` may be the bytes that arrived (kept as `payload_raw` when they are
    not storable text) or text; either way `row()` makes every field storable and
    caps the payload, so no dead letter can fail the batch that carries it.
    """

    received_at: datetime
    source: str
    topic: str | None
    file: str | None
    line: int | None
    mine_code: str | None
    reason: str
    detail: str
    payload: str | bytes
    # The size that arrived when `payload` is already a preview of it (a `too_large` message).
    payload_size: int | None = None

    def row(self) -> tuple[Any, ...]:
        """The dead letter as a `dead_letters` record (DEAD_LETTER_COLUMNS order), safe to COPY."""
        text, raw, size = storable_payload(self.payload)
        line = self.line if self.line is None or -2**31 <= self.line < 2**31 else None
        # mine_code is indexed: a btree entry must stay under ~2700 bytes, so a hostile topic's
        # mine level is cut far shorter than other names (real codes are 12-20 characters).
        return (self.received_at, storable(self.source), opt_storable(self.topic, MAX_NAME_CHARS),
                opt_storable(self.file, MAX_NAME_CHARS), line, opt_storable(self.mine_code, MAX_CODE_CHARS),
                storable(self.reason), storable(self.detail, MAX_DETAIL_CHARS), text, raw,
                size if self.payload_size is None else self.payload_size)


_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
# PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 UTC.
_PG_EPOCH_US: Final = 946_684_800_000_000
# One `readings` row in PostgreSQL's binary COPY format: field count, then (length, value) per
# column, big-endian, no padding. numpy fills the columns in bulk, so no per-row Python object
# (datetime, tuple) is built on the hot path and asyncpg has no per-record encoding to do.
_READING_ROW: Final = np.dtype([("n", ">i2"), ("l1", ">i4"), ("point_id", ">i4"), ("l2", ">i4"), ("ts", ">i8"),
                                ("l3", ">i4"), ("value", ">f8"), ("l4", ">i4"), ("status", ">i2")])
_COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER: Final = b"\xff\xff"
_DAY_US: Final = 86_400_000_000
_UNIX_ORDINAL: Final = date(1970, 1, 1).toordinal()


def stored_status(bits: int) -> int:
    """The `smallint` that stores 16 point-status bits (0..65535): the same bits, two's complement.

    Readers get the bits back with `status & 65535` (the API does; the rules' masks are low bits)."""
    return bits - 65_536 if bits >= 32_768 else bits


def us_to_datetime(us: int) -> datetime:
    """Epoch microseconds (UTC) -> aware datetime, exactly."""
    return _UNIX + timedelta(microseconds=us)


@dataclass
class ReadingColumns:
    """`readings` rows held as columns (point id, epoch µs, value, status) for the binary COPY fast path."""

    point_id: list[int] = field(default_factory=list)
    ts_us: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    _arrays: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]] | None = field(
        default=None, compare=False, repr=False)

    def arrays(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """(point id, epoch µs, value) as arrays, made once when the batch is complete (the COPY
        and the urgency check both read them)."""
        if self._arrays is None or len(self._arrays[0]) != len(self.point_id):
            n = len(self.point_id)
            self._arrays = (np.fromiter(self.point_id, dtype=np.int64, count=n),
                            np.fromiter(self.ts_us, dtype=np.int64, count=n),
                            np.fromiter(self.value, dtype=np.float64, count=n))
        return self._arrays

    def copy_data(self) -> bytes:
        """The whole batch as one binary COPY stream (day by day, each in (point id, ts) order)."""
        parts = [data for _, data in self.copy_parts()[0]]
        if len(parts) == 1:
            return parts[0]
        body = b"".join(data[len(_COPY_HEADER):-len(_COPY_TRAILER)] for data in parts)
        return _COPY_HEADER + body + _COPY_TRAILER

    def copy_parts(self) -> tuple[list[tuple[date, bytes]], tuple[datetime, datetime, int, int]]:
        """The batch as one binary COPY stream per UTC day (the plain path's partitions), each in
        (point id, ts) order, and the batch's box: (min ts, max ts, min point, max point).

        The unique key is (point_id, ts) and readings arrive time-major (every
        point at t, then at t + 30 s): in key order, consecutive index inserts
        land on the same leaf page, which measured ~10 % faster for the server.
        """
        n = len(self.point_id)
        pid, ts, value = self.arrays()
        day = ts // _DAY_US
        order = np.lexsort((ts, pid, day))
        a = np.empty(n, dtype=_READING_ROW)
        a["n"] = 4
        a["l1"] = 4
        a["point_id"] = pid[order]
        a["l2"] = 8
        a["ts"] = ts[order] - _PG_EPOCH_US
        a["l3"] = 8
        a["value"] = value[order]
        a["l4"] = 2
        # Status bits 0..65535 go into smallint as the same 16 bits (two's complement wrap).
        a["status"] = np.fromiter(self.status, dtype=np.int64, count=n)[order].astype(np.int16)
        days = day[order]
        cuts = np.flatnonzero(days[1:] != days[:-1]) + 1
        parts = [(date.fromordinal(_UNIX_ORDINAL + int(days[i])), _COPY_HEADER + a[i:j].tobytes() + _COPY_TRAILER)
                 for i, j in zip([0, *cuts.tolist()], [*cuts.tolist(), n], strict=True)]
        box = (us_to_datetime(int(ts.min())), us_to_datetime(int(ts.max())), int(pid.min()), int(pid.max()))
        return parts, box

    def rows(self) -> list[tuple[Any, ...]]:
        """The rows as tuples with datetimes (the staging path and conflict dead letters need them)."""
        return [(p, us_to_datetime(t), v, stored_status(s)) for p, t, v, s in zip(
            self.point_id, self.ts_us, self.value, self.status, strict=True)]


@dataclass
class TableBatch:
    """Rows for one time-series table, with the origin of each (for conflict dead letters)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    origins: list[tuple[str | None, str | None]] = field(default_factory=list)  # (topic or file, mine)
    min_ts: datetime | None = None
    max_ts: datetime | None = None
    # mine id -> (min ts, max ts, rows): the windows the rules worker must re-evaluate
    by_mine: dict[int, tuple[datetime, datetime, int]] = field(default_factory=dict)
    # `readings` only, MQTT only: rows as columns (see ReadingColumns); `rows` stays empty until
    # the staging path needs tuples. Windows are tracked in epoch µs and converted once.
    cols: ReadingColumns | None = None
    _us_by_mine: dict[int, list[int]] = field(default_factory=dict)
    # The lookup's alarm levels (MQTT): mines with a reading at or beyond one get urgent windows.
    alarms: AlarmTable | None = field(default=None, compare=False, repr=False)
    _urgent: set[int] | None = field(default=None, compare=False, repr=False)

    def extend_columns(self, point_id: list[int], ts_us: list[int], value: list[float], status: list[int],
                       origin: tuple[str | None, str | None], mine_id: int, lo_us: int, hi_us: int) -> None:
        """Append rows given as columns (epoch µs times); used by the MQTT hot path."""
        if not point_id:
            return
        c = self.cols
        if c is None:
            c = self.cols = ReadingColumns()
        c.point_id += point_id
        c.ts_us += ts_us
        c.value += value
        c.status += status
        self.origins += [origin] * len(point_id)
        w = self._us_by_mine.get(mine_id)
        if w is None:
            self._us_by_mine[mine_id] = [lo_us, hi_us, len(point_id)]
        else:
            if lo_us < w[0]:
                w[0] = lo_us
            if hi_us > w[1]:
                w[1] = hi_us
            w[2] += len(point_id)

    def seal(self) -> None:
        """Turn the µs windows of the column rows into datetimes (once per batch, before writing)."""
        for mine_id, (lo, hi, n) in self._us_by_mine.items():
            lo_dt, hi_dt = us_to_datetime(lo), us_to_datetime(hi)
            w = self.by_mine.get(mine_id)
            self.by_mine[mine_id] = (lo_dt, hi_dt, n) if w is None else (min(w[0], lo_dt), max(w[1], hi_dt), w[2] + n)
            if self.min_ts is None or lo_dt < self.min_ts:
                self.min_ts = lo_dt
            if self.max_ts is None or hi_dt > self.max_ts:
                self.max_ts = hi_dt
        self._us_by_mine.clear()

    def urgent_mines(self) -> set[int]:
        """The mines with a reading at or beyond its point's alarm level (column rows, with the
        lookup's `alarms`): their windows are claimed first (rules.store.claim_mine)."""
        if self._urgent is None:
            c = self.cols
            if self.alarms is None or c is None or not c.point_id:
                self._urgent = set()
            else:
                pid, _, value = c.arrays()
                self._urgent = self.alarms.mines_of(pid, value)
        return self._urgent

    def count(self) -> int:
        """Rows in the batch (tuples and columns)."""
        return len(self.rows) if self.cols is None else len(self.cols.point_id)

    def extend(self, rows: Sequence[tuple[Any, ...]], origin: tuple[str | None, str | None], mine_id: int,
               lo: datetime | None, hi: datetime | None) -> None:
        if not rows or lo is None or hi is None:
            return
        self.rows.extend(rows)
        self.origins.extend([origin] * len(rows))
        if self.min_ts is None or lo < self.min_ts:
            self.min_ts = lo
        if self.max_ts is None or hi > self.max_ts:
            self.max_ts = hi
        w = self.by_mine.get(mine_id)
        self.by_mine[mine_id] = (lo, hi, len(rows)) if w is None else (min(w[0], lo), max(w[1], hi), w[2] + len(rows))

    def windows(self) -> dict[int, tuple[datetime, datetime, int]]:
        return self.by_mine

    def days(self) -> set[date]:
        """The UTC days that hold rows of this batch: the only partitions it may need."""
        out = {r[1].astimezone(UTC).date() for r in self.rows} if self.cols is None else set()
        if self.cols is not None and self.cols.ts_us:
            ts = np.fromiter(self.cols.ts_us, dtype=np.int64, count=len(self.cols.ts_us))
            out |= {date.fromordinal(_UNIX_ORDINAL + int(d)) for d in np.unique(ts // _DAY_US)}
        return out


@dataclass(frozen=True)
class WriteResult:
    """What one committed batch did, per table."""

    stored: dict[str, int]
    duplicates: dict[str, int]
    conflicts: dict[str, int]
    dead_letters: int


class BatchStore:
    """Writes batches on one connection; every call is one transaction, all or nothing."""

    def __init__(self, conn: asyncpg.Connection, keeper: PartitionKeeper, *, source: str = "mqtt") -> None:
        self.conn = conn
        self.keeper = keeper
        self.source = source
        self._staged = False

    async def write(self, batches: dict[str, TableBatch], dead: list[DeadLetter], *, now: datetime) -> WriteResult:
        """Store a batch idempotently; conflicting duplicates go to dead letters. Raises IngestError on DB failure."""
        try:
            return await self._write(batches, dead, now)
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, ValueError, TypeError, OverflowError) as exc:
            if is_data_error(exc):
                raise UnstorableBatch(f"batch refused by the database: {type(exc).__name__}: {exc}") from exc
            raise IngestError(f"batch write failed: {exc}") from exc

    async def _write(self, batches: dict[str, TableBatch], dead: list[DeadLetter], now: datetime) -> WriteResult:
        conn = self.conn
        if not self._staged:
            for ddl in _STAGE_DDL:
                await conn.execute(ddl)
            self._staged = True
        stored: dict[str, int] = {}
        dups: dict[str, int] = {}
        confl: dict[str, int] = {}
        dead = list(dead)
        for b in batches.values():
            b.seal()
        for table, b in batches.items():
            if b.count():
                # Only the days that hold rows, never the range between the oldest and the newest:
                # one old reading next to a current one must not create a partition per day between.
                await self.keeper.ensure_days(conn, table, b.days())
        async with conn.transaction():
            notify = False
            for table, b in batches.items():
                if not b.count():
                    continue
                n = await self._copy_direct(table, b)
                if n is None:
                    n = await self._insert_deduplicated(table, b, dead, now, confl)
                else:
                    confl[table] = 0
                stored[table] = n
                dups[table] = b.count() - n - confl[table]
                notify = notify or n > 0
            if dead:
                await conn.copy_records_to_table(
                    "dead_letters", columns=DEAD_LETTER_COLUMNS,
                    records=[d.row() for d in dead])
            if notify:
                await conn.execute("SELECT pg_notify('minewatch_dirty', '')")
        return WriteResult(stored, dups, confl, len(dead))


    async def _copy_direct(self, table: str, b: TableBatch) -> int | None:
        """COPY straight into the table: the fast path when the batch holds no duplicate.

        Duplicates are rare in steady state (redeliveries after a reconnect),
        so we try the plain COPY in a savepoint and fall back to the staging
        path only when the unique key says there is one. Returns rows stored,
        or None when the fallback is needed.

        Column batches of `readings` on plain PostgreSQL go into their daily partitions, not
        the parent, with the rollup's invalidation box logged here: the parent's statement
        trigger (a transition table) would make PostgreSQL insert COPY rows one at a time.
        """
        k = KINDS[table]
        conn = self.conn
        try:
            async with conn.transaction():  # savepoint
                if b.cols is not None and table == "readings" and self.keeper.backend == "plain":
                    parts, box = b.cols.copy_parts()
                    for day, data in parts:
                        await conn.copy_to_table(timeseries.partition_name(table, day), source=_once(data),
                                                 columns=k.columns[1:], format="binary")
                    await timeseries.log_readings_box(conn, *box)
                elif b.cols is not None:
                    await conn.copy_to_table(table, source=_once(b.cols.copy_data()), columns=k.columns[1:],
                                             format="binary")
                else:
                    await conn.copy_records_to_table(table, records=b.rows, columns=k.columns[1:])
        except asyncpg.UniqueViolationError:
            return None
        except asyncpg.UndefinedTableError:
            # A partition gone under us (retention dropped it, an operator detached it): the
            # parent decides, through the staging path, as for any other write.
            self.keeper.known.clear()
            return None
        windows = b.windows()
        stations: dict[int, set[int]] = {}
        if table == "card_reads":  # rows are (card_id, ts, station_id, mine_id)
            for r in b.rows:
                stations.setdefault(r[3], set()).add(r[2])
        urgent = b.urgent_mines()
        await conn.executemany(
            "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows, urgent) "
            "VALUES ($1, $2, $3, $4, $5, $7 OR dirty_window_urgent($1, $2, $3, $4, $6::int[]))",
            [(mine_id, table, lo, hi, n, sorted(stations.get(mine_id, ())), mine_id in urgent)
             for mine_id, (lo, hi, n) in windows.items()])
        return b.count()

    async def _insert_deduplicated(self, table: str, b: TableBatch, dead: list[DeadLetter], now: datetime,
                                   confl: dict[str, int]) -> int:
        """Staging + INSERT ... ON CONFLICT DO NOTHING; conflicting duplicates become dead letters."""
        conn = self.conn
        k = KINDS[table]
        if b.cols is not None and not b.rows:
            b.rows = b.cols.rows()
        await conn.copy_records_to_table(k.stage, records=[(i, *r) for i, r in enumerate(b.rows)], columns=k.columns)
        n = int(await conn.fetchval(k.insert, sorted(b.urgent_mines())))
        confl[table] = 0
        if len(b.rows) - n:
            for r in await conn.fetch(k.conflicts):
                seq = r["seq"]
                where, mine = b.origins[seq]
                kept = ", ".join(f"{key}={r[key]!r}" for key in r.keys() if key != "seq")  # noqa: SIM118 (asyncpg Record)
                dead.append(DeadLetter(now, self.source, where if self.source == "mqtt" else None,
                                       where if self.source != "mqtt" else None, None, mine,
                                       DUPLICATE_CONFLICT, f"first stored value kept ({kept})",
                                       _row_text(table, b.rows[seq])))
                confl[table] += 1
        await conn.execute(f"TRUNCATE {k.stage}")  # constant name; ON COMMIT DELETE ROWS only at commit
        return n


# SQLSTATE classes that say "this data", not "this database": 22 data exception (NUL in text,
# invalid encoding, out of range), 23 integrity constraint violation, 54 program limit exceeded
# (an index row too large).
_DATA_CLASSES: Final = ("22", "23", "54")


def is_data_error(exc: BaseException) -> bool:
    """True when a failed write failed because of the data it carried (retrying it unchanged fails
    again), False for connection loss and server trouble (retrying it later succeeds)."""
    if isinstance(exc, asyncpg.DataError):  # asyncpg could not encode a value
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _DATA_CLASSES
    if isinstance(exc, (OSError, asyncpg.InterfaceError)):
        return False
    return isinstance(exc, (ValueError, TypeError, OverflowError))  # an encoder raising on a value


async def _once(data: bytes) -> AsyncIterator[bytes]:
    """A whole COPY stream as an async iterable (asyncpg would read a file-like object in a thread)."""
    yield data


def _row_text(table: str, row: tuple[Any, ...]) -> str:
    cols = KINDS[table].columns[1:]
    return "{" + ", ".join(
        f'"{c}": ' + (f'"{v.isoformat()}"' if isinstance(v, datetime) else repr(v)) for c, v in zip(cols, row, strict=True)
    ) + "}"
