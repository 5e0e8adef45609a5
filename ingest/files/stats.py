"""Storing a data file's checked rows: readings and station states, TJSJ / YCBJ as the mine reported them.

Readings and station states go through the MQTT ingest's `BatchStore`. TJSJ statistics and
YCBJ abnormal records go to `reported_stats` / `reported_abnormal`, to be compared with what
the rules engine computes: a record sent again with a later data time replaces the stored one
(an abnormal record that was going on is re-sent with its end, cause and measures filled in);
one with an equal or older data time changes nothing and counts as a duplicate. Rows come
from `source.convert`, one tuple per record in the column order below (data time, then line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from ingest.files.records import Record
from ingest.files.source import Converted, text_safe
from ingest.store import KINDS, BatchStore, DeadLetter, TableBatch
from ingest.validate import DUPLICATE_CONFLICT
from minewatch.text import log_safe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]  # in the order of source.convert's tuples
    types: tuple[str, ...]
    key: tuple[str, ...]


_TABLES: Final = {
    "reported_stats": _Table(
        ("point_id", "period_start", "period_end", "max", "max_at", "min", "min_at", "avg", "unit", "data_time", "line"),
        ("int", "timestamptz", "timestamptz", "float8", "timestamptz", "float8", "timestamptz", "float8", "text",
         "timestamptz", "int"),
        ("point_id", "period_start", "period_end"),
    ),
    "reported_abnormal": _Table(
        ("point_id", "abnormal_code", "abnormal_type", "started_at", "ended_at", "max", "max_at", "min", "min_at",
         "avg", "cause", "measures", "entered_at", "entered_by", "unit", "data_time", "line"),
        ("int", "text", "text", "timestamptz", "timestamptz", "float8", "timestamptz", "float8", "timestamptz",
         "float8", "text", "text", "timestamptz", "text", "text", "timestamptz", "int"),
        ("point_id", "abnormal_code", "started_at"),
    ),
}
TABLES: Final = tuple(_TABLES)


def _upsert_sql(table: str) -> str:
    # Built once per table from the constants above; no input reaches the SQL text.
    t = _TABLES[table]
    n = len(t.columns)
    arrays = ", ".join(f"${i + 1}::{ty}[]" for i, ty in enumerate(t.types))
    cols = ", ".join(t.columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*t.columns, "file", "recorded_at") if c not in t.key)
    return (
        f"INSERT INTO {table} ({cols}, file, recorded_at) "  # noqa: S608 (constants only)
        f"SELECT u.*, ${n + 1}::text, ${n + 2}::timestamptz FROM unnest({arrays}) AS u({cols}) "
        f"ON CONFLICT ({', '.join(t.key)}) DO UPDATE SET {updates} "
        f"WHERE EXCLUDED.data_time > {table}.data_time "
        "RETURNING (xmax = 0) AS inserted"
    )


_SQL: Final = {table: _upsert_sql(table) for table in _TABLES}


@dataclass(frozen=True)
class StoredReports:
    """What one call did: new rows, rows replaced by a later report, and records that changed nothing."""

    inserted: int
    updated: int
    unchanged: int


def latest_per_key(table: str, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per key, the one with the latest data time (the first of equals).

    One INSERT ... ON CONFLICT DO UPDATE cannot touch the same row twice, so a file that
    reports the same interval twice is settled here, with the rule the table applies.
    """
    t = _TABLES[table]
    idx = [t.columns.index(k) for k in t.key]
    when = t.columns.index("data_time")
    best: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        key = tuple(row[i] for i in idx)
        kept = best.get(key)
        if kept is None or row[when] > kept[when]:
            best[key] = row
    return list(best.values())


async def store_reports(conn: asyncpg.Connection, table: str, rows: Sequence[tuple[Any, ...]], *, file: str,
                        now: datetime) -> StoredReports:
    """Upsert TJSJ (`reported_stats`) or YCBJ (`reported_abnormal`) rows from one file."""
    if not rows:
        return StoredReports(0, 0, 0)
    kept = latest_per_key(table, rows)
    columns = [list(col) for col in zip(*kept, strict=True)]
    result = await conn.fetch(_SQL[table], *columns, file, now)
    inserted = sum(1 for r in result if r["inserted"])
    updated = len(result) - inserted
    return StoredReports(inserted, updated, len(rows) - inserted - updated)


def _conflict_sql(table: str) -> str:
    # Which rows of a chunk differ from the stored row of their key, in chunk order: the
    # same test BatchStore applies to its staging table, so the two lists line up.
    cols = KINDS[table].columns[1:]
    key, values = cols[:2], cols[2:]
    types = ("int", "timestamptz", "float8", "int2") if table == "readings" else ("int", "timestamptz", "int2", "int2")
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
    return (f"SELECT s.seq FROM unnest({arrays}) WITH ORDINALITY AS s({', '.join(cols)}, seq) "  # noqa: S608 (constants)
            f"JOIN {table} t ON {' AND '.join(f't.{k} = s.{k}' for k in key)} "
            f"WHERE {' OR '.join(f't.{v} IS DISTINCT FROM s.{v}' for v in values)} ORDER BY s.seq")


_CONFLICT_SQL: Final = {table: _conflict_sql(table) for table in ("readings", "station_states")}


@dataclass(frozen=True)
class Committed:
    """What storing one chunk did: new (or replaced) rows, identical duplicates, conflicts."""

    stored: int
    duplicates: int
    conflicts: int


# A chunk's records (those `conv` was built from) and, on demand, the file's record texts by
# ordinal: what a conflict dead letter needs to carry the record's line and text.
Texts = Callable[[], Mapping[int, str]]


async def store_chunk(conn: asyncpg.Connection, store: BatchStore, conv: Converted, dead: list[DeadLetter], *,
                      name: str, mine_id: int, mine_code: str, now: datetime,
                      records: Sequence[Record] = (), texts: Texts | None = None) -> Committed:
    """One chunk's rows and dead letters, inside the caller's transaction.

    Readings and station states go through the MQTT ingest's `BatchStore` (COPY, staging
    on duplicates, conflicts to dead letters); TJSJ / YCBJ rows are upserted here. Given the
    chunk's `records` and the file's `texts`, a conflict dead letter gets the record's text as
    its payload, as every other dead letter of a file has.
    """
    if conv.table in _CONFLICT_SQL:
        tables: dict[str, TableBatch] = {}
        if conv.rows:
            tables[conv.table] = TableBatch()
            tables[conv.table].extend(conv.rows, (name, mine_code), mine_id, conv.lo, conv.hi)
        result = await store.write(tables, dead, now=now)
        conflicts = sum(result.conflicts.values())
        if conflicts:
            await _conflict_lines(conn, conv, name, now, records, texts)
        return Committed(sum(result.stored.values()), sum(result.duplicates.values()), conflicts)
    reports = await store_reports(conn, conv.table, conv.rows, file=name, now=now)
    if dead:
        await store.write({}, dead, now=now)
    return Committed(reports.inserted + reports.updated, reports.unchanged, 0)


async def _conflict_lines(conn: asyncpg.Connection, conv: Converted, name: str, now: datetime,
                          records: Sequence[Record], texts: Texts | None) -> None:
    # BatchStore's conflict dead letters name the file but not the line, and hold the row it
    # tried to store: find which rows conflicted (in chunk order, as BatchStore wrote them)
    # and give each letter its line and, when known, the record's text.
    columns = [list(c) for c in zip(*conv.rows, strict=True)]
    seqs = [r["seq"] for r in await conn.fetch(_CONFLICT_SQL[conv.table], *columns)]
    ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM dead_letters WHERE file = $1 AND source = 'file' AND reason = $2 AND line IS NULL "
        "AND received_at = $3 ORDER BY id", name, DUPLICATE_CONFLICT, now)]
    if len(seqs) != len(ids):
        log.warning("%s: %d conflicts but %d conflict dead letters; their lines stay empty", log_safe(name), len(seqs),
                    len(ids))
        return
    await conn.execute("UPDATE dead_letters d SET line = u.line FROM unnest($1::bigint[], $2::int[]) AS u(id, line) "
                       "WHERE d.id = u.id", ids, [conv.lines[s - 1] for s in seqs])
    if texts is None or not records:
        return
    # Rows were built from the records the checks did not refuse, in order (source.convert);
    # done here, on the rare conflict, so that the hot path keeps no ordinal per row.
    refused = {r.ordinal for r in conv.rejects}
    ordinals = [r.ordinal for r in records if r.ordinal not in refused]
    if len(ordinals) != len(conv.rows):
        log.warning("%s: %d rows from %d records; conflict payloads stay as rows", log_safe(name), len(conv.rows),
                    len(ordinals))
        return
    raw = texts()
    payloads = [text_safe(raw.get(ordinals[s - 1], "")) for s in seqs]
    await conn.execute("UPDATE dead_letters d SET payload = u.payload FROM unnest($1::bigint[], $2::text[]) "
                       "AS u(id, payload) WHERE d.id = u.id", ids, payloads)
