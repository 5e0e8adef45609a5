"""A mine's rule inputs from PostgreSQL: its points, their threshold versions, and readings read by binary COPY.

Readings are the bulk of every evaluation (a day of a 60-point mine is 170 000 rows), so
they are read with ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` and parsed by numpy in
one pass over the buffer: each row of (point_id int4, ts timestamptz, value float8,
status int2) is 40 bytes — a field count, then a length before each field — so the whole
body is one big-endian structured array. No Python object is made per row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

import asyncpg
import numpy as np
from asyncpg.pool import PoolConnectionProxy
from numpy.typing import NDArray

from minewatch.timeutil import from_ns, to_ns
from rules.errors import RulesError
from rules.inputs import (  # re-exported: the inputs' types live with the pure kernels
    EVENT_GASES as EVENT_GASES,
)
from rules.inputs import F64, I16, I64, THRESHOLD_COLUMNS, MinePoints, Readings, Versions
from rules.thresholds import ThresholdSet, ThresholdTable

# A connection, or one borrowed from a pool (which behaves as the connection it wraps).
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy

# PostgreSQL's timestamp epoch is 2000-01-01; binary timestamps are µs since then.
PG_EPOCH_US = 946_684_800_000_000
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_ROW = np.dtype([
    ("nfields", ">i2"), ("len_point", ">i4"), ("point", ">i4"), ("len_ts", ">i4"), ("ts", ">i8"),
    ("len_value", ">i4"), ("value", ">f8"), ("len_status", ">i4"), ("status", ">i2"),
])
_COPY_SQL = (
    "SELECT point_id, ts, value, status FROM readings WHERE point_id = ANY($1::int[]) AND ts >= $2 {upper}"
    "ORDER BY point_id, ts"
)


async def load_points(conn: Conn, mine_id: int, gases: Sequence[str] = EVENT_GASES) -> MinePoints:
    """The analog points of the given gases of one mine (inactive ones too: their history counts)."""
    mine = await conn.fetchrow("SELECT code, timezone FROM mines WHERE id = $1", mine_id)
    if mine is None:
        raise RulesError(f"mine id {mine_id} is not in the registry")
    rows = await conn.fetch(
        "SELECT p.id, p.code, p.gas, f.code AS face, p.max_gap_s FROM points p LEFT JOIN faces f ON f.id = p.face_id "
        "WHERE p.mine_id = $1 AND p.value_type = 'MN' AND p.gas = ANY($2::text[]) ORDER BY p.id", mine_id, list(gases))
    return MinePoints(
        mine_id=mine_id, mine_code=mine["code"], timezone=mine["timezone"],
        ids=np.array([r["id"] for r in rows], np.int64),
        codes=tuple(r["code"] for r in rows), gases=tuple(r["gas"] for r in rows),
        face_codes=tuple(r["face"] for r in rows),
        max_gap_ns=np.array([round(r["max_gap_s"] * 1e9) for r in rows], np.int64),
    )


async def load_versions(conn: Conn, points: MinePoints) -> Versions:
    """The threshold versions of the points from `point_thresholds`, as a kernel table.

    A stored version out of order (a clear level beyond its alarm, a power-off level inside
    the alarm band) is refused with an error naming the point and the version, never
    repaired: the registry refuses such sets at load, so one here was written around it.
    """
    rows = await conn.fetch(
        "SELECT point_id, effective_from, alarm_hi, clear_hi, poweroff_hi, restore_hi, alarm_lo, clear_lo, "
        "poweroff_lo, restore_lo FROM point_thresholds WHERE point_id = ANY($1::int[]) ORDER BY point_id, effective_from",
        points.ids.tolist())
    sets: list[ThresholdSet] = []
    for r in rows:
        vals = {c: math.nan if r[c] is None else float(r[c]) for c in THRESHOLD_COLUMNS}
        try:
            sets.append(ThresholdSet(**vals))
        except RulesError as exc:
            code = points.codes[points.index_of(r["point_id"])]
            raise RulesError(f"mine {points.mine_code}, point {code}: threshold version from "
                             f"{r['effective_from'].isoformat()} is out of order: {exc}") from exc
    table = ThresholdTable.from_sets(sets) if sets else ThresholdTable(*(np.zeros(0) for _ in range(8)))
    point_idx = np.array([points.index_of(r["point_id"]) for r in rows], np.int64)
    lower = np.zeros(len(points), np.bool_)
    if len(rows):
        lower[point_idx[table.lower]] = True
    return Versions(table, point_idx,
                    np.array([to_ns(r["effective_from"]) for r in rows], np.int64), lower)


async def load_readings(conn: Conn, points: MinePoints, lo_ns: int, hi_ns: int | None) -> Readings:
    """Readings of the points with lo <= ts < hi (hi None: to the end), sorted by (point, ts)."""
    if len(points) == 0:
        return Readings.empty()
    return Readings(*await readings_of(conn, points.ids, lo_ns, hi_ns))


async def readings_of(conn: Conn, ids: I64, lo_ns: int, hi_ns: int | None) -> tuple[I64, I64, F64, I16]:
    """(point index into ``ids``, ts, value, status) of the points with ids ``ids`` (ascending),
    lo <= ts < hi (hi None: to the end), sorted by (point, ts), by one binary COPY."""
    query = _COPY_SQL.format(upper="AND ts < $3 " if hi_ns is not None else "")
    args: list[object] = [ids.tolist(), from_ns(lo_ns)]
    if hi_ns is not None:
        args.append(from_ns(hi_ns))
    raw = await copy_binary(conn, query, *args)
    point_id, ts, value, status = parse_binary_readings(raw)
    return _index_sorted(ids, point_id), ts, value, status


async def copy_binary(conn: Conn, query: str, *args: object) -> bytes:
    """The binary COPY output of a query, as one buffer."""
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(query, *args, output=sink, format="binary")
    return b"".join(chunks)


def binary_rows(raw: bytes, row: np.dtype, what: str) -> np.ndarray:
    """The rows of a PostgreSQL binary COPY stream whose rows all have the fixed layout `row`
    (the field count, then per column `len_<name>` and `<name>`), as a structured array over
    `raw`. The layout is fixed by the query (NOT NULL columns): a field count or length that
    differs means the columns changed under us, and the arrays would be garbage."""
    if len(raw) < 21 or not raw.startswith(_SIGNATURE):
        raise RulesError("not a PostgreSQL binary COPY stream")
    body = 19 + int.from_bytes(raw[15:19], "big")
    n, rest = divmod(len(raw) - body - 2, row.itemsize)
    if rest or raw[-2:] != b"\xff\xff":
        raise RulesError(f"binary COPY stream of {what} has an unexpected row layout")
    rows = np.frombuffer(raw, dtype=row, count=n, offset=body)
    assert row.names is not None
    columns = [name for name in row.names if name != "nfields" and not name.startswith("len_")]
    if n and not (np.all(rows["nfields"] == len(columns))
                  and all(np.all(rows[f"len_{c}"] == row[c].itemsize) for c in columns)):
        raise RulesError(f"binary COPY stream of {what} has an unexpected field layout")
    return rows


def pg_ts_ns(pg_us: np.ndarray) -> I64:
    """PostgreSQL binary timestamps (µs since 2000-01-01) as int64 ns since the Unix epoch."""
    ts = pg_us.astype(np.int64)
    ts += PG_EPOCH_US
    ts *= 1_000
    return ts


def parse_binary_readings(raw: bytes) -> tuple[NDArray[np.int32], I64, F64, I16]:
    """(point_id, ts ns, value, status) from the binary COPY of (point_id, ts, value, status)."""
    rows = binary_rows(raw, _ROW, "readings")
    ts = pg_ts_ns(rows["ts"])
    return (rows["point"].astype(np.int32), ts, rows["value"].astype(np.float64),
            rows["status"].astype(np.int16))


def _index_sorted(ids: I64, point_id: NDArray[np.int32]) -> I64:
    """Point indices for point ids sorted ascending: one lookup per run of equal ids."""
    n = len(point_id)
    if n == 0:
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], point_id[1:] != point_id[:-1])))
    lengths = np.diff(np.append(starts, n))
    return np.repeat(np.searchsorted(ids, point_id[starts]).astype(np.int64), lengths)
