"""The streaming rules worker: claim a mine's dirty windows, re-evaluate them, commit the findings with the claim.

`RuleWorker` claims a mine's windows (`rules.store.claim_mine`: a row lock per window and
an advisory lock per mine, so two workers never evaluate one mine at once), runs
`rules.backfill.reevaluate` on them (readings windows as spans; an accidents window re-counts
the mine's accident rules) and deletes the windows in the same transaction as
the findings: a crash at any moment leaves either the old state with the windows still
waiting, or the new one without them. LISTEN wakes it when the ingest commits; a poll is
the fallback. `run(burst=True)` stops once no window is left (tests, catch-up jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from minewatch.clock import Clock, SystemClock
from minewatch.timeutil import to_ns
from rules import presence_store, store
from rules.backfill import Tally, reevaluate
from rules.errors import RulesError
from rules.evaluate import plan_spans
from rules.integrity_rows import IntegrityParams
from rules.integrity_worker import clock_pass, reevaluate_integrity
from rules.metrics import RulesMetrics
from rules.packs import RulePack, builtin_pack, load_pack
from rules.personnel_worker import clock_pass as personnel_clock_pass
from rules.personnel_worker import reevaluate_windows

log = logging.getLogger(__name__)
# Errors that say the connection (or the server) is gone, not that a mine's data is bad.
CONNECTION_ERRORS = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
                     OSError)

# How often a clock pass looks for urgent windows between two mines (RuleWorker.serve_urgent).
URGENT_LOOK_S = 0.05


class RulesSettings(BaseSettings):
    """How the rules worker runs (env MINEWATCH_RULES_*), read once where the worker starts."""

    model_config = SettingsConfigDict(env_prefix="MINEWATCH_RULES_", extra="ignore")

    pack: str = "default"  # a shipped pack's name or a pack file's path
    # Windows claimed per transaction: a backlog after an outage is worked off in large bites.
    claim_limit: int = Field(default=5_000, ge=1)
    # Windows of one claim closer than this are evaluated as one span (one pass over a little
    # more data is cheaper than two passes); longer spans are cut into pieces of a day, and at
    # most `max_pieces` are evaluated per transaction (the rest is queued again), so that a
    # threshold correction over months never holds a mine's lock for long.
    slack_s: float = Field(default=3_600, ge=0)
    piece_s: float = Field(default=86_400, gt=0)
    max_pieces: int = Field(default=7, ge=1)
    # LISTEN wakes the worker at once; the poll is the fallback (a lost notification, a
    # connection that was down), and also how often threshold changes are looked for.
    poll_s: float = Field(default=2.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)
    drain_timeout_s: float = Field(default=30.0, ge=0)
    retry_s: float = Field(default=5.0, gt=0)
    # The integrity rules (rules.md §6, §4 power-off check) run beside the methane chain on the
    # same windows; the clock-driven pass re-judges every mine's last minutes this often, so a
    # silent mine is found offline within 3 × period + clock_s of its last reading.
    integrity: bool = True
    clock_s: float = Field(default=5.0, gt=0)
    # The personnel rules (rules.md §7, §4 evacuation) on card-read windows, and on the clock.
    personnel: bool = True
    # Urgent windows (a restricted-area read, a mine under an order: migration 0092) are claimed
    # before all others while the oldest window has waited less than this; past it (a backlog),
    # urgent and oldest-first claims alternate, so neither kind can starve the other.
    urgent_defer_s: float = Field(default=1.0, ge=0)


def resolve_pack(name_or_path: str) -> RulePack:
    """A shipped pack by name, or a pack file by path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return load_pack(name_or_path)
    return builtin_pack(name_or_path)


class RuleWorker:
    """Claims dirty windows one mine at a time and re-evaluates them; `run(burst=True)` stops
    once no window is left (deterministic tests, catch-up jobs)."""

    def __init__(self, dsn: str, pack: RulePack, *, settings: RulesSettings | None = None,
                 metrics: RulesMetrics | None = None, clock: Clock | None = None) -> None:
        self.dsn = dsn
        self.pack = pack
        # Without settings: the defaults, not the environment (settings are read in main()).
        self.settings = settings or RulesSettings.model_construct()
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.tally = Tally()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._failed: dict[int, float] = {}  # mine id -> monotonic time it may be tried again
        self._thresholds_at = 0.0
        self._clock_at = 0.0
        self._clock_last: datetime | None = None  # the clock of the last clock-driven pass
        self._urgent_turn = True  # in a backlog, claims alternate: urgent first, then the oldest (store.claim_mine)
        self._urgent_look_at = 0.0  # monotonic time before which serve_urgent does not look again
        self.integrity_params = IntegrityParams()

    def stop(self) -> None:
        """Finish the evaluation in hand, claim nothing more."""
        self._stop.set()
        self._wake.set()

    async def run(self, *, burst: bool = False) -> Tally:
        """Work until stopped (or, in burst mode, until no window is left); returns the tally."""
        async with asyncio.TaskGroup() as tg:
            loop = tg.create_task(self._loop(burst))
            if not burst:
                side = tg.create_task(self._listen_and_beat())
                tg.create_task(self._drain(loop, side))
        return self.tally

    async def _drain(self, loop: asyncio.Task[None], side: asyncio.Task[None]) -> None:
        await self._stop.wait()
        try:
            await asyncio.wait_for(asyncio.shield(loop), self.settings.drain_timeout_s)
        except TimeoutError:
            log.warning("rules worker: evaluation still running after %.0f s, abandoned (it rolls back)",
                        self.settings.drain_timeout_s)
            loop.cancel()
        side.cancel()

    async def _loop(self, burst: bool) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while not self._stop.is_set():
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "minewatch-rules"})
                    if not burst and time.monotonic() >= self._thresholds_at:
                        self._thresholds_at = time.monotonic() + self.settings.poll_s
                        await enqueue_threshold_changes(conn)
                    # The clock-driven passes come first: a worker kept busy by a backlog of
                    # windows must still find the mines that send nothing at all.
                    if not burst and (self.settings.integrity or self.settings.personnel) \
                            and time.monotonic() >= self._clock_at:
                        self._clock_at = time.monotonic() + self.settings.clock_s
                        # A pass visits every mine: urgent windows are served between two mines.
                        between = functools.partial(self.serve_urgent, conn)
                        if self.settings.integrity:
                            with self._timed("integrity"):
                                await self.clock_pass(conn, between=between)
                        if self.settings.personnel:
                            with self._timed("personnel"):
                                await self.personnel_clock_pass(conn, between=between)
                    if await self.step(conn):
                        continue
                except RulesError as exc:  # one mine's evaluation failed; it waits, the others go on
                    if burst:
                        raise
                    log.error("rules worker: %s; that mine is retried in %.0f s", exc, self.settings.retry_s,
                              exc_info=exc.__cause__ or exc)
                    if self.metrics is not None:
                        self.metrics.errors.labels(kind="evaluation").inc()
                    continue
                except CONNECTION_ERRORS as exc:
                    if burst:
                        raise
                    log.warning("rules worker: database unavailable (%s); retrying in %.0f s", exc, self.settings.retry_s)
                    if self.metrics is not None:
                        self.metrics.errors.labels(kind="connection").inc()
                    if conn is not None and not conn.is_closed():
                        conn.terminate()
                    conn = None
                    await asyncio.sleep(self.settings.retry_s)
                    continue
                if burst:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()

    async def step(self, conn: asyncpg.Connection, *, urgent_only: bool = False) -> bool:
        """Clear windows of kinds nothing here evaluates, then claim one mine's windows,
        re-evaluate, commit; False when there was nothing to clear or claim. ``urgent_only``:
        claim only a mine with an urgent window (between the mines of a clock pass)."""
        started = time.monotonic()
        s = self.settings
        cleared = await store.clear_unevaluated(conn, limit=s.claim_limit)
        self.tally.cleared += cleared
        skip = [m for m, until in self._failed.items() if until > started]
        mine_id: int | None = None
        before, written = self.tally.readings, Counter(self.tally.findings)
        try:
            async with conn.transaction():
                urgent_first = self._urgent_turn or await store.oldest_wait_s(conn) < s.urgent_defer_s
                claim = await store.claim_mine(conn, limit=s.claim_limit, skip=skip, urgent_first=urgent_first,
                                               urgent_only=urgent_only)
                if claim is None:
                    return cleared > 0
                mine_id, windows = claim
                self._urgent_turn = not any(w.urgent for w in windows)
                spans = plan_spans([(w.lo, w.hi) for w in windows if w.kind in (store.READINGS_KIND, store.STATIONS_KIND)],
                                   slack_ns=int(s.slack_s * 1e9), piece_ns=int(s.piece_s * 1e9))
                accidents = any(w.kind == store.ACCIDENTS_KIND for w in windows)
                changed = await reevaluate(conn, self.pack, mine_id, spans[:s.max_pieces], tally=self.tally,
                                           accidents=accidents)
                if s.integrity and spans:
                    changed = await reevaluate_integrity(conn, mine_id, spans[:s.max_pieces], now_ns=to_ns(self.clock.now()),
                                                         tally=self.tally, params=self.integrity_params) or changed
                if s.personnel:
                    changed = await reevaluate_windows(conn, self.pack, mine_id, windows, now_ns=to_ns(self.clock.now()),
                                                       tally=self.tally, slack_ns=int(s.slack_s * 1e9),
                                                       piece_ns=int(s.piece_s * 1e9)) or changed
                await self._presence(conn, mine_id, windows)
                for lo, hi in spans[s.max_pieces:]:
                    await store.enqueue_window(conn, mine_id, lo, hi)
                await store.delete_windows(conn, [w.id for w in windows])
                if changed:
                    await store.notify_findings(conn)
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:  # this mine's data or a bug: the other mines must go on meanwhile
            if mine_id is None:
                raise
            self._failed[mine_id] = time.monotonic() + s.retry_s
            if isinstance(exc, RulesError):
                raise
            raise RulesError(f"evaluating mine id {mine_id} failed: {exc!r}") from exc
        self._failed.pop(mine_id, None)
        self.tally.windows += len(windows)
        if self.metrics is not None:
            self.metrics.windows.inc(len(windows))
            self.metrics.readings.inc(self.tally.readings - before)
            for change in ("created", "updated", "superseded"):
                self.metrics.findings.labels(change=change).inc(self.tally.findings[change] - written[change])
            self.metrics.evaluation_seconds.observe(time.monotonic() - started)
        return True

    async def _presence(self, conn: asyncpg.Connection, mine_id: int, windows: list[store.DirtyWindow]) -> None:
        """The personnel page's presence rows follow the card reads claimed, whatever rules run
        (rules.presence_store). They are an index for one page, never a finding: if keeping them
        fails, the mine's build mark goes (the page reads card_reads, the next claim rebuilds)
        and the evaluation commits all the same."""
        spans = [(w.lo, w.hi) for w in windows if w.kind == store.CARDS_KIND and w.rows > 0]
        if not spans:
            return
        try:
            async with conn.transaction():
                await presence_store.update(conn, mine_id, spans)
        except CONNECTION_ERRORS:
            raise
        except Exception:
            log.exception("rules worker: keeping the presence rows of mine id %s failed; the personnel page "
                          "reads card_reads until its next claim rebuilds them", mine_id)
            await conn.execute("DELETE FROM presence_built WHERE mine_id = $1", mine_id)

    async def serve_urgent(self, conn: asyncpg.Connection) -> bool:
        """Between two mines of a clock pass: evaluate the mine of the oldest urgent window, if one
        waits. It looks at most every URGENT_LOOK_S, one index probe, so that a pass over a
        province's 900 mines does not add 900 claims to every pass. True when it evaluated one."""
        now = time.monotonic()
        if now < self._urgent_look_at:
            return False
        self._urgent_look_at = now + URGENT_LOOK_S
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dirty_windows WHERE urgent)"):
            return False
        return await self.step(conn, urgent_only=True)

    @contextlib.contextmanager
    def _timed(self, family: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        took = time.monotonic() - started
        log.debug("rules worker: %s clock pass took %.3f s", family, took)
        if self.metrics is not None:
            self.metrics.clock_seconds.labels(family=family).observe(took)

    async def clock_pass(self, conn: asyncpg.Connection, *, between: store.Between | None = None) -> bool:
        """The clock-driven integrity pass at this worker's clock (rules.integrity_worker.clock_pass):
        offline, station faults, power-off failures and under-reporting fire with no data at all."""
        now = self.clock.now()
        changed = await clock_pass(conn, now, tally=self.tally, params=self.integrity_params, since=self._clock_last,
                                   between=between)
        self._clock_last = now
        return changed

    async def personnel_clock_pass(self, conn: asyncpg.Connection, *, between: store.Between | None = None) -> bool:
        """The clock-driven personnel pass at this worker's clock (rules.personnel_worker.clock_pass):
        overtime of a silent card, work_continued at t + 30 min, spans that stay open."""
        return await personnel_clock_pass(conn, to_ns(self.clock.now()), tally=self.tally,
                                          settings=self.pack.personnel, exclude_mask=self.pack.episodes.exclude_mask,
                                          between=between)

    async def _listen_and_beat(self) -> None:
        """LISTEN for the ingest's notifications and keep the heartbeat and lag metrics fresh."""
        conn: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "minewatch-rules-listen"})
                        await conn.add_listener(store.DIRTY_CHANNEL, lambda *_: self._wake.set())
                        self._wake.set()  # whatever was notified while we were not listening
                    n, age = await store.backlog(conn)
                    if self.metrics is not None:
                        self.metrics.heartbeat.set(self.clock.now().timestamp())
                        self.metrics.backlog.set(n)
                        self.metrics.lag_seconds.set(age or 0.0)
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    log.warning("rules worker listener: %s", exc)
                    conn = None
                await asyncio.sleep(self.settings.heartbeat_s)
        finally:
            if conn is not None and not conn.is_closed():
                await conn.close()


_THRESHOLDS_KEY = "thresholds_recorded_at"


async def enqueue_threshold_changes(conn: asyncpg.Connection) -> int:
    """Queue a re-evaluation of every mine whose threshold versions changed since the last look,
    from the earliest new ``effective_from`` (clipped to its readings); returns windows queued.

    The first look only records where it stands: history before it is back-fill's business.
    """
    async with conn.transaction():
        newest = await conn.fetchval("SELECT max(recorded_at) FROM point_thresholds")
        if newest is None:
            return 0
        seen_raw = await conn.fetchval("SELECT value->>'at' FROM rule_state WHERE mine_id = 0 AND key = $1 FOR UPDATE",
                                       _THRESHOLDS_KEY)
        mark = json.dumps({"at": newest.isoformat()})
        if seen_raw is None:
            await conn.execute("INSERT INTO rule_state (mine_id, key, value) VALUES (0, $1, $2::jsonb) "
                               "ON CONFLICT DO NOTHING", _THRESHOLDS_KEY, mark)
            return 0
        seen = datetime.fromisoformat(seen_raw)
        if newest <= seen:
            return 0
        queued = 0
        for r in await conn.fetch(
                "SELECT p.mine_id, min(t.effective_from) AS since, array_agg(DISTINCT p.id) AS points "
                "FROM point_thresholds t JOIN points p ON p.id = t.point_id WHERE t.recorded_at > $1 "
                "GROUP BY p.mine_id ORDER BY p.mine_id", seen):
            span = await conn.fetchrow(
                "SELECT min(f.ts) AS first, max(l.ts) AS last FROM unnest($1::int[]) AS p, "
                "LATERAL (SELECT ts FROM readings WHERE point_id = p ORDER BY ts LIMIT 1) f, "
                "LATERAL (SELECT ts FROM readings WHERE point_id = p ORDER BY ts DESC LIMIT 1) l", r["points"])
            if span is None or span["last"] is None or span["last"] < r["since"]:
                continue
            await store.enqueue_window(conn, r["mine_id"], to_ns(max(r["since"], span["first"])), to_ns(span["last"]))
            queued += 1
        await conn.execute("UPDATE rule_state SET value = $2::jsonb WHERE mine_id = 0 AND key = $1", _THRESHOLDS_KEY, mark)
    if queued:
        log.info("threshold versions changed: %d mine(s) queued for re-evaluation", queued)
    return queued
