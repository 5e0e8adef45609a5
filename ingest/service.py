"""The ingest worker: drain the queue into batches, validate, store, commit, then acknowledge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import time
from collections import Counter as Tally
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from minewatch.clock import Clock
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.registry.db import load_lookup
from minewatch.text import log_safe

from .consumer import Inbound, MqttSource
from .errors import IngestError, UnstorableBatch
from .field_variant import AdaptedMessage, adapt
from .metrics import IngestMetrics
from .sparkplug.host import SparkplugHost, SparkplugMessage, rebirth_request
from .store import BatchStore, DeadLetter, TableBatch, WriteResult, us_to_datetime
from .validate import (
    DEFAULT_MAX_AGE,
    MAX_MESSAGE_BYTES,
    TABLE_OF,
    TOO_LARGE,
    UNKNOWN_TOPIC,
    UNPROCESSABLE,
    UNSTORABLE,
    Lookup,
    Validated,
    epoch_us,
    parse_topic,
    readings_fast,
    validate,
)

log = logging.getLogger(__name__)

# Payload bytes per batch: with `writers` batches in flight and one being validated, the ingest
# holds about (writers + 1) x this beside its queue; 16 MiB is 160 000 readings in 100-item
# messages, more than batch_max_items, so it binds only on large or hostile messages.
BATCH_MAX_BYTES = 16 << 20
# What a `too_large` dead letter keeps of the message: enough to see who sent what.
TOO_LARGE_PREVIEW = 64 * 1024


def _field_variant(topic: str, prefix: str, payload: bytes) -> AdaptedMessage | None:
    """The message adapted from the provincial `/{mine}/{system}` variant, or None if it is not one."""
    if prefix:
        if not topic.startswith(prefix):
            return None
        topic = topic[len(prefix):]
    return adapt(topic, payload)


def _strip(topic: str, prefix: str) -> str | None:
    """The topic without the ingest's prefix; None when it does not start with it."""
    if not prefix:
        return topic
    return topic[len(prefix):] if topic.startswith(prefix) else None


@dataclass
class _Writer:
    """One database connection that writes batches."""

    conn: asyncpg.Connection | None = None
    store: BatchStore | None = None


@dataclass
class Prepared:
    """One batch, validated and ready to write (kept whole so a failed write is retried unchanged)."""

    tables: dict[str, TableBatch]
    dead: list[DeadLetter]
    n_items: int
    rejected: Tally[str]
    received: Tally[str]
    newest: datetime | None
    now: datetime


@dataclass
class Totals:
    """Running totals, for burst-mode summaries and tests."""

    messages: int = 0
    items: int = 0
    stored: Tally[str] = field(default_factory=Tally)
    rejected: Tally[str] = field(default_factory=Tally)
    duplicates: int = 0
    conflicts: int = 0


@dataclass
class _Outcome:
    """One message's share of a batch, computed before anything is added (so a failure adds nothing)."""

    topic: str = ""
    fast: tuple[tuple[list[int], list[int], list[float], list[int]], tuple[str, str]] | None = None
    validated: tuple[Validated, str, str] | None = None
    dead: list[DeadLetter] = field(default_factory=list)
    rejected: Tally[str] = field(default_factory=Tally)
    received: Tally[str] = field(default_factory=Tally)
    needs_refresh: bool = False
    # A Sparkplug edge node to ask for a rebirth: (group, edge node).
    rebirth: tuple[str, str] | None = None


@dataclass
class _Accumulator:
    """A batch being built from message outcomes."""

    tables: dict[str, TableBatch]
    dead: list[DeadLetter]
    rejected: Tally[str]
    received: Tally[str]
    n_items: int = 0
    newest_us: int = -1
    newest: datetime | None = None

    def add(self, o: _Outcome, lookup: Lookup) -> None:
        self.dead += o.dead
        self.rejected.update(o.rejected)
        self.received.update(o.received)
        self.n_items += len(o.dead)
        if o.fast is not None:
            (pids, tss, values, statuses), (mine, _family) = o.fast
            hi = max(tss)
            self.tables.setdefault("readings", TableBatch(alarms=lookup.alarms)).extend_columns(
                pids, tss, values, statuses, (o.topic, mine), lookup.mine_ids[mine], min(tss), hi)
            self.newest_us = max(self.newest_us, hi)
            self.n_items += len(pids)
        if o.validated is None:
            return
        v, family, mine = o.validated
        self.n_items += len(v.rows)
        if not v.rows or v.min_ts is None or v.max_ts is None:
            return
        table = TABLE_OF[family]
        if table == "readings":
            # Same columns as the hot path, so the batch keeps message order (first value wins).
            self.tables.setdefault("readings", TableBatch(alarms=lookup.alarms)).extend_columns(
                [r[0] for r in v.rows], [epoch_us(r[1]) for r in v.rows], [r[2] for r in v.rows],
                [r[3] for r in v.rows], (o.topic, mine), lookup.mine_ids[mine], epoch_us(v.min_ts),
                epoch_us(v.max_ts))
        else:
            self.tables.setdefault(table, TableBatch()).extend(
                v.rows, (o.topic, mine), lookup.mine_ids[mine], v.min_ts, v.max_ts)
        if self.newest is None or v.max_ts > self.newest:
            self.newest = v.max_ts


class IngestService:
    """One writer loop over one MQTT source and one database connection."""

    def __init__(self, source: MqttSource, dsn: str, *, clock: Clock, metrics: IngestMetrics,
                 batch_max_items: int = 20_000, batch_max_age_s: float = 0.05,
                 future_tolerance: timedelta = timedelta(minutes=5), lookup_refresh_s: float = 30.0,
                 writers: int = 2, max_age: timedelta = DEFAULT_MAX_AGE,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, batch_max_bytes: int = BATCH_MAX_BYTES,
                 burst_idle_s: float = 2.0) -> None:
        self.source = source
        self.dsn = dsn
        self.clock = clock
        self.metrics = metrics
        self.batch_max_items = batch_max_items
        self.batch_max_age_s = batch_max_age_s
        self.future_tolerance = future_tolerance
        # Readings older than this are `too_old` (pass the retention period: older rows would be
        # dropped with their partition anyway, and a year-0001 time must create no partition).
        self.max_age = max_age
        # Messages above this are `too_large`, not parsed (the broker's message_size_limit too).
        self.max_message_bytes = max_message_bytes
        self.batch_max_bytes = batch_max_bytes
        self.lookup_refresh_s = lookup_refresh_s
        # Burst mode ends once no message arrived for this long (tests, back-fill jobs).
        self.burst_idle_s = burst_idle_s
        self.totals = Totals()
        self._stop = asyncio.Event()
        self._lookup: Lookup | None = None
        self._lookup_at = 0.0
        self._rng = random.Random()
        # Batches are written on `writers` connections at once: COPY into `readings` (keys,
        # indexes, trigger) costs the server far more than the ingest, and a second backend
        # uses another core. Acks still go out in batch order (see _commit).
        self._writers = [_Writer() for _ in range(max(1, writers))]
        self._next_writer = 0
        # Writes in flight, oldest first, while the next batch is validated.
        self._pending: deque[asyncio.Task[None]] = deque()
        # Sparkplug B alias tables (ingest/sparkplug), and each message's adaptation kept until
        # its batch is acked: a BIRTH changes the tables, so re-validating a message (a registry
        # refresh, a batch split after a refused write) must reuse what it gave the first time,
        # not map it again against tables a later BIRTH has changed. Keyed by id(), the entry
        # holding the message itself so that no other message can take its id while the entry
        # lives (it goes when the batch is acked, or when the run ends).
        self.sparkplug = SparkplugHost()
        self._sparkplug_seen: dict[int, tuple[Inbound, SparkplugMessage]] = {}

    def stop(self) -> None:
        """Drain: take no more messages; the batches in flight commit and are acked."""
        self._stop.set()

    @property
    def _conn(self) -> asyncpg.Connection | None:
        """The first writer's connection, which also serves registry lookups (when no write is in flight)."""
        return self._writers[0].conn

    async def _connect(self, w: _Writer | None = None) -> BatchStore:
        """(Re)connect a writer to PostgreSQL, waiting with capped, jittered backoff while it is down."""
        delay = 0.2
        first = w is None
        w = w or self._writers[0]
        while True:
            try:
                conn = await asyncpg.connect(self.dsn, server_settings={"application_name": "minewatch-ingest"})
                keeper = PartitionKeeper(await current_backend(conn))
                w.conn = conn
                w.store = BatchStore(conn, keeper)
                if first:
                    await self._load_lookup(conn)
                return w.store
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("database unavailable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay * (0.5 + self._rng.random()))
                delay = min(delay * 2, 10.0)

    async def _drop_connection(self, w: _Writer | None = None) -> None:
        for x in [w] if w is not None else self._writers:
            if x.conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(x.conn.close(), 2)
            x.conn = None
            x.store = None

    async def _collect(self, deadline_idle: float | None) -> list[Inbound]:
        """Take messages until the batch is full or the oldest has waited batch_max_age_s.

        Only an empty batch waits in a thread (one hop, however long the
        quiet spell); a started batch naps on the loop and drains whatever
        arrived, so single-item messages do not cost a thread hop each.
        """
        q = self.source.queue
        batch: list[Inbound] = []
        items = 0
        size = 0
        first_at = 0.0
        while items < self.batch_max_items and size < self.batch_max_bytes and not self._stop.is_set():
            try:
                m = q.get_nowait()
            except queue.Empty:
                if not batch:
                    wait = 0.2 if deadline_idle is None else min(0.2, deadline_idle - time.monotonic())
                    if wait <= 0:
                        break
                    try:
                        m = await asyncio.to_thread(q.get, True, wait)
                    except queue.Empty:
                        continue
                else:
                    left = self.batch_max_age_s - (time.monotonic() - first_at)
                    if left <= 0:
                        break
                    await asyncio.sleep(min(left, 0.005))
                    continue
            if not batch:
                first_at = time.monotonic()
            batch.append(m)
            # Rough item count so 100-item payloads make batches of ~batch_max_items readings.
            items += max(1, m.payload.count(b"{"))
            size += len(m.payload)
        self.metrics.queue_depth.set(q.qsize())
        self.metrics.queue_bytes.set(q.bytes)
        return batch

    async def _lookup_now(self, force: bool) -> Lookup:
        stale = time.monotonic() - self._lookup_at > (5.0 if force else self.lookup_refresh_s)
        if self._lookup is None or stale:
            # The connection is the writer's: let an in-flight batch write finish first.
            await self._wait_pending()
            if self._conn is None:
                await self._connect()
            assert self._conn is not None
            await self._load_lookup(self._conn)
        assert self._lookup is not None
        return self._lookup

    async def _load_lookup(self, conn: asyncpg.Connection) -> None:
        """Read the registry's lookup; a partition follows its mines (MqttSource.set_mines)."""
        self._lookup = await load_lookup(conn)
        self._lookup_at = time.monotonic()
        self.source.set_mines(self._lookup.mine_ids)

    async def process(self, batch: list[Inbound]) -> None:
        """Validate and store one batch, retrying the database until it commits; then ack it."""
        await self._wait_pending()
        await self._commit(batch, await self._prepare(batch, self.clock.now()), self._writers[0], None)

    async def _wait_pending(self) -> None:
        while self._pending:
            await self._pending.popleft()

    def _start_write(self, batch: list[Inbound], p: Prepared) -> None:
        """Start writing a batch on the next writer; the caller made sure that writer is free."""
        w = self._writers[self._next_writer % len(self._writers)]
        self._next_writer += 1
        prev = self._pending[-1] if self._pending else None
        self._pending.append(asyncio.create_task(self._commit(batch, p, w, prev)))

    async def _commit(self, batch: list[Inbound], p: Prepared, w: _Writer, prev: asyncio.Task[None] | None) -> None:
        """Write a prepared batch, retrying the database until it commits; then ack it and count it.

        `prev` is the previous batch's write: this batch is acked only after
        that one was, so acks follow batch order whichever commit ends first.
        """
        done = await self._write_isolating(batch, p, w)
        if prev is not None:
            await prev
        self.source.ack(batch)
        seen = self._sparkplug_seen
        if seen:
            for m in batch:
                seen.pop(id(m), None)
        self.metrics.messages.labels("mqtt").inc(len(batch))
        self.totals.messages += len(batch)
        for part, result in done:
            self._count(part, result)

    async def _write_retrying(self, p: Prepared, w: _Writer) -> WriteResult:
        """Write one prepared batch; while the database is down, reconnect and retry it unchanged.

        Raises UnstorableBatch when the database refused the data itself: retrying
        the same batch would fail forever, so the caller splits it.
        """
        while True:
            store = w.store or await self._connect(w)
            try:
                t0 = time.perf_counter()
                result = await store.write(p.tables, p.dead, now=p.now)
                self.metrics.commit_seconds.observe(time.perf_counter() - t0)
                return result
            except UnstorableBatch:
                raise
            except IngestError as exc:
                self.metrics.db_errors.inc()
                log.warning("%s; reconnecting and retrying the same batch", log_safe(str(exc)))
                await self._drop_connection(w)
                await asyncio.sleep(0.1 + 0.2 * self._rng.random())

    async def _write_isolating(self, batch: list[Inbound], p: Prepared, w: _Writer) -> list[tuple[Prepared, WriteResult]]:
        """Write a batch; if the database refuses its data, bisect it by message until the
        poisoned messages are alone, dead-letter those as `unstorable` and store the rest.

        A batch of n messages with one poisoned message costs about 2 log2(n) extra writes.
        """
        done: list[tuple[Prepared, WriteResult]] = []
        # (messages, prepared, attempt): attempt 0 is the data, 1 the `unstorable` dead letter
        # of a single message, 2 the same without its payload (the last resort).
        todo: list[tuple[list[Inbound], Prepared, int]] = [(batch, p, 0)]
        while todo:
            msgs, part, attempt = todo.pop()
            try:
                done.append((part, await self._write_retrying(part, w)))
                continue
            except UnstorableBatch as exc:
                self.metrics.db_errors.inc()
                reason = log_safe(str(exc))
                if attempt == 0 and len(msgs) > 1:
                    log.warning("%s; splitting the batch of %d messages to find the one refused", reason, len(msgs))
                    half = len(msgs) // 2
                    # The registry copy the batch was validated with: refreshing it here would wait
                    # for the writes in flight, this one included.
                    lookup = self._lookup or Lookup({}, {}, {}, {})
                    for sub in (msgs[half:], msgs[:half]):  # the first half is popped, so written, first
                        todo.append((sub, await self._prepare(sub, part.now, lookup=lookup), 0))
                    continue
                if attempt < 2:
                    m = msgs[0]
                    log.warning("%s; message on %s dead-lettered as %s", reason, log_safe(m.topic), UNSTORABLE)
                    todo.append((msgs, self._unstorable(m, part, str(exc), keep_payload=attempt == 0), attempt + 1))
                    continue
                log.error("could not store even the dead letter of a message on %s (%s); acknowledged, logged here",
                          log_safe(msgs[0].topic), reason)
        return done

    def _unstorable(self, m: Inbound, part: Prepared, detail: str, *, keep_payload: bool) -> Prepared:
        """A batch holding only the `unstorable` dead letter of one message the database refused."""
        received = datetime.fromtimestamp(m.received, tz=UTC)
        parsed = parse_topic(m.topic, self.source.topic_prefix)
        dl = DeadLetter(received, "mqtt", m.topic, None, None, parsed[0] if parsed else None, UNSTORABLE,
                        f"the database refused this message: {detail}", m.payload if keep_payload else b"",
                        payload_size=len(m.payload))
        return Prepared({}, [dl], 1, Tally({UNSTORABLE: 1}), Tally(), None, part.now)

    def _count(self, p: Prepared, result: WriteResult) -> None:
        """Metrics and totals of one committed (part of a) batch."""
        m, t = self.metrics, self.totals
        n_items, rejected, newest, now = p.n_items, p.rejected, p.newest, p.now
        m.batch_size.observe(n_items)
        for family, n in p.received.items():
            m.received.labels(family).inc(n)
        for table, n in result.stored.items():
            m.stored.labels(table).inc(n)
            t.stored[table] += n
        for reason, n in rejected.items():
            m.rejected.labels(reason).inc(n)
        conflicts = sum(result.conflicts.values())
        if conflicts:
            m.rejected.labels("duplicate_conflict").inc(conflicts)
            t.rejected["duplicate_conflict"] += conflicts
        for table, n in result.duplicates.items():
            m.duplicates.labels(table).inc(n)
        for table, n in result.conflicts.items():
            m.conflicts.labels(table).inc(n)
        t.items += n_items
        t.rejected.update(rejected)
        t.duplicates += sum(result.duplicates.values())
        t.conflicts += conflicts
        if newest is not None:
            m.lag_seconds.observe(max(0.0, (now - newest).total_seconds()))

    async def _prepare(self, batch: list[Inbound], now: datetime, *, lookup: Lookup | None = None) -> Prepared:
        """Validate a batch into table rows and dead letters (no database write).

        Each message is isolated: whatever its bytes, an error in it becomes its
        dead letter and the batch goes on. With `lookup` given (re-preparing a
        split batch inside a write) the registry is not refreshed.
        """
        refreshed = lookup is not None
        if lookup is None:
            lookup = await self._lookup_now(force=False)
        acc = _Accumulator(tables={}, dead=[], rejected=Tally(), received=Tally())
        for msg in batch:
            try:
                outcome = self._message(msg, lookup, now)
                if outcome.needs_refresh and not refreshed:
                    # A point defined seconds ago (new CDDY, registry reload) should not be
                    # dead-lettered because our copy of the registry is old: refresh once per
                    # batch, at most every 5 s.
                    fresh = await self._lookup_now(force=True)
                    refreshed = True
                    if fresh is not lookup:
                        lookup = fresh
                        outcome = self._message(msg, lookup, now)
            except Exception as exc:  # a bug on hostile input must cost one message, not the worker
                log.exception("could not validate a message on %s", log_safe(msg.topic))
                outcome = _Outcome(msg.topic)
                outcome.dead.append(self._letter(msg, None, UNPROCESSABLE, f"{type(exc).__name__}: {exc}", msg.payload))
            if outcome.rebirth is not None:
                self._ask_rebirth(*outcome.rebirth, now)
            acc.add(outcome, lookup)
        newest = acc.newest
        if acc.newest_us >= 0:
            fast_newest = us_to_datetime(acc.newest_us)
            if newest is None or fast_newest > newest:
                newest = fast_newest
        return Prepared(acc.tables, acc.dead, acc.n_items, acc.rejected, acc.received, newest, now)

    @staticmethod
    def _letter(msg: Inbound, mine: str | None, reason: str, detail: str, payload: bytes,
                size: int | None = None) -> DeadLetter:
        return DeadLetter(datetime.fromtimestamp(msg.received, tz=UTC), "mqtt", msg.topic, None, None, mine, reason,
                          detail, payload, payload_size=size)

    def _message(self, msg: Inbound, lookup: Lookup, now: datetime) -> _Outcome:
        """What one message yields (pure but for the clock-free lookup): rows, dead letters, counts."""
        out = _Outcome(msg.topic)
        topic, payload = msg.topic, msg.payload
        if len(payload) > self.max_message_bytes:
            # Not parsed: a 100 MB message must not become 100 MB of Python objects.
            out.dead.append(self._letter(msg, None, TOO_LARGE,
                                         f"{len(payload)} bytes; the ingest parses at most {self.max_message_bytes}",
                                         payload[:TOO_LARGE_PREVIEW], len(payload)))
            out.rejected[TOO_LARGE] += 1
            return out
        prefix = self.source.topic_prefix
        parsed = parse_topic(topic, prefix)
        if parsed is not None and (parsed[1] == "safety" or parsed[1] == "geotech"):
            # Hot path: a message whose items are all valid becomes columns, nothing per item.
            fast = readings_fast(payload, parsed[0], lookup.points, epoch_us(now + self.future_tolerance),
                                 epoch_us(now - self.max_age))
            if fast is not None:
                out.fast = (fast, parsed)
                out.received[parsed[1]] += len(fast[0])
                return out
        bare = _strip(topic, prefix) if parsed is None else None
        if bare is not None and bare.startswith("spBv1.0/"):
            return self._sparkplug(msg, bare, lookup, now, out)
        variant = None if parsed is not None else _field_variant(topic, prefix, payload)
        if variant is not None:
            # The provincial variant: what the adapter refused goes to dead letters, its
            # canonical items go through the same validation as `mines/{mine}/safety`.
            for reason, raw in variant.errors:
                out.dead.append(self._letter(msg, variant.mine_code, reason,
                                             "field MQTT variant message refused by its adapter", raw))
                out.rejected[reason] += 1
            if not variant.items:
                return out
            parsed, payload = (variant.mine_code, variant.family), msgspec.json.encode(variant.items)
        if parsed is None:
            out.dead.append(self._letter(msg, None, UNKNOWN_TOPIC,
                                         "topic is not mines/{mine}/{safety|geotech|personnel|stations}", payload))
            out.rejected[UNKNOWN_TOPIC] += 1
            return out
        return self._validated(msg, parsed, payload, lookup, now, out)

    def _validated(self, msg: Inbound, parsed: tuple[str, str], payload: bytes, lookup: Lookup, now: datetime,
                   out: _Outcome) -> _Outcome:
        """Canonical items of a family validated for the mine of the topic into `out`."""
        mine, family = parsed
        v = validate(family, mine, payload, lookup, now=now, future_tolerance=self.future_tolerance,
                     max_age=self.max_age)
        out.validated = (v, family, mine)
        out.needs_refresh = any(r.reason.startswith("unknown_") for r in v.rejects)
        out.received[family] += len(v.rows) + len(v.rejects)
        for r in v.rejects:
            # Each item's dead letter holds that item's bytes (validate keeps them), never the
            # whole message again: 10 000 bad items of a 2 MB message are 2 MB, not 20 GB.
            out.dead.append(self._letter(msg, mine, r.reason, r.detail, r.payload))
            out.rejected[r.reason] += 1
        return out

    def _sparkplug(self, msg: Inbound, topic: str, lookup: Lookup, now: datetime, out: _Outcome) -> _Outcome:
        """A Sparkplug B message (topic without prefix): what the adapter refused goes to dead
        letters, its canonical items through the same validation as `mines/{mine}/safety`."""
        seen = self._sparkplug_seen.get(id(msg))
        if seen is not None and seen[0] is msg:
            sp = seen[1]
        else:
            sp = self.sparkplug.adapt(topic, msg.payload) or SparkplugMessage("", None)  # None: not reached
            self._sparkplug_seen[id(msg)] = (msg, sp)
            if sp.kind in ("NDEATH", "DDEATH"):
                log.info("Sparkplug %s on %s: nothing recorded", sp.kind, log_safe(msg.topic))
        for reason, detail, raw in sp.errors:
            out.dead.append(self._letter(msg, sp.mine_code, reason, f"Sparkplug B: {detail}", raw))
            out.rejected[reason] += 1
        out.rebirth = sp.rebirth
        if not sp.items or sp.mine_code is None:
            return out
        return self._validated(msg, (sp.mine_code, "safety"), msgspec.json.encode(sp.items), lookup, now, out)

    def _ask_rebirth(self, group: str, node: str, now: datetime) -> None:
        """Publish an NCMD `Node Control/Rebirth` to an edge node whose DATA used aliases we do not
        know (at most once per node per SparkplugHost.rebirth_interval)."""
        if not self.sparkplug.rebirth_due(group, node, now):
            return
        topic, payload = rebirth_request(group, node, int(now.timestamp() * 1000))
        topic = self.source.topic_prefix + topic
        sent = self.source.publish(topic, payload)
        log.info("asked Sparkplug edge node %s for a rebirth on %s (%s)", log_safe(f"{group}/{node}"),
                 log_safe(topic), "queued" if sent else "not connected")

    async def run(self, *, burst: bool = False) -> Totals:
        """Run until `stop()` (the batches in flight commit and are acked); with `burst`, until no
        message arrived for `burst_idle_s` seconds (the one worker shape, minewatch/worker.py)."""
        burst_idle_s = self.burst_idle_s if burst else None
        partitioned = self.source.partition is not None
        if partitioned:  # a partition subscribes to its mines: the registry first
            await self._connect()
        self.source.start()
        try:
            if not partitioned:
                await self._connect()
            last_work = time.monotonic()
            while not self._stop.is_set():
                deadline = None if burst_idle_s is None else last_work + burst_idle_s
                batch = await self._collect(deadline)
                self.metrics.heartbeat.set(time.time())
                self.metrics.connected.set(1 if self.source.connected.is_set() else 0)
                if batch:
                    # Pipelined: validate this batch while earlier ones are being written (the
                    # database works on the other core meanwhile), then write it on the next
                    # free writer. Each batch is acked after its own commit and after the
                    # previous batch's ack.
                    prepared = await self._prepare(batch, self.clock.now())
                    while len(self._pending) >= len(self._writers):
                        await self._pending.popleft()  # frees the writer this batch will use
                    self._start_write(batch, prepared)
                    last_work = time.monotonic()
                elif burst_idle_s is not None and time.monotonic() - last_work >= burst_idle_s:
                    await self._wait_pending()
                    break
                elif partitioned and time.monotonic() - self._lookup_at > self.lookup_refresh_s:
                    # No traffic refreshes the registry of a partition whose new mine it does
                    # not subscribe to yet: look on the clock.
                    await self._lookup_now(force=False)
            await self._wait_pending()
        finally:
            pending, self._pending = list(self._pending), deque()
            # Stopping: give the batches in flight a moment to commit and be acked (fewer
            # redeliveries); what cannot was not acked, and the broker redelivers it.
            for task in pending:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)
            self.source.stop()
            self._sparkplug_seen.clear()
            await self._drop_connection()
        return self.totals
