"""Reading series: raw rows from `readings`, or buckets from the 1m/1h views or `date_bin` over `readings`.

Where `readings_1m` / `readings_1h` are materialised (TimescaleDB continuous
aggregates) steps 1m and 1h read them. On plain PostgreSQL those views are
`GROUP BY date_bin(...)` over all of `readings`, and a filter on their bucket
column cannot use the (point_id, ts) key, so the same aggregate is run over
`readings` with a `ts` range instead (docs/query-plans.md shows both plans).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from api.errors import Invalid, NotFound
from api.pagination import CursorCodec, paginate
from api.readings.schemas import BucketPage, RawPage

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
_VIEWS = {timedelta(minutes=1): "readings_1m", timedelta(hours=1): "readings_1h"}


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


async def find_point(*, pool: asyncpg.Pool, mine_id: int, code: str) -> PointRef:
    """The point with this code on this mine; 404 otherwise."""
    r = await pool.fetchrow("SELECT id, code, unit FROM points WHERE code = $1 AND mine_id = $2", code, mine_id)
    if r is None:
        raise NotFound(f"no point {code}")
    return PointRef(r["id"], r["code"], r["unit"])


async def raw_series(*, pool: asyncpg.Pool, codec: CursorCodec, mine: str, point: PointRef, since: datetime,
                     until: datetime, limit: int, cursor: str | None) -> RawPage:
    """Raw readings in [since, until), oldest first."""
    if until - since > RAW_MAX:
        raise Invalid(f"a raw range may span at most {RAW_MAX.days} days; use step for longer ranges")
    lo, kind = since, f"raw:{point.id}"
    if cursor:
        (after,) = codec.decode(cursor, kind, ("time",))
        assert isinstance(after, datetime)
        lo = max(lo, after + timedelta(microseconds=1))
    rows = await pool.fetch(
        "SELECT ts, value, status FROM readings WHERE point_id = $1 AND ts >= $2 AND ts < $3 "
        "ORDER BY ts LIMIT $4", point.id, lo, until, limit + 1)
    page, nxt = paginate(codec, kind, rows, limit, lambda r: (r["ts"],))
    # Rows' columns are the item's fields: validated as one page by pydantic-core (fast path).
    return RawPage.model_validate({"kind": "raw", "mine": mine, "point": point.code, "unit": point.unit,
                                   "since": since, "until": until, "items": [dict(r) for r in page],
                                   "next_cursor": nxt})


async def bucket_series(*, pool: asyncpg.Pool, codec: CursorCodec, mine: str, point: PointRef, since: datetime,
                        until: datetime, step: str, limit: int, cursor: str | None,
                        use_views: bool) -> BucketPage:
    """Buckets of `step` in [align(since), until), oldest first."""
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
    view = _VIEWS.get(width) if use_views else None
    if view is not None:
        rows = await pool.fetch(
            f"SELECT bucket, min, max, avg, last, n FROM {view} "  # noqa: S608 - view name from _VIEWS
            "WHERE point_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket LIMIT $4",
            point.id, lo, until, limit + 1)
    else:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            # The planner cannot know how few buckets date_bin makes (it guesses one per row),
            # so it sorts every row of the range; 30 days of one point is 86 400 rows, which
            # spill to disk under the default 4 MB. Enough memory for this statement only, and
            # no parallel workers: with many clients they only fight the other requests for cores.
            await conn.execute(f"SET LOCAL work_mem = '{SORT_MEM}'; SET LOCAL max_parallel_workers_per_gather = 0")
            rows = await conn.fetch(
                "SELECT date_bin($2::interval, ts, $3::timestamptz) AS bucket, min(value) AS min, "
                "max(value) AS max, avg(value) AS avg, (array_agg(value ORDER BY ts DESC))[1] AS last, "
                "count(*) AS n FROM readings WHERE point_id = $1 AND ts >= $4 AND ts < $5 "
                "GROUP BY 1 ORDER BY 1 LIMIT $6", point.id, width, ORIGIN, lo, until, limit + 1)
    page, nxt = paginate(codec, kind, rows, limit, lambda r: (r["bucket"],))
    return BucketPage.model_validate({"kind": "buckets", "mine": mine, "point": point.code, "unit": point.unit,
                                      "since": since, "until": until, "step": step,
                                      "items": [dict(r) for r in page], "next_cursor": nxt})
