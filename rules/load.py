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
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
import numpy as np
from asyncpg.pool import PoolConnectionProxy
from numpy.typing import NDArray

from minewatch.timeutil import from_ns, to_ns
from rules.errors import RulesError
from rules.thresholds import ThresholdSet, ThresholdTable

# A connection, or one borrowed from a pool (which behaves as the connection it wraps).
Conn: TypeAlias = asyncpg.Connection | PoolConnectionProxy
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
I16 = NDArray[np.int16]
Bools = NDArray[np.bool_]

# Gases the exceedance rules read (registry names, rules.md §1); everything else is left
# to the health and geotech rules.
EVENT_GASES: tuple[str, ...] = ("methane", "co", "o2", "co2")
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
_THRESHOLD_COLUMNS = ("alarm_hi", "clear_hi", "poweroff_hi", "restore_hi",
                      "alarm_lo", "clear_lo", "poweroff_lo", "restore_lo")


@dataclass(frozen=True, eq=False)
class MinePoints:
    """The evaluated points of one mine, sorted by id; position in these arrays is the point index."""

    mine_id: int
    mine_code: str
    timezone: str
    ids: I64
    codes: tuple[str, ...]
    gases: tuple[str, ...]
    face_codes: tuple[str | None, ...]
    max_gap_ns: I64

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, point_id: int) -> int:
        """The index of a point id (raises KeyError for a point that is not evaluated)."""
        i = int(np.searchsorted(self.ids, point_id))
        if i >= len(self.ids) or int(self.ids[i]) != point_id:
            raise KeyError(point_id)
        return i


@dataclass(frozen=True, eq=False)
class Readings:
    """Readings sorted by (point index, ts); ts in int64 ns UTC."""

    point_idx: I64
    ts: I64
    value: F64
    status: I16

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Readings:
        """No readings."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int16))

    def take(self, mask: Bools) -> Readings:
        """The readings a mask selects (order kept)."""
        return Readings(self.point_idx[mask], self.ts[mask], self.value[mask], self.status[mask])


@dataclass(frozen=True, eq=False)
class Versions:
    """Threshold versions of a mine's points, sorted by (point index, effective_from)."""

    table: ThresholdTable
    point_idx: I64
    effective_from: I64
    lower_by_point: Bools  # per point: a lower-limit point (oxygen), judged by its versions

    def values(self, version: int) -> tuple[float | None, ...]:
        """The eight thresholds of one version, None where absent (as stored)."""
        return tuple(None if math.isnan(v) else v for v in
                     (float(getattr(self.table, c)[version]) for c in _THRESHOLD_COLUMNS))


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
        vals = {c: math.nan if r[c] is None else float(r[c]) for c in _THRESHOLD_COLUMNS}
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
    query = _COPY_SQL.format(upper="AND ts < $3 " if hi_ns is not None else "")
    args: list[object] = [points.ids.tolist(), from_ns(lo_ns)]
    if hi_ns is not None:
        args.append(from_ns(hi_ns))
    raw = await copy_binary(conn, query, *args)
    point_id, ts, value, status = parse_binary_readings(raw)
    return Readings(_index_sorted(points.ids, point_id), ts, value, status)


async def copy_binary(conn: Conn, query: str, *args: object) -> bytes:
    """The binary COPY output of a query, as one buffer."""
    chunks: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        chunks.append(chunk)

    await conn.copy_from_query(query, *args, output=sink, format="binary")
    return b"".join(chunks)


def parse_binary_readings(raw: bytes) -> tuple[NDArray[np.int32], I64, F64, I16]:
    """(point_id, ts ns, value, status) from the binary COPY of (point_id, ts, value, status)."""
    if len(raw) < 21 or not raw.startswith(_SIGNATURE):
        raise RulesError("not a PostgreSQL binary COPY stream")
    ext = int.from_bytes(raw[15:19], "big")
    body = 19 + ext
    n, rest = divmod(len(raw) - body - 2, _ROW.itemsize)
    if rest or raw[-2:] != b"\xff\xff":
        raise RulesError("binary COPY stream of readings has an unexpected row layout")
    rows = np.frombuffer(raw, dtype=_ROW, count=n, offset=body)
    # The layout is fixed by the query (four NOT NULL columns); a field count or length that
    # differs means the columns changed under us, and the arrays would be garbage.
    if n and not (np.all(rows["nfields"] == 4) and np.all(rows["len_ts"] == 8) and np.all(rows["len_status"] == 2)):
        raise RulesError("binary COPY stream of readings has an unexpected field layout")
    ts = rows["ts"].astype(np.int64)
    ts += PG_EPOCH_US
    ts *= 1_000
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
