"""`minewatch ingest`: the MQTT ingest worker as a command (the upload files are `ingest-files`)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from minewatch.commands import need
from minewatch.settings import Settings

if TYPE_CHECKING:
    from ingest.metrics import IngestMetrics
    from ingest.service import IngestService


def add_commands(sub: Any) -> None:
    """Add `ingest` (and its hidden `ingest files` spelling) to a `minewatch` subparsers object."""
    from ingest.files.cli import add_ingest_source

    i = sub.add_parser("ingest", help="run the MQTT ingest worker",
                       epilog="upload files dropped in a directory: minewatch ingest-files --watch DIR",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("--client-id", help="MQTT client id (fixed: it names the persistent session)")
    i.add_argument("--topic-prefix", help="prefix before mines/{mine}/... (tests, multi-tenant brokers)")
    i.add_argument("--share-group", help="shared-subscription group ($share/<group>/...)")
    i.add_argument("--no-share", action="store_true", help="plain subscription (brokers without $share)")
    i.add_argument("--partition", metavar="K/N",
                   help="take the registry's mines of partition K of N (or MINEWATCH_INGEST_PARTITION; "
                        "one process per K, each on its own persistent session)")
    i.add_argument("--field-variant", action="store_true",
                   help="also accept the provincial field variant: topic /{mine}/{system}, payload "
                        "{timestamp, systemcode, values} (or MINEWATCH_INGEST_FIELD_VARIANT=true)")
    i.add_argument("--burst", type=float, default=None, metavar="IDLE_S",
                   help="exit after no message arrived for IDLE_S seconds (tests, back-fill)")
    i.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    i.set_defaults(func=cmd_ingest)
    # The national upload files are `minewatch ingest-files --watch DIR` (ingest/files/cli.py),
    # the one spelling the help and the docs use. `minewatch ingest files --watch DIR`, the
    # spelling of the issue that asked for it, still works but is not shown.
    sources = i.add_subparsers(dest="ingest_source", required=False, help=argparse.SUPPRESS)
    add_ingest_source(sources)


def build_service(settings: Settings, *, metrics: IngestMetrics, client_id: str | None = None, topic_prefix: str | None = None,
                  share_group: str | None = None, field_variant: bool | None = None,
                  burst_idle_s: float | None = None, partition: str | None = None) -> IngestService:
    """The MQTT ingest worker from settings (built once by the caller's main()), options on top."""
    from ingest.consumer import MqttSource, parse_partition
    from ingest.service import IngestService
    from minewatch.clock import SystemClock

    dsn = need(settings.database_url, "DATABASE_URL")
    url = need(settings.mqtt_url, "MQTT_URL")
    ing = settings.ingest
    part_text = partition or ing.partition
    part = parse_partition(part_text) if part_text else None
    # Each partition its own persistent session: the client id names it.
    cid = (client_id or ing.client_id) + (f"-p{part[0]}of{part[1]}" if part else "")
    source = MqttSource(url, client_id=cid, topic_prefix=topic_prefix or ing.topic_prefix, partition=part,
                        share_group=share_group, queue_max=ing.queue_max_messages, queue_max_bytes=ing.queue_max_bytes,
                        reconnect_min_s=ing.reconnect_min_s, reconnect_max_s=ing.reconnect_max_s,
                        field_variant=ing.field_variant if field_variant is None else field_variant,
                        sparkplug=ing.sparkplug)
    return IngestService(source, dsn, clock=SystemClock(), metrics=metrics,
                         batch_max_items=ing.batch_max_items, batch_max_age_s=ing.batch_max_age_ms / 1000,
                         max_message_bytes=ing.max_message_bytes,
                         future_tolerance=timedelta(seconds=ing.future_tolerance_s),
                         max_age=timedelta(days=ing.max_age_days or settings.retention_days),
                         burst_idle_s=2.0 if burst_idle_s is None else burst_idle_s)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Run the MQTT ingest until SIGTERM / SIGINT (batches in flight commit and are acked), or
    with --burst until no message arrived for IDLE_S seconds."""
    from prometheus_client import CollectorRegistry, start_http_server

    from ingest.metrics import IngestMetrics
    from minewatch.worker import serve

    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    ing = settings.ingest
    service = build_service(settings, metrics=metrics, client_id=args.client_id, topic_prefix=args.topic_prefix,
                            share_group=None if args.no_share else (args.share_group or ing.share_group),
                            field_variant=args.field_variant or None, burst_idle_s=args.burst,
                            partition=args.partition)

    async def go() -> int:
        try:
            await serve(service, burst=args.burst is not None)
        finally:  # also when stopped by a signal: the operator (and tests) read this line
            t = service.totals
            print(f"ingest: {t.messages} messages, {t.items} items, stored {dict(t.stored)}, "
                  f"rejected {dict(t.rejected)}, duplicates {t.duplicates}, conflicts {t.conflicts}", flush=True)
        return 0

    try:
        return asyncio.run(go())
    except asyncio.CancelledError:  # a second signal: stopped without waiting for the drain
        return 0
