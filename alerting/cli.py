"""`minewatch alerting worker|deliver`: the alerting workers as commands (also `python -m alerting.cli`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from minewatch.commands import dispatch
from minewatch.errors import MinewatchError
from minewatch.settings import Settings


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `alerting worker` and `alerting deliver` to a `minewatch` subparsers object; each
    command's `func` takes `(args, settings)` like the other `minewatch` commands."""
    a = sub.add_parser("alerting", help="alerting workers: cases from findings, escalation, notification delivery")
    asub = a.add_subparsers(dest="alerting_cmd", required=True, metavar="COMMAND")
    for name, func, text in (
        ("worker", cmd_worker, "open and escalate cases from findings and enqueue notifications"),
        ("deliver", cmd_deliver, "deliver the notification outbox (SMS, webhooks) with retries"),
    ):
        p = asub.add_parser(name, help=text)
        p.add_argument("--burst", action="store_true", help="exit once nothing is left to do now (tests, cron)")
        p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
        p.set_defaults(func=func)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """The case side: findings → cases, orders, escalation, effects → outbox."""
    return _serve(args, settings, cases=True, delivery=False)


def cmd_deliver(args: argparse.Namespace, settings: Settings) -> int:
    """The delivery side: outbox → SMS / webhook."""
    return _serve(args, settings, cases=False, delivery=True)


def _serve(args: argparse.Namespace, settings: Settings, *, cases: bool, delivery: bool) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from alerting.settings import load_alerting_settings
    from alerting.worker import AlertingWorker
    from minewatch.worker import serve

    if not settings.database_url:
        raise MinewatchError("DATABASE_URL is not set")
    registry = CollectorRegistry()
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    # This is the process's main(): the environment is read here, once, and passed down.
    worker = AlertingWorker(settings.database_url, load_alerting_settings(os.environ), registry=registry,
                            environ=dict(os.environ), cases=cases, delivery=delivery)
    try:
        done = asyncio.run(serve(worker, burst=args.burst))
    except asyncio.CancelledError:  # a second signal: stopped without finishing the drain
        return 0
    if args.burst:
        print(f"alerting {args.alerting_cmd}: {done} unit(s) of work", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m alerting.cli worker|deliver [--burst]`, the same as `minewatch alerting ...`."""
    parser = argparse.ArgumentParser(prog="python -m alerting.cli", description="Minewatch alerting workers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_commands(sub)
    # Accept both `alerting worker` and the shorter `worker`.
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = [i for i, a in enumerate(argv) if a in ("worker", "deliver")]
    if commands and "alerting" not in argv:
        argv.insert(commands[0], "alerting")
    return dispatch(parser.parse_args(argv), prog="alerting")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
