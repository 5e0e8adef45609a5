"""`minewatch api` as a real process on a free port, for tests that need real sockets, its RSS or its log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from launcher.embedded import free_port
from tests.api.scenario import PEPPER

ROOT = Path(__file__).resolve().parents[2]


class ApiProcess:
    """`python -m launcher api` with DATABASE_URL `dsn`, the suite's pepper and `env` on top;
    started on enter (once /healthz answers), SIGTERM'd on exit. Its output goes to `log`."""

    def __init__(self, dsn: str, log: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log = log
        self.env = {**os.environ, "DATABASE_URL": dsn, "MINEWATCH_TOKEN_PEPPER": PEPPER, "PYTHONUNBUFFERED": "1",
                    **(env or {})}
        self.env.pop("MQTT_URL", None)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self, field: str = "VmRSS") -> int:
        """The process's resident set (VmRSS) or its peak (VmHWM), in KiB, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} for {self.pid}")

    def __enter__(self) -> ApiProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "launcher", "api", "--port", str(self.port), *self.args],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the API did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
