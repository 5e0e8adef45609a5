"""`minewatch` command line: one entry point, one subcommand per job.

The launcher sits above every other package: it gathers each package's commands
(`add_commands(subparsers)`), runs everything at once (`minewatch run`, launcher/runall.py) and
starts the embedded servers (launcher/embedded.py). Nothing imports it but its own entry points."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import alerting.cli
import api.cli
import ingest.cli
import ingest.files.cli
import rules.cli
from minewatch.commands import dispatch, need
from minewatch.settings import Settings
from minewatch.worker import run_main

# Packages that add subcommands through `add_commands(subparsers)`, in the order of the help.
COMMAND_MODULES = (ingest.cli, rules.cli, alerting.cli, api.cli, ingest.files.cli)

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


async def _prepare(dsn: str, settings: Settings, *, load_registry: bool) -> int:
    from minewatch.db.prepare import prepare_db

    await prepare_db(dsn, settings, now=datetime.now(UTC), load_registry_file=load_registry)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    dsn = need(settings.database_url, "DATABASE_URL")
    return run_main(lambda: _prepare(dsn, settings, load_registry=False))


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    dsn = need(settings.database_url, "DATABASE_URL")
    if args.file:
        settings = settings.model_copy(update={"registry_path": Path(args.file)})
    return run_main(lambda: _prepare(dsn, settings, load_registry=True))


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
    from launcher.runall import demo_scenario, run_all

    scenario = demo_scenario(settings, args.scenario)
    try:
        return asyncio.run(run_all(settings, speed=args.speed, with_simulators=not args.no_simulators,
                                   seconds=args.seconds, scenario=scenario))
    except asyncio.CancelledError:  # a second signal: stopped without waiting for the drain
        return 0


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

    # Everything after `simulate` goes to the simulators' own parser, `--help` included. With
    # the usual prefix "-", argparse would take a leading `--help` for an (unknown) option of
    # this parser instead of handing it on; a prefix nobody types makes every word a word.
    s = sub.add_parser("simulate", help="fake mines: `minewatch simulate live|history --help`",
                       add_help=False, prefix_chars=SIMULATE_PREFIX_CHARS)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_simulate)

    # Each package adds its own commands (ingest, rules, alerting, api, tokens, users, files).
    # `simulate` is the launcher's own: it hands everything to the simulators' parser.
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    return dispatch(build_parser().parse_args(argv))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
