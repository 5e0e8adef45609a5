"""The refresher of the hourly readings rollup on plain PostgreSQL (TimescaleDB refreshes its own).

`readings_1h_rollup` holds materialised hours for the range [lo, hi) of `readings_1h_state`;
`readings_1h_parts()` (minewatch/db/timeseries.py) reads them only there and outside the
(ts, point) boxes that writers' statement triggers log in `readings_1h_invalid`, and
aggregates raw readings everywhere else, so readers are exact whatever this module has done
so far. Each `refresh_once` is one REPEATABLE READ transaction that

1. recomputes the logged boxes inside [lo, hi) (late and back-filled data, edits),
2. moves `hi` forward to the last whole hour before `now - lag` (at most `max_hours`),
3. moves `lo` back through history towards the oldest partition (at most `max_hours`),
4. drops rollup hours older than the oldest partition (retention dropped their readings),
5. deletes the log rows it saw.

A statement committed after the transaction's snapshot is invisible to it, and so is its log
row, which therefore survives for the next run: nothing slips between the two. Concurrent
refreshers serialise on an advisory lock (the loser skips its turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from minewatch.clock import Clock
from minewatch.db.timeseries import current_backend, oldest_partition_start

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)
# Readings of an hour keep arriving for a few seconds after it ends (batching, network); waiting
# two minutes before materialising it saves recomputing it for every straggler batch.
LAG = timedelta(minutes=2)
# Hours materialised per transaction and direction: a day of 2 000 points at 30 s is ~6 M
# readings, a few seconds of aggregation; bounded so a first build of two years of history
# proceeds in short transactions that neither hold a snapshot for long nor block shutdown.
MAX_HOURS = 24
# Log rows handled per transaction; ingest writes one per batch statement, a few a second.
MAX_BOXES = 10_000
# Between runs while there is nothing to catch up: materialised data is at most this much
# older than the last whole hour (readers are exact regardless; this only bounds raw work).
INTERVAL_S = 30.0
_LOCK = 0x6D77_726F_6C6C  # "mwroll": one refresher at a time per database

_AGGREGATE = (
    "INSERT INTO readings_1h_rollup (point_id, bucket, min, max, sum, n, last) "
    "SELECT point_id, date_bin('1 hour', ts, timestamptz '2000-01-01'), min(value), max(value), sum(value), "
    "count(*), (array_agg(value ORDER BY ts DESC))[1] FROM readings "
    "WHERE ts >= $1 AND ts < $2 AND point_id BETWEEN $3 AND $4 GROUP BY 1, 2")
_DELETE = "DELETE FROM readings_1h_rollup WHERE bucket >= $1 AND bucket < $2 AND point_id BETWEEN $3 AND $4"
_ALL_POINTS = (-(2**31), 2**31 - 1)


def floor_hour(t: datetime) -> datetime:
    """The start of the hour holding `t` (date_bin with the API's origin; whole hours in UTC)."""
    return t - (t - _ORIGIN) % HOUR


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one transaction did; `busy` when another refresher held the lock."""

    boxes: int = 0
    forward_hours: int = 0
    backward_hours: int = 0
    dropped_before: datetime | None = None
    busy: bool = False

    @property
    def caught_up(self) -> bool:
        """Nothing left to do right now (the loop may sleep)."""
        return not self.busy and self.boxes == 0 and self.forward_hours == 0 and self.backward_hours == 0


async def _recompute(conn: asyncpg.Connection, lo: datetime, hi: datetime, points: tuple[int, int]) -> None:
    await conn.execute(_DELETE, lo, hi, *points)
    await conn.execute(_AGGREGATE, lo, hi, *points)


async def refresh_once(conn: asyncpg.Connection, *, now: datetime, lag: timedelta = LAG,
                       max_hours: int = MAX_HOURS) -> RefreshResult:
    """One bounded refresh step (see the module docstring); a no-op on TimescaleDB."""
    if await current_backend(conn) != "plain":
        return RefreshResult()
    span = HOUR * max_hours
    async with conn.transaction(isolation="repeatable_read"):
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
            return RefreshResult(busy=True)
        # work_mem: the GROUP BY of a day of readings hashes ~50 000 groups (2 000 points x 24 h).
        await conn.execute("SET LOCAL work_mem = '64MB'")
        state = await conn.fetchrow("SELECT lo, hi FROM readings_1h_state FOR UPDATE")
        assert state is not None
        lo: datetime = state["lo"]
        hi: datetime = state["hi"]
        logged = await conn.fetch("SELECT id, lo, hi, lo_point, hi_point FROM readings_1h_invalid "
                                  "ORDER BY id LIMIT $1", MAX_BOXES)
        # 1. Boxes inside what is materialised; duplicates (a mine's batches in the same hour) once.
        boxes: set[tuple[datetime, datetime, int, int]] = set()
        for r in logged:
            # A TRUNCATE logs (-infinity, infinity), which asyncpg gives as datetime's limits.
            a = lo if r["lo"].year <= 1 else max(lo, floor_hour(r["lo"]))
            b = hi if r["hi"].year >= 9999 else min(hi, floor_hour(r["hi"]) + HOUR)
            if a < b:
                boxes.add((a, b, r["lo_point"], r["hi_point"]))
        for a, b, p, q in sorted(boxes):
            await _recompute(conn, a, b, (p, q))
        # 2. Forward.
        target = min(floor_hour(now - lag), hi + span)
        forward = 0
        if target > hi:
            await _recompute(conn, hi, target, _ALL_POINTS)
            forward = int((target - hi) / HOUR)
            hi = target
        # 3. Backward, and 4. retention.
        oldest = await oldest_partition_start(conn, "readings")
        backward = 0
        dropped = None
        if oldest is not None and lo > oldest:
            start = max(oldest, lo - span)
            await _recompute(conn, start, lo, _ALL_POINTS)
            backward = int((lo - start) / HOUR)
            lo = start
        elif oldest is not None and lo < oldest:
            await conn.execute("DELETE FROM readings_1h_rollup WHERE bucket < $1", oldest)
            dropped, lo = oldest, min(oldest, hi)
        elif oldest is None and lo < hi:
            await conn.execute("DELETE FROM readings_1h_rollup")
            dropped, lo = hi, hi
        await conn.execute("UPDATE readings_1h_state SET lo = $1, hi = $2", lo, hi)
        if logged:
            await conn.execute("DELETE FROM readings_1h_invalid WHERE id = ANY($1::bigint[])",
                               [r["id"] for r in logged])
    return RefreshResult(len(boxes), forward, backward, dropped)


async def refresh_until_idle(conn: asyncpg.Connection, *, now: datetime, lag: timedelta = LAG,
                             max_hours: int = MAX_HOURS) -> list[RefreshResult]:
    """`refresh_once` until caught up (burst mode: tests and the first build)."""
    done: list[RefreshResult] = []
    while True:
        res = await refresh_once(conn, now=now, lag=lag, max_hours=max_hours)
        done.append(res)
        if res.caught_up or res.busy:
            return done


@dataclass
class RefreshTally:
    """What a refresher did: steps taken, hours recomputed forward and back, late boxes."""

    steps: int = 0
    forward_hours: int = 0
    backward_hours: int = 0
    boxes: int = 0


class Refresher:
    """The rollup's refresher in the one worker shape (minewatch/worker.py): `run()` refreshes
    until `stop()` — catching up in back-to-back steps, then every `interval_s`; `run(burst=True)`
    until caught up.

    Database errors are logged and retried after `interval_s`: readers stay exact meanwhile,
    only slower, so the refresher never takes anything else down with it (in burst mode they
    propagate, as a one-off job's should).
    """

    def __init__(self, dsn: str, *, clock: Clock, interval_s: float = INTERVAL_S) -> None:
        self.dsn = dsn
        self.clock = clock
        self.interval_s = interval_s
        self.tally = RefreshTally()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Finish the step in hand, then return from `run`."""
        self._stop.set()

    async def run(self, *, burst: bool = False) -> RefreshTally:
        conn: asyncpg.Connection | None = None
        try:
            while not self._stop.is_set():
                caught_up = True
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "minewatch-rollup"})
                    res = await refresh_once(conn, now=self.clock.now())
                    self._count(res)
                    caught_up = res.caught_up or res.busy
                    if not caught_up:
                        log.info("rollup refresh: %s", res)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    if burst:
                        raise
                    log.warning("rollup refresh failed, retrying in %.0f s: %s", self.interval_s, exc)
                    if conn is not None:
                        conn.terminate()
                        conn = None
                if caught_up:
                    if burst:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.interval_s)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()
        return self.tally

    def _count(self, res: RefreshResult) -> None:
        t = self.tally
        t.steps += 1
        t.forward_hours += res.forward_hours
        t.backward_hours += res.backward_hours
        t.boxes += res.boxes
