"""Alerting benchmark: outbox delivery throughput (the end-to-end latency is bench/alerting/latency.py).

Run: ``python -m bench.alerting.run [throughput] [--rows 20000] [--lanes 4]
[--batch 200] [--concurrency 8]`` (``--dsn postgresql://...`` for an existing server, else a
private embedded PostgreSQL; a database ``minewatch_bench_alerting`` is recreated on it).

throughput: ROWS webhook rows due now in the outbox, delivered by `DeliveryWorker` lanes to
  a local asyncio receiver in its own process (bench/alerting/receiver.py) that checks every
  signature and counts idempotency keys. Printed next to it, measured in the same run, the
  machine's ceilings: the receiver's rate with a plain httpx loop at the same concurrency
  (no database), and the outbox's claim-and-record rate with a notifier that does nothing
  (no HTTP).
latency: see ``python -m bench.alerting.latency`` (reading commit -> rules -> case -> outbox ->
  webhook, under 20 000 readings/s of background ingest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from alerting.delivery import DeliveryWorker, Notifiers
from alerting.notifiers.base import DeliveryResult, OutboundMessage
from alerting.notifiers.h1 import H1Client
from alerting.notifiers.signing import HEADER, sign
from alerting.notifiers.sms_log import LogSms
from alerting.notifiers.webhook import WebhookNotifier, encode_body
from alerting.settings import AlertingSettings
from launcher.embedded import EmbeddedPostgres
from minewatch.clock import SystemClock
from minewatch.db import create_pool

DB = "minewatch_bench_alerting"
SECRET = "bench-secret"
SECRET_ENV = "BENCH_HOOK_SECRET"
MINE = "140100000001"


class NullNotifier:
    """Delivers instantly without any IO: the outbox's own ceiling."""

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult(message.id, 200)


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.alerting.receiver", "--secret", SECRET],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "READY", line
    return proc, f"http://127.0.0.1:{line[1]}"


async def stats(client: httpx.AsyncClient, url: str, *, reset: bool = False) -> dict[str, Any]:
    r = await client.get(f"{url}/{'reset' if reset else 'stats'}")
    data: dict[str, Any] = r.json()
    return data


async def prepare(server_dsn: str) -> str:
    from minewatch.db.migrate import migrate
    from minewatch.db.registry_store import sync_registry
    from minewatch.registry import load_registry
    from minewatch.settings import packaged

    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await admin.close()
    dsn = server_dsn.rsplit("/", 1)[0] + "/" + DB
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, backend="plain")
        reg, checksum = load_registry(packaged("sample_registry.yaml"))
        await sync_registry(conn, reg, checksum=checksum, source="bench", now=datetime.now(UTC))
    finally:
        await conn.close()
    return dsn


async def fill_outbox(pool: asyncpg.Pool, url: str, rows: int) -> None:
    """ROWS webhook rows due now, each with its own payload."""
    await pool.execute("TRUNCATE notification_attempts, notification_members, notifications")
    body = {"case_ids": ["0"], "lang": "zh", "text": "bench", "secret_env": SECRET_ENV,
            "payload": {"id": "ID", "reason": "raised", "case": {"id": "0"}, "text": "【矿安督办0】bench"}}
    await pool.execute(
        "INSERT INTO notifications (id, reason, level, receiver, channel, target, dedup_key, body, state, "
        "next_attempt_at, expires_at, created_at) "
        "SELECT u, 'raised', 'county', 'bench', 'webhook', $1, 'bench:' || u::text, "
        "jsonb_set($2::jsonb, '{payload,id}', to_jsonb(u::text)), 'pending', now(), now() + interval '1 day', now() "
        "FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, $3)) g",
        f"{url}/hook", json.dumps(body), rows)


async def deliver_all(pool: asyncpg.Pool, notifiers: Notifiers, *, lanes: int, batch: int, concurrency: int) -> float:
    settings = AlertingSettings()
    worker = DeliveryWorker(pool, clock=SystemClock(), notifiers=notifiers, secrets={SECRET_ENV: SECRET},
                            backoff=settings.backoff, lease=settings.lease, batch=batch,
                            concurrency=-(-concurrency // lanes),
                            rng=random.Random(1))
    started = time.perf_counter()
    await asyncio.gather(*(worker.run_burst() for _ in range(lanes)))
    return time.perf_counter() - started


async def raw_rate(client: httpx.AsyncClient, url: str, n: int, concurrency: int) -> float:
    """Plain signed POSTs at the deliverer's concurrency, no database: the receiver's ceiling."""
    body = encode_body({"id": "x", "reason": "raised", "case": {"id": "0"}})
    headers = {"Content-Type": "application/json", "Idempotency-Key": "x", HEADER: sign(SECRET.encode(), body)}
    left = [n]

    async def loop() -> None:
        while left[0] > 0:
            left[0] -= 1
            await client.post(f"{url}/hook", content=body, headers=headers)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def throughput(dsn: str, url: str, *, rows: int, lanes: int, batch: int, concurrency: int) -> None:
    pool = await create_pool(dsn, min_size=lanes + 1, max_size=lanes + 2)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    try:
        async with httpx.AsyncClient(trust_env=False, limits=limits) as client:
            await raw_rate(client, url, min(rows, 2000), concurrency)  # warm the connection pool
            ceiling = await raw_rate(client, url, rows, concurrency)
            await fill_outbox(pool, url, rows)
            null = await deliver_all(pool, Notifiers(LogSms(), NullNotifier()), lanes=lanes, batch=batch, concurrency=concurrency)
            await fill_outbox(pool, url, rows)
            await stats(client, url, reset=True)
            async with H1Client(max_connections=concurrency) as h1:  # what `alerting.worker.serve` uses
                took = await deliver_all(pool, Notifiers(LogSms(), WebhookNotifier(h1)), lanes=lanes, batch=batch,
                                         concurrency=concurrency)
            seen = await stats(client, url)
            await fill_outbox(pool, url, rows)
            took_httpx = await deliver_all(pool, Notifiers(LogSms(), WebhookNotifier(client)), lanes=lanes,
                                           batch=batch, concurrency=concurrency)
        delivered = await pool.fetchval("SELECT count(*) FROM notifications WHERE state = 'delivered'")
    finally:
        await pool.close()
    print(f"outbox delivery, {rows} webhooks, {lanes} lanes x batch {batch}, {concurrency} sends in flight:")
    print(f"  delivered           {rows / took:8.0f} webhooks/s  ({delivered} delivered, receiver saw "
          f"{seen['requests']} requests, {seen['unique']} unique keys, {seen['bad']} bad signatures)")
    print(f"  ceiling, httpx      {ceiling:8.0f} requests/s (plain httpx loop, same concurrency, no database)")
    print(f"  delivered via httpx {rows / took_httpx:8.0f} webhooks/s  (the same deliverer with an httpx.AsyncClient)")
    print(f"  ceiling, outbox     {rows / null:8.0f} rows/s     (claim + record, notifier does nothing)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", choices=("throughput",), default="throughput")
    p.add_argument("--dsn", help="an existing PostgreSQL server (default: a private embedded one)")
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--lanes", type=int, default=4)
    p.add_argument("--batch", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8, help="sends in flight (httpx connections)")
    p.add_argument("--no-sniffio-probe", action="store_true",
                   help="make httpcore's per-lock `import sniffio` fail fast, as installing sniffio would "
                        "(without it every request pays a failed import search; see docs/alerting.md)")
    args = p.parse_args(argv)
    if args.no_sniffio_probe and "sniffio" not in sys.modules:
        try:
            import sniffio  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
        except ImportError:
            sys.modules["sniffio"] = None  # type: ignore[assignment]
    pg: EmbeddedPostgres | None = None
    receiver, url = start_receiver()
    try:
        server = args.dsn
        if server is None:
            home = Path(tempfile.mkdtemp(prefix="mw-bench-alerting-"))
            home.chmod(0o711)  # the server may run as an unprivileged user that must traverse it
            pg = EmbeddedPostgres(home / "pg", fsync=False)
            server = pg.start()
        dsn = asyncio.run(prepare(server))
        asyncio.run(throughput(dsn, url, rows=args.rows, lanes=args.lanes, batch=args.batch,
                               concurrency=args.concurrency))
    finally:
        receiver.terminate()
        receiver.wait()
        if pg is not None:
            pg.stop("immediate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
