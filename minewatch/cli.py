"""`minewatch` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from minewatch.errors import MinewatchError
from minewatch.settings import Settings

log = logging.getLogger("minewatch")

# Packages that add subcommands through `add_commands(subparsers)`.
PLUGIN_MODULES = ("rules.cli", "alerting.cli", "api.cli", "ingest.files.cli")

# `minewatch simulate` parses no option of its own (see `build_parser`).
SIMULATE_PREFIX_CHARS = "\x00"

EPILOG = """\
Quick start:
  minewatch run                 the whole system with simulators (embedded servers
                                when DATABASE_URL / MQTT_URL are not set)
  minewatch migrate             apply database migrations
  minewatch registry load FILE  load or update the registry (mines, points, cards)
  minewatch ingest              run the MQTT ingest worker
  minewatch ingest-files --watch DIR
                                ingest the national upload files dropped in DIR
  minewatch simulate history --days 1 --mqtt-url mqtt://127.0.0.1:1883

Environment: DATABASE_URL (postgresql://...), MQTT_URL (mqtt://host:port),
MINEWATCH_* for everything else (see docs/operations.md).
"""


def _run_async(coro_fn: Callable[[], Coroutine[Any, Any, int]]) -> int:
    async def main() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: task.cancel() if task else None)
        try:
            return await coro_fn()
        except asyncio.CancelledError:
            log.info("stopped by signal")
            return 0
    return asyncio.run(main())


async def _prepare_db(dsn: str, settings: Settings, *, load_registry: bool = True) -> None:
    """Migrate, keep partitions, and load the registry file."""
    from datetime import UTC, datetime

    import asyncpg

    from minewatch.db import timeseries
    from minewatch.db.migrate import migrate
    from minewatch.db.registry_store import sync_registry
    from minewatch.registry import load_registry as load

    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn, backend=settings.timeseries_backend)
        for name in applied:
            print(f"  applied migration {name}")
        now = datetime.now(UTC)
        await timeseries.maintain(conn, now=now, ahead_days=settings.partitions_ahead_days,
                                  retention_days=settings.retention_days)
        if load_registry:
            reg, checksum = load(settings.registry_path)
            s = await sync_registry(conn, reg, checksum=checksum, source=str(settings.registry_path), now=now)
            print(f"  registry {settings.registry_path.name}: {s.mines} mines, {s.points} points, "
                  f"{s.cards} cards, {s.threshold_versions_added} threshold versions added")
    finally:
        await conn.close()


def _need(value: str | None, name: str) -> str:
    if not value:
        raise MinewatchError(f"{name} is not set (or use `minewatch run`, which starts embedded servers)")
    return value


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    dsn = _need(settings.database_url, "DATABASE_URL")

    async def go() -> int:
        await _prepare_db(dsn, settings, load_registry=False)
        return 0
    return _run_async(go)


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    dsn = _need(settings.database_url, "DATABASE_URL")
    if args.file:
        settings = settings.model_copy(update={"registry_path": Path(args.file)})

    async def go() -> int:
        await _prepare_db(dsn, settings)
        return 0
    return _run_async(go)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from ingest.consumer import MqttSource
    from ingest.metrics import IngestMetrics
    from ingest.service import IngestService
    from minewatch.clock import SystemClock

    dsn = _need(settings.database_url, "DATABASE_URL")
    url = _need(settings.mqtt_url, "MQTT_URL")
    ing = settings.ingest
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    source = MqttSource(url, client_id=args.client_id or ing.client_id, topic_prefix=args.topic_prefix or ing.topic_prefix,
                        share_group=None if args.no_share else (args.share_group or ing.share_group),
                        queue_max=ing.queue_max_messages, queue_max_bytes=ing.queue_max_bytes,
                        reconnect_min_s=ing.reconnect_min_s,
                        reconnect_max_s=ing.reconnect_max_s, field_variant=args.field_variant or ing.field_variant)
    service = IngestService(source, dsn, clock=SystemClock(), metrics=metrics,
                            batch_max_items=ing.batch_max_items, batch_max_age_s=ing.batch_max_age_ms / 1000,
                            max_message_bytes=ing.max_message_bytes,
                            future_tolerance=timedelta(seconds=ing.future_tolerance_s),
                            max_age=timedelta(days=ing.max_age_days or settings.retention_days))

    async def go() -> int:
        try:
            await service.run(burst_idle_s=args.burst)
        finally:  # also when stopped by a signal: the operator (and tests) read this line
            t = service.totals
            print(f"ingest: {t.messages} messages, {t.items} items, stored {dict(t.stored)}, "
                  f"rejected {dict(t.rejected)}, duplicates {t.duplicates}, conflicts {t.conflicts}", flush=True)
        return 0
    return _run_async(go)


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli import main as sim_main

    argv: list[str] = list(args.rest)
    if not argv or argv[0].startswith("-"):
        # No mode (`--help`, or nothing): the options below belong to a mode, so adding them
        # would only turn "mode required" into a puzzling "invalid choice: '--mqtt-url'".
        return sim_main(argv)
    if settings.mqtt_url and "--mqtt-url" not in argv:
        argv += ["--mqtt-url", settings.mqtt_url]
    if "--registry" not in argv:
        argv += ["--registry", str(settings.registry_path)]
    return sim_main(argv)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from minewatch.runall import demo_scenario, run_all

    scenario = demo_scenario(settings, args.scenario)
    return _run_async(lambda: run_all(settings, speed=args.speed, with_simulators=not args.no_simulators,
                                      seconds=args.seconds, scenario=scenario))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minewatch", description="Mine sensor monitoring and early warning.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run the whole system (and simulators); embedded servers if none configured")
    r.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    r.add_argument("--no-simulators", action="store_true", help="do not start the fake mines")
    r.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (demo / CI)")
    r.add_argument("--scenario", default=None, metavar="FILE|none",
                   help="scripted events for the simulators (default with the sample registry: "
                        "simulators/demo_scenario.yaml, two methane exceedances and a shutdown order)")
    r.set_defaults(func=cmd_run)

    m = sub.add_parser("migrate", help="apply database migrations (idempotent)")
    m.set_defaults(func=cmd_migrate)

    g = sub.add_parser("registry", help="registry management")
    gs = g.add_subparsers(dest="registry_cmd", required=True)
    gl = gs.add_parser("load", help="validate and load a registry YAML file (idempotent, versioned)")
    gl.add_argument("file", nargs="?", help="registry file (default: MINEWATCH_REGISTRY_PATH or the sample)")
    gl.set_defaults(func=cmd_registry)

    i = sub.add_parser("ingest", help="run the MQTT ingest worker",
                       epilog="upload files dropped in a directory: minewatch ingest-files --watch DIR",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("--client-id", help="MQTT client id (fixed: it names the persistent session)")
    i.add_argument("--topic-prefix", help="prefix before mines/{mine}/... (tests, multi-tenant brokers)")
    i.add_argument("--share-group", help="shared-subscription group ($share/<group>/...)")
    i.add_argument("--no-share", action="store_true", help="plain subscription (brokers without $share)")
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
    from ingest.files.cli import add_ingest_source

    add_ingest_source(sources)

    # Everything after `simulate` goes to the simulators' own parser, `--help` included. With
    # the usual prefix "-", argparse would take a leading `--help` for an (unknown) option of
    # this parser instead of handing it on; a prefix nobody types makes every word a word.
    s = sub.add_parser("simulate", help="fake mines: `minewatch simulate live|history --help`",
                       add_help=False, prefix_chars=SIMULATE_PREFIX_CHARS)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_simulate)

    # Each package adds its own commands (rules, alerting, api, tokens, files).
    for module in PLUGIN_MODULES:
        importlib.import_module(module).add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


def dispatch(args: argparse.Namespace, *, prog: str = "minewatch",
             describe: Callable[[MinewatchError], str] | None = None) -> int:
    """Run a parsed command (`args.func(args, settings)`) as every Minewatch entry point does:
    logging per `-v`, settings from the environment, a configuration or runtime error as one
    line on stderr and exit status 2, Ctrl-C as 130."""
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        rc: int = args.func(args, Settings())
        return rc
    except MinewatchError as exc:
        print(describe(exc) if describe else f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
