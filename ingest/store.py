"""Idempotent batch storage: COPY into staging, INSERT ... ON CONFLICT DO NOTHING, one transaction per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import asyncpg

from minewatch.db.timeseries import PartitionKeeper

from .errors import IngestError
from .validate import DUPLICATE_CONFLICT


@dataclass(frozen=True)
class _Kind:
    table: str
    stage: str
    columns: tuple[str, ...]
    # SQL is constant per kind (no input reaches it); $1 is the kind label.
    insert: str
    conflicts: str


def _kind(table: str, cols: tuple[str, ...], key: tuple[str, str], mine_join: str, mine_col: str) -> _Kind:
    stage = f"stage_{table}"
    col_list = ", ".join(cols)
    keys = ", ".join(key)
    insert = (
        f"WITH ins AS (INSERT INTO {table} ({col_list}) "
        f"SELECT DISTINCT ON ({keys}) {col_list} FROM {stage} ORDER BY {keys}, seq "
        f"ON CONFLICT DO NOTHING RETURNING {col_list}), "
        f"w AS (INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) "
        f"SELECT {mine_col}, '{table}', min(ins.ts), max(ins.ts), count(*) FROM ins {mine_join} "
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
                        "", "ins.mine_id"),
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
DEAD_LETTER_COLUMNS: Final = ("received_at", "source", "topic", "file", "line", "mine_code", "reason", "detail", "payload")


@dataclass(frozen=True)
class DeadLetter:
    """A row for the dead-letter store."""

    received_at: datetime
    source: str
    topic: str | None
    file: str | None
    line: int | None
    mine_code: str | None
    reason: str
    detail: str
    payload: str


@dataclass
class TableBatch:
    """Rows for one time-series table, with the origin of each (for conflict dead letters)."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    origins: list[tuple[str | None, str | None]] = field(default_factory=list)  # (topic or file, mine)
    min_ts: datetime | None = None
    max_ts: datetime | None = None
    # mine id -> (min ts, max ts, rows): the windows the rules worker must re-evaluate
    by_mine: dict[int, tuple[datetime, datetime, int]] = field(default_factory=dict)

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
        except (asyncpg.PostgresError, OSError, asyncpg.InterfaceError) as exc:
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
        for table, b in batches.items():
            if b.rows and b.min_ts is not None and b.max_ts is not None:
                await self.keeper.ensure_range(conn, table, b.min_ts, b.max_ts)
        async with conn.transaction():
            notify = False
            for table, b in batches.items():
                if not b.rows:
                    continue
                n = await self._copy_direct(table, b)
                if n is None:
                    n = await self._insert_deduplicated(table, b, dead, now, confl)
                else:
                    confl[table] = 0
                stored[table] = n
                dups[table] = len(b.rows) - n - confl[table]
                notify = notify or n > 0
            if dead:
                await conn.copy_records_to_table(
                    "dead_letters", columns=DEAD_LETTER_COLUMNS,
                    records=[(d.received_at, d.source, d.topic, d.file, d.line, d.mine_code, d.reason,
                              d.detail, d.payload) for d in dead])
            if notify:
                await conn.execute("SELECT pg_notify('minewatch_dirty', '')")
        return WriteResult(stored, dups, confl, len(dead))


    async def _copy_direct(self, table: str, b: TableBatch) -> int | None:
        """COPY straight into the table: the fast path when the batch holds no duplicate.

        Duplicates are rare in steady state (redeliveries after a reconnect),
        so we try the plain COPY in a savepoint and fall back to the staging
        path only when the unique key says there is one. Returns rows stored,
        or None when the fallback is needed.
        """
        k = KINDS[table]
        try:
            async with self.conn.transaction():  # savepoint
                await self.conn.copy_records_to_table(table, records=b.rows, columns=k.columns[1:])
        except asyncpg.UniqueViolationError:
            return None
        windows = b.windows()
        await self.conn.executemany(
            "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) VALUES ($1, $2, $3, $4, $5)",
            [(mine_id, table, lo, hi, n) for mine_id, (lo, hi, n) in windows.items()])
        return len(b.rows)

    async def _insert_deduplicated(self, table: str, b: TableBatch, dead: list[DeadLetter], now: datetime,
                                   confl: dict[str, int]) -> int:
        """Staging + INSERT ... ON CONFLICT DO NOTHING; conflicting duplicates become dead letters."""
        conn = self.conn
        k = KINDS[table]
        await conn.copy_records_to_table(k.stage, records=[(i, *r) for i, r in enumerate(b.rows)], columns=k.columns)
        n = int(await conn.fetchval(k.insert))
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


def _row_text(table: str, row: tuple[Any, ...]) -> str:
    cols = KINDS[table].columns[1:]
    return "{" + ", ".join(
        f'"{c}": ' + (f'"{v.isoformat()}"' if isinstance(v, datetime) else repr(v)) for c, v in zip(cols, row, strict=True)
    ) + "}"
