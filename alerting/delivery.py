"""Delivering the outbox: claim due rows with a lease, send outside any transaction, record the attempt.

One `step` is: expire rows past their expiry; claim up to `batch` due rows (FOR UPDATE SKIP
LOCKED) by moving their `next_attempt_at` to now + lease and counting the attempt, and
commit; send them concurrently through the notifiers; record every attempt and each row's
new state in one transaction. No transaction is open during the HTTP calls. A deliverer
killed mid-send leaves its rows pending with a lease that expires; another (or the same,
restarted) sends them again under the same Idempotency-Key, so a receiver honouring the key
sees at most one duplicate per crash.

Retryable failures are rescheduled with `alerting.backoff` (expired when no attempt fits
before the row's expiry); permanent failures stop at once. Both end states are written on
the case's history, so the people watching a case see that an alarm did not get through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from alerting import store
from alerting.backoff import BackoffPolicy, next_attempt_at
from alerting.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from alerting.metrics import AlertingMetrics
from alerting.notifiers.base import Notifier, OutboundMessage, SmsMessage, WebhookMessage
from alerting.pipeline.builder import deliver
from alerting.store import Conn
from minewatch.clock import Clock

log = logging.getLogger(__name__)

Outcome = Literal["delivered", "retryable", "permanent"]

# Rows under a lease are left to their deliverer, which records the outcome (or the expiry).
_EXPIRE = """
UPDATE notifications n SET state = 'expired', last_error = COALESCE(n.last_error, 'expired before any attempt')
FROM (SELECT id FROM notifications WHERE state = 'pending' AND expires_at <= $1 AND next_attempt_at <= $1
      ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
WHERE n.id = due.id
RETURNING n.id, n.case_id, n.channel, n.last_error
"""

_CLAIM = """
UPDATE notifications n SET next_attempt_at = $2, attempts = n.attempts + 1
FROM (SELECT id FROM notifications WHERE state = 'pending' AND next_attempt_at <= $1 AND expires_at > $1
      ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
WHERE n.id = due.id
RETURNING n.id, n.case_id, n.channel, n.target, n.body, n.attempts, n.created_at
"""

# Guarded by the attempt count: a deliverer whose lease ran out while it was still sending
# must not overwrite the outcome of the one that took the row over.
_SETTLE = """
UPDATE notifications SET state = $3, next_attempt_at = COALESCE($4, next_attempt_at), delivered_at = $5,
       last_error = $6
WHERE id = $1 AND attempts = $2 AND state = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row this deliverer holds the lease of."""

    id: uuid.UUID
    case_id: int | None
    channel: str
    target: str
    body: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one send."""

    row: Claimed
    outcome: Outcome
    status: int | None
    error: str | None
    duration_ms: float
    hint: timedelta | None = None  # the receiver's Retry-After


@dataclass(frozen=True, slots=True)
class Notifiers:
    """The senders per channel."""

    sms: Notifier
    webhook: Notifier


class DeliveryWorker:
    """Delivers the outbox; `step` is one claim-send-record round, `run_burst` repeats it until
    nothing is due. Several may run at once, in one process (lanes) or many."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        clock: Clock,
        notifiers: Notifiers,
        secrets: Mapping[str, str],
        backoff: BackoffPolicy,
        lease: timedelta,
        batch: int,
        concurrency: int = 8,  # sends in flight per step (per lane)
        metrics: AlertingMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._notifiers = notifiers
        # Webhook secrets by environment variable name, resolved at send time.
        self._secrets = secrets
        self._backoff = backoff
        self._lease = lease
        self._batch = batch
        self._concurrency = concurrency
        self._metrics = metrics
        self._rng = rng if rng is not None else random.Random()

    async def step(self) -> int:
        """Expire, then the pipeline's delivery steps (retry → send → record, in the order
        `alerting.pipeline.builder.deliver` runs them); returns how many rows were claimed or
        expired."""
        expired = await self._expire()
        return expired + await deliver(self)

    async def retry(self) -> list[Claimed]:
        """Claim the rows due now (first attempts, and retries whose backoff has passed) by
        moving them a lease ahead and counting the attempt; committed before anything is sent."""
        now = self._clock.now()
        rows = await self._pool.fetch(_CLAIM, now, now + self._lease, self._batch)
        return [Claimed(r["id"], r["case_id"], r["channel"], r["target"], _json(r["body"]), r["attempts"],
                        r["created_at"]) for r in rows]

    async def run_burst(self) -> int:
        """Step until nothing is due now; returns the rows handled."""
        total = 0
        while (n := await self.step()) > 0:
            total += n
        return total

    async def send(self, claimed: list[Claimed]) -> list[Attempt]:
        """Send a claimed batch with `concurrency` senders pulling from it. A few loops rather
        than a task per row behind a semaphore: with httpx the latter costs a third of the
        throughput (bench/alerting) in wake-ups and pool bookkeeping."""
        queue = iter(claimed)
        done: list[Attempt] = []

        async def sender() -> None:
            for row in queue:
                done.append(await self._send(row))

        await asyncio.gather(*(sender() for _ in range(min(self._concurrency, len(claimed)))))
        return done

    async def _send(self, row: Claimed) -> Attempt:
        started = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - started) * 1000.0

        try:
            message = self._message(row)
            notifier = self._notifiers.sms if row.channel == "sms" else self._notifiers.webhook
            result = await notifier.send(message)
        except RetryableDeliveryError as exc:
            return Attempt(row, "retryable", exc.status, exc.detail, took(), self._hint(exc))
        except DeliveryError as exc:
            return Attempt(row, "permanent", exc.status, exc.detail, took())
        except (KeyError, TypeError, ValueError) as exc:
            # A body this code cannot turn into a message will not improve by waiting.
            return Attempt(row, "permanent", None, f"malformed outbox row: {exc!r}", took())
        return Attempt(row, "delivered", result.status, None, took())

    def _message(self, row: Claimed) -> OutboundMessage:
        key = str(row.id)
        if row.channel == "sms":
            return SmsMessage(id=key, to=row.target, segments=tuple(str(s) for s in row.body["segments"]))
        if row.channel != "webhook":
            raise PermanentDeliveryError(f"unknown channel {row.channel!r}")
        secret = self._secrets.get(str(row.body.get("secret_env", "")), "")
        if not secret:
            raise PermanentDeliveryError(f"webhook {key}: the secret variable {row.body.get('secret_env')!r} "
                                         f"is not set")
        return WebhookMessage(id=key, url=row.target, payload=row.body["payload"], secret=secret.encode())

    def _hint(self, exc: RetryableDeliveryError) -> timedelta | None:
        if exc.retry_after is not None:
            return timedelta(seconds=exc.retry_after)
        if exc.retry_at is not None:
            return max(timedelta(0), exc.retry_at - self._clock.now())
        return None

    async def record(self, attempts: list[Attempt]) -> None:
        """Write every attempt and settle each row: delivered, failed, expired, or pending
        again at the next attempt `alerting.backoff` allows."""
        now = self._clock.now()
        settle: list[tuple[Any, ...]] = []
        surfaced: list[tuple[Attempt, str]] = []
        for a in attempts:
            row = a.row
            if a.outcome == "delivered":
                settle.append((row.id, row.attempts, "delivered", None, now, None))
            elif a.outcome == "permanent":
                settle.append((row.id, row.attempts, "failed", None, None, a.error))
                surfaced.append((a, "failed"))
            else:
                when = next_attempt_at(failures=row.attempts, created_at=row.created_at, now=now,
                                       policy=self._backoff, rng=self._rng, hint=a.hint)
                if when is None:
                    settle.append((row.id, row.attempts, "expired", None, None, a.error))
                    surfaced.append((a, "expired"))
                else:
                    settle.append((row.id, row.attempts, "pending", when, None, a.error))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO notification_attempts (notification_id, at, outcome, status_code, error, duration_ms) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                [(a.row.id, now, a.outcome, a.status, a.error, a.duration_ms) for a in attempts])
            await conn.executemany(_SETTLE, settle)
            for a, state in surfaced:
                if a.row.case_id is not None:
                    await _surface(conn, a.row.case_id, a.row.id, a.row.channel, a.row.target, state, a.error,
                                   now=now)
        self._count(attempts, surfaced, now)

    def _count(self, attempts: list[Attempt], surfaced: list[tuple[Attempt, str]], now: datetime) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        final = {a.row.id: state for a, state in surfaced}
        for a in attempts:
            outcome = "delivered" if a.outcome == "delivered" else final.get(a.row.id, "retryable")
            metrics.notifications.labels(channel=a.row.channel, outcome=outcome).inc()
            if a.outcome == "delivered":
                metrics.latency.labels(channel=a.row.channel).observe(
                    max(0.0, (now - a.row.created_at).total_seconds()))
        for a, state in surfaced:
            log.warning("notification %s to %s %s: %s", a.row.id, a.row.channel, state, a.error)

    async def _expire(self) -> int:
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_EXPIRE, now, self._batch)
            for r in rows:
                if r["case_id"] is not None:
                    await _surface(conn, r["case_id"], r["id"], r["channel"], "", "expired", r["last_error"], now=now)
        if self._metrics is not None:
            for r in rows:
                self._metrics.notifications.labels(channel=r["channel"], outcome="expired").inc()
        return len(rows)


async def _surface(
    conn: Conn, case_id: int, notification_id: uuid.UUID, channel: str, target: str, state: str,
    error: str | None, *, now: datetime,
) -> None:
    """Write a notification that will never arrive on its case's history."""
    to = f" to {target}" if target else ""
    await store.note_on_case(
        conn, case_id=case_id, at=now, action=f"notification_{state}",
        comment=f"{channel} notification {notification_id}{to} {state}: {error or 'no detail'}",
        detail={"notification_id": str(notification_id), "channel": channel, "error": error})


def _json(raw: object) -> dict[str, Any]:
    data = json.loads(raw) if isinstance(raw, str) else raw
    return data if isinstance(data, dict) else {}
