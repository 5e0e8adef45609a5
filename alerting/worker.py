"""The alerting worker process: the case loop and the delivery lanes on one TaskGroup.

`CaseWorker.step` is one pass of the case side (findings → cases, orders, timers, effects →
outbox); `DeliveryWorker.step` (in `alerting.delivery`) one round of the delivery side.
`Runner` drives them: woken by LISTEN (`minewatch_findings` from the rules worker,
`minewatch_case_actions` from the API, `minewatch_outbox` from the enqueuer) and polling
every `poll_interval_s` as the fallback that also makes timers fire. In burst mode it steps
until there is nothing to do and returns, which is what tests use. `stop()` lets each loop
finish its current step (the drain), bounded by `drain_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import asyncpg
import httpx
from prometheus_client import CollectorRegistry

from alerting.cases import run_timers, settle_orders, sync_findings
from alerting.delivery import DeliveryWorker, Notifiers
from alerting.measure_checks import check_power_off
from alerting.messages import Templates, load_templates
from alerting.metrics import AlertingMetrics
from alerting.notifiers.base import Notifier
from alerting.notifiers.h1 import H1Client
from alerting.notifiers.sms_gateway import HttpSmsGateway
from alerting.notifiers.sms_log import LogSms
from alerting.notifiers.webhook import WebhookNotifier
from alerting.outbox import OUTBOX_CHANNEL, flush_effects
from alerting.routing import Routing, load_routing
from alerting.settings import AlertingSettings
from minewatch.clock import Clock, SystemClock
from minewatch.db import create_pool
from minewatch.errors import MinewatchError

log = logging.getLogger(__name__)

FINDINGS_CHANNEL = "minewatch_findings"
CASE_ACTIONS_CHANNEL = "minewatch_case_actions"
LANGS = ("zh", "en")

# Errors a loop survives (the database restarting, a dropped connection): it logs, waits one
# poll interval and tries again; anything else is a bug and stops the worker.
_TRANSIENT = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


def load_all_templates() -> dict[str, Templates]:
    """The packaged templates of every language, checked once at start."""
    return {lang: load_templates(lang) for lang in LANGS}


class CaseWorker:
    """The case side of alerting; `step` runs each part once and returns how much it did."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock, routing: Routing, templates: Mapping[str, Templates],
                 settings: AlertingSettings, metrics: AlertingMetrics | None = None) -> None:
        self._pool = pool
        self._clock = clock
        self._routing = routing
        self._templates = templates
        self._settings = settings
        self._metrics = metrics

    async def step(self) -> int:
        """Findings → cases, orders, timers, effects → outbox; returns the units of work done
        (held notifications waiting for their group window are not work)."""
        s = self._settings
        async with self._pool.acquire() as conn:
            done = await sync_findings(conn, now=self._clock.now(), routing=self._routing,
                                       templates=self._templates["zh"], batch=s.findings_batch, metrics=self._metrics,
                                       late_after=s.escalation.late_report_after)
            done += await check_power_off(conn, now=self._clock.now())
            done += await settle_orders(conn, now=self._clock.now())
            done += await run_timers(conn, now=self._clock.now(), policy=s.escalation, metrics=self._metrics)
            flushed = await flush_effects(conn, now=self._clock.now(), routing=self._routing,
                                          templates=self._templates, backoff=s.backoff, group_window=s.group_window,
                                          batch=s.effects_batch, metrics=self._metrics)
        return done + flushed.effects_done

    async def run_burst(self) -> int:
        """Step until a step does nothing."""
        total = 0
        while (n := await self.step()) > 0:
            total += n
        return total


@dataclass(frozen=True, slots=True)
class _Loop:
    name: str
    step: Callable[[], Awaitable[int]]
    wake: asyncio.Event


class Runner:
    """Drives a case worker and/or delivery lanes until stopped (or, in burst mode, idle)."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Clock, settings: AlertingSettings,
                 cases: CaseWorker | None = None, delivery: DeliveryWorker | None = None,
                 metrics: AlertingMetrics | None = None) -> None:
        self._pool = pool
        self._clock = clock
        self._settings = settings
        self._cases = cases
        self._delivery = delivery
        self._metrics = metrics
        self._stopping = asyncio.Event()
        self._case_wake = asyncio.Event()
        self._outbox_wake = asyncio.Event()

    def stop(self) -> None:
        """Ask every loop to finish its current step and return."""
        self._stopping.set()
        self._case_wake.set()
        self._outbox_wake.set()

    async def run(self, *, burst: bool = False) -> int:
        """Run until `stop()` (or, with `burst`, until neither side has anything to do now);
        returns the units of work done in burst mode (0 otherwise)."""
        if burst:
            return await self._burst()
        loops: list[_Loop] = []
        if self._cases is not None:
            loops.append(_Loop("cases", self._cases.step, self._case_wake))
        if self._delivery is not None:
            loops += [_Loop(f"delivery-{i}", self._delivery.step, self._outbox_wake)
                      for i in range(self._settings.delivery_lanes)]
        async with self._pool.acquire() as listener:
            await self._listen(listener)
            try:
                async with asyncio.TaskGroup() as tg:
                    tasks = [tg.create_task(self._loop(loop)) for loop in loops]
                    tasks.append(tg.create_task(self._refresh_metrics()))
                    tg.create_task(self._drain_guard(tasks))
            finally:
                await self._unlisten(listener)
        return 0

    async def _burst(self) -> int:
        total = 0
        while True:
            done = await self._cases.run_burst() if self._cases is not None else 0
            done += await self._delivery.run_burst() if self._delivery is not None else 0
            total += done
            if done == 0:
                break
        await self._refresh_once()
        return total

    async def _loop(self, loop: _Loop) -> None:
        while not self._stopping.is_set():
            # Cleared before the step, not after: a NOTIFY that lands during the step (for
            # data it did not see) leaves the event set, and the wait below returns at once.
            loop.wake.clear()
            try:
                done = await loop.step()
            except _TRANSIENT as exc:
                log.warning("%s: %s: %s; retrying", loop.name, type(exc).__name__, exc)
                done = 0
            if self._metrics is not None:
                self._metrics.heartbeat.labels(worker=loop.name).set(self._clock.now().timestamp())
            if done:
                continue
            # Idle: sleep until woken by NOTIFY or the poll interval passes.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(loop.wake.wait(), self._settings.poll_interval_s)

    async def _drain_guard(self, tasks: list[asyncio.Task[None]]) -> None:
        await self._stopping.wait()
        _, pending = await asyncio.wait(tasks, timeout=self._settings.drain_timeout_s)
        for task in pending:
            log.warning("drain timed out; cancelling %s", task.get_name())
            task.cancel()

    async def _refresh_metrics(self) -> None:
        while not self._stopping.is_set():
            await self._refresh_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._settings.metrics_interval_s)

    async def _refresh_once(self) -> None:
        if self._metrics is None:
            return
        try:
            async with self._pool.acquire() as conn:
                await self._metrics.refresh(conn, now=self._clock.now())
        except _TRANSIENT as exc:
            log.warning("metrics refresh: %s", exc)

    def _on_notify(self, _conn: object, _pid: int, channel: str, _payload: object) -> None:
        (self._outbox_wake if channel == OUTBOX_CHANNEL else self._case_wake).set()

    async def _listen(self, conn: asyncpg.pool.PoolConnectionProxy) -> None:
        if self._cases is not None:
            await conn.add_listener(FINDINGS_CHANNEL, self._on_notify)
            await conn.add_listener(CASE_ACTIONS_CHANNEL, self._on_notify)
        if self._delivery is not None:
            await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)

    async def _unlisten(self, conn: asyncpg.pool.PoolConnectionProxy) -> None:
        for channel in (FINDINGS_CHANNEL, CASE_ACTIONS_CHANNEL, OUTBOX_CHANNEL):
            with contextlib.suppress(*_TRANSIENT):
                await conn.remove_listener(channel, self._on_notify)


def build_notifiers(client: httpx.AsyncClient | H1Client, settings: AlertingSettings,
                    environ: Mapping[str, str]) -> Notifiers:
    """The webhook notifier and the configured SMS adapter (the log adapter when none)."""
    timeout = httpx.Timeout(settings.http_timeout_s, connect=min(5.0, settings.http_timeout_s))
    sms: Notifier = LogSms()
    gateway = settings.sms_gateway
    if gateway is not None:
        auth = environ.get(gateway.auth_env) if gateway.auth_env else None
        if gateway.auth_env and not auth:
            raise MinewatchError(f"the SMS gateway's auth variable {gateway.auth_env} is not set")
        sms = HttpSmsGateway(client, gateway, auth_value=auth, timeout=timeout)
    return Notifiers(sms=sms, webhook=WebhookNotifier(client, timeout=timeout))


class AlertingWorker:
    """The alerting process in the one worker shape (minewatch/worker.py): the case side and/or
    the delivery lanes, built from settings passed in (`environ` holds the secrets the settings
    name: SMS gateway auth, webhook signing keys). `run(burst=True)` returns the units of work
    done once neither side has anything to do now; `stop()` drains each loop's current step."""

    def __init__(self, dsn: str, settings: AlertingSettings, *, registry: CollectorRegistry,
                 environ: Mapping[str, str], cases: bool = True, delivery: bool = True,
                 clock: Clock | None = None) -> None:
        self.dsn = dsn
        self.settings = settings
        self.registry = registry
        self.environ = environ
        self.cases = cases
        self.delivery = delivery
        self.clock = clock or SystemClock()
        self._runner: Runner | None = None
        self._stopped = False

    def stop(self) -> None:
        """Ask every loop to finish its current step and return (before start: return at once)."""
        self._stopped = True
        if self._runner is not None:
            self._runner.stop()

    async def run(self, *, burst: bool = False) -> int:
        settings, env, clock = self.settings, self.environ, self.clock
        routing = load_routing(settings.routing_path)
        templates = load_all_templates()
        metrics = AlertingMetrics(self.registry)
        pool = await create_pool(self.dsn, min_size=1, max_size=settings.delivery_lanes + 3,
                                 application_name="minewatch-alerting")
        try:
            # The lean HTTP/1.1 client (alerting/notifiers/h1.py): httpx's per-request CPU cost,
            # not the database, bounded the delivery rate.
            async with H1Client(max_connections=settings.delivery_concurrency) as client:
                self._runner = Runner(
                    pool, clock=clock, settings=settings, metrics=metrics,
                    cases=CaseWorker(pool, clock=clock, routing=routing, templates=templates, settings=settings,
                                     metrics=metrics) if self.cases else None,
                    delivery=DeliveryWorker(pool, clock=clock, notifiers=build_notifiers(client, settings, env),
                                            secrets=env, backoff=settings.backoff, lease=settings.lease,
                                            batch=settings.delivery_batch,
                                            concurrency=-(-settings.delivery_concurrency // settings.delivery_lanes),
                                            metrics=metrics,
                                            rng=random.Random()) if self.delivery else None,
                )
                if self._stopped:
                    self._runner.stop()
                return await self._runner.run(burst=burst)
        finally:
            await pool.close()
