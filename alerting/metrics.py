"""Prometheus metrics of the alerting workers: cases, notifications, delivery latency, outbox health.

Counters move as the workers act; the gauges of cases and of the outbox are read from the
database by `refresh`, so they are right whichever process (worker, API, a second worker)
changed the rows.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From a quarter second (a local receiver) to an hour (a receiver down for a while, then
# retried): the latency people care about is "did the alarm arrive within the minute".
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class AlertingMetrics:
    """The metric families, registered once in the process's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.cases = Gauge("minewatch_alerting_cases", "Cases by state and supervising level",
                           ["state", "level"], registry=registry)
        self.cases_opened = Counter("minewatch_alerting_cases_opened", "Cases opened from findings",
                                    ["level", "severity"], registry=registry)
        self.escalations = Counter("minewatch_alerting_escalations", "Cases escalated, by cause",
                                   ["cause"], registry=registry)
        self.reminders = Counter("minewatch_alerting_reminders", "Reminders sent, by what the case waits for",
                                 ["kind"], registry=registry)
        self.enqueued = Counter("minewatch_alerting_notifications_enqueued", "Outbox rows written",
                                ["channel", "reason"], registry=registry)
        self.suppressed = Counter("minewatch_alerting_notifications_suppressed",
                                  "Notifications not sent: grouped into another, inhibited, silenced, duplicate",
                                  ["why"], registry=registry)
        self.notifications = Counter(
            "minewatch_alerting_notifications",
            "Delivery attempts by channel and outcome (delivered, retryable, failed, expired)",
            ["channel", "outcome"], registry=registry)
        self.latency = Histogram("minewatch_alerting_delivery_latency_seconds",
                                 "From outbox row created to delivered", ["channel"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.outbox_depth = Gauge("minewatch_alerting_outbox_depth", "Pending outbox rows", registry=registry)
        self.oldest_undelivered = Gauge("minewatch_alerting_outbox_oldest_undelivered_seconds",
                                        "Age of the oldest pending outbox row (0 when none)", registry=registry)
        self.heartbeat = Gauge("minewatch_alerting_heartbeat_timestamp_seconds",
                               "When each worker loop last completed a step", ["worker"], registry=registry)

    async def refresh(self, conn: asyncpg.Connection | PoolConnectionProxy, *, now: datetime) -> None:
        """Read the gauges from the database."""
        rows = await conn.fetch("SELECT state, level, count(*) AS n FROM cases GROUP BY state, level")
        # Clear first: a (state, level) pair with no case left must read 0, not its last value.
        self.cases.clear()
        for r in rows:
            self.cases.labels(state=r["state"], level=r["level"]).set(r["n"])
        pending = await conn.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM notifications WHERE state = 'pending'")
        assert pending is not None
        self.outbox_depth.set(pending["n"])
        oldest = pending["oldest"]
        self.oldest_undelivered.set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
