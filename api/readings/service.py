"""Reading series: raw rows from `readings`, or buckets from the hourly rollup or `date_bin` over `readings`.

Steps that are whole hours read `readings_1h_parts(point, lo, hi)` (minewatch/db/timeseries.py):
per hour, materialised rows where the rollup (plain PostgreSQL) or the continuous aggregate
(TimescaleDB) holds them and raw readings elsewhere, always equal to aggregating `readings`,
combined here into the step's buckets. Other steps aggregate `readings` over the `ts` range
(docs/query-plans.md shows both plans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import Response

from api.auth.principal import PathRefs
from api.errors import Invalid, NotFound
from api.jsonpage import next_cursor, page_response, page_sql
from api.pagination import CursorCodec

# Raw pages are capped at a week: a longer look is a job for buckets (a week at 30 s is
# 20 160 rows, already 21 pages of 1000).
RAW_MAX = timedelta(days=7)
# Bucketed ranges: at most 400 days (a year and some, for year-on-year views) and at
# most 100 000 buckets, so one page never aggregates an unbounded range.
BUCKET_RANGE_MAX = timedelta(days=400)
BUCKETS_MAX = 100_000
STEP_MIN, STEP_MAX = timedelta(seconds=1), timedelta(days=31)
DEFAULT_SPAN = timedelta(hours=24)
STEP_PATTERN = r"^[0-9]{1,7}(s|m|h|d)$"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The origin the bucket views use, so both paths agree on bucket starts.
ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# Per-statement sort memory for bucketing over readings: 400 days of one point at 30 s is
# ~1.2 M rows x ~40 bytes; 64 MB keeps typical ranges (up to a few months) off disk.
SORT_MEM = "64MB"
# Steps that are whole hours combine the hourly parts: their buckets (multiples of the step from
# ORIGIN, itself a whole hour) are unions of whole hours.
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PointRef:
    """A point of a visible mine."""

    id: int
    code: str
    unit: str


def parse_step(step: str) -> timedelta:
    """`15m`, `1h`, `1d` ... as a timedelta; Invalid outside [1 s, 31 d]."""
    m = re.fullmatch(STEP_PATTERN, step)
    if not m:
        raise Invalid(f"step must look like 30s, 1m, 15m, 1h or 1d, not {step!r}")
    width = timedelta(seconds=int(step[:-1]) * _UNITS[step[-1]])
    if not STEP_MIN <= width <= STEP_MAX:
        raise Invalid("step must be between 1s and 31d")
    return width


def align(t: datetime, step: timedelta) -> datetime:
    """The start of the bucket holding `t` (date_bin with ORIGIN)."""
    return t - (t - ORIGIN) % step


def time_range(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """Defaults (the last 24 h up to now) and the since < until check."""
    hi = until or now
    lo = since or hi - DEFAULT_SPAN
    if lo >= hi:
        raise Invalid("since must be before until")
    return lo, hi


async def find_point(*, pool: asyncpg.Pool, mine_id: int, code: str, path: PathRefs | None = None) -> PointRef:
    """The point with this code on this (visible) mine; 404 otherwise. Without a query when the
    token lookup resolved this very mine and point from the request's path (`path`)."""
    if path is not None and path.mine_id == mine_id and path.point_code == code:
        if path.point is None:
            raise NotFound(f"no point {code}")
        return PointRef(path.point[0], code, path.point[1])
    r = await pool.fetchrow("SELECT id, code, unit FROM points WHERE code = $1 AND mine_id = $2", code, mine_id)
    if r is None:
        raise NotFound(f"no point {code}")
    return PointRef(r["id"], r["code"], r["unit"])


async def raw_series(*, pool: asyncpg.Pool, codec: CursorCodec, mine: str, point: PointRef, since: datetime,
                     until: datetime, limit: int, cursor: str | None) -> Response:
    """Raw readings in [since, until), oldest first (a RawPage)."""
    if until - since > RAW_MAX:
        raise Invalid(f"a raw range may span at most {RAW_MAX.days} days; use step for longer ranges")
    lo, kind = since, f"raw:{point.id}"
    if cursor:
        (after,) = codec.decode(cursor, kind, ("time",))
        assert isinstance(after, datetime)
        lo = max(lo, after + timedelta(microseconds=1))
    row = await pool.fetchrow(page_sql(
        "SELECT ts, value, status FROM readings WHERE point_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
        # status: 16 bits stored as smallint (ingest.store.stored_status); `& 65535` gives them back.
        item="(SELECT o FROM (SELECT api_time(p.ts) AS ts, p.value, p.status & 65535 AS status) o)", order="ts",
        key=("ts",), limit="$5"), point.id, lo, until, limit + 1, limit)
    assert row is not None
    return page_response(row, next_cursor(codec, kind, row, 1), {
        "kind": "raw", "mine": mine, "point": point.code, "unit": point.unit, "since": since, "until": until,
        "step": None})


async def bucket_series(*, pool: asyncpg.Pool, codec: CursorCodec, mine: str, point: PointRef, since: datetime,
                        until: datetime, step: str, limit: int, cursor: str | None) -> Response:
    """Buckets of `step` in [align(since), until), oldest first (a BucketPage)."""
    width = parse_step(step)
    if until - since > BUCKET_RANGE_MAX:
        raise Invalid(f"a bucketed range may span at most {BUCKET_RANGE_MAX.days} days")
    if (until - since) / width > BUCKETS_MAX:
        raise Invalid(f"at most {BUCKETS_MAX} buckets per range; use a larger step")
    lo, kind = align(since, width), f"buckets:{point.id}:{int(width.total_seconds())}"
    if cursor:
        (after,) = codec.decode(cursor, kind, ("time",))
        assert isinstance(after, datetime)
        lo = max(lo, after + width)
    args: tuple[object, ...] = (point.id, width, ORIGIN, lo, until, limit + 1, limit)
    if width == HOUR:
        # The parts are the buckets: no regrouping (half of this statement's time otherwise).
        sql = ("SELECT bucket, min, max, sum / n AS avg, last, n FROM readings_1h_parts($1, $2, $3) "
               "ORDER BY bucket LIMIT $4")
        args = (point.id, lo, until, limit + 1, limit)
    elif width % HOUR == timedelta(0):
        # avg = sum / n over the hours: equal to avg(value) up to float summation order.
        sql = ("SELECT date_bin($2::interval, bucket, $3::timestamptz) AS bucket, min(min) AS min, max(max) AS max, "
               "sum(sum) / sum(n)::float8 AS avg, (array_agg(last ORDER BY bucket DESC))[1] AS last, "
               "sum(n)::bigint AS n FROM readings_1h_parts($1, $4, $5) GROUP BY 1 ORDER BY 1 LIMIT $6")
    else:
        # The planner cannot know how few buckets date_bin makes (it guesses one per row), so it
        # sorts every row of the range; 30 days of one point is 86 400 rows, which spill to disk
        # under the default 4 MB: SORT_MEM below, for this statement only, and no parallel
        # workers (with many clients they only fight the other requests for cores).
        sql = ("SELECT date_bin($2::interval, ts, $3::timestamptz) AS bucket, min(value) AS min, "
               # sum / n, not avg(): float8 avg keeps a running sum of squares, which overflows past
               # ~1e154 and made one extreme reading a 500 for its bucket (the views do the same).
               "max(value) AS max, sum(value) / count(*) AS avg, (array_agg(value ORDER BY ts DESC))[1] AS last, "
               "count(*) AS n FROM readings WHERE point_id = $1 AND ts >= $4 AND ts < $5 "
               "GROUP BY 1 ORDER BY 1 LIMIT $6")
    sql = page_sql(sql, item=_BUCKET, rendered=True, order="bucket", key=("bucket",), limit=f"${len(args)}")
    if width % HOUR == timedelta(0):
        row = await pool.fetchrow(sql, *args)
    else:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL work_mem = '{SORT_MEM}'; SET LOCAL max_parallel_workers_per_gather = 0")
            row = await conn.fetchrow(sql, *args)
    assert row is not None
    return page_response(row, next_cursor(codec, kind, row, 1), {
        "kind": "buckets", "mine": mine, "point": point.code, "unit": point.unit, "since": since, "until": until,
        "step": step})


# One bucket as BucketOut, written by concatenation: 720 hourly buckets cost PostgreSQL ~1.3 ms
# less than a record per bucket through json_agg and api_time. Buckets start on whole seconds
# (api_time's format without fraction); min, max and last are stored readings (finite: the
# ingest refuses NaN and infinities) and print as JSON numbers with the session's
# extra_float_digits = 1 (api/app.py); an average may overflow to infinity, so it goes
# through to_json (a JSON string then, as before, instead of broken JSON).
_BUCKET = ("""'{"bucket":"' || to_char(p.bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') """
           """|| '","min":' || p.min || ',"max":' || p.max || ',"avg":' || to_json(p.avg) """
           """|| ',"last":' || p.last || ',"n":' || p.n || '}'""")
