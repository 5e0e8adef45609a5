"""The first five minutes: `minewatch run` on embedded servers prints the console's address and a
ready demo sign-in, every command it prints runs as printed, and a restart keeps the ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from launcher.embedded import free_port, stable_port
from tests.conftest import ROOT, spawn_minewatch

pytestmark = pytest.mark.integration


def test_stable_port_is_kept_while_free(tmp_path: Path) -> None:
    path = tmp_path / "pg.port"
    first = stable_port(path)
    assert stable_port(path) == first and path.read_text().strip() == str(first)
    with socket.socket() as s:  # someone else took it meanwhile: a new one, recorded
        s.bind(("127.0.0.1", first))
        s.listen()
        other = stable_port(path)
    assert other != first and path.read_text().strip() == str(other)


def _run(data: Path, log: Path, api_port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {"MINEWATCH_DATA_DIR": str(data), "MINEWATCH_API_PORT": str(api_port), "DATABASE_URL": "", "MQTT_URL": ""}
    proc = spawn_minewatch(["run", "--no-simulators", "--seconds", "120"], env, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "A status line follows" in text:
            return proc, text
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"minewatch run did not come up: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()[-3000:]


def _sign_in(base: str, user: str, password: str) -> int:
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        page = c.get("/console/login")
        pre = re.search(r'name="pre" value="([^"]+)"', page.text)
        assert pre
        r = c.post("/console/login", data={"username": user, "password": password, "pre": pre.group(1)})
        return r.status_code


def test_embedded_run_prints_a_ready_console(tmp_path: Path) -> None:
    data = tmp_path / "data"
    api_port = free_port()
    proc, text = _run(data, tmp_path / "run1.log", api_port)
    try:
        base = f"http://127.0.0.1:{api_port}"
        assert f"console  : {base}/console/" in text
        m = re.search(r"sign in as (\S+) / (\S+)", text)
        assert m and "demo credential" in text, text
        assert _sign_in(base, m.group(1), m.group(2)) == 303
        # every command printed runs as printed, from the directory `scripts/run` uses
        token_cmd = re.search(r"a token  : (.+)", text)
        user_cmd = re.search(r"a person : (.+)", text)
        psql_cmd = re.search(r"Watch readings arrive:\n\s+(.+)", text)
        assert token_cmd and user_cmd and psql_cmd, text
        out = subprocess.run(token_cmd.group(1), shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "mwt_" in out.stdout, out.stderr
        token = next(line for line in out.stdout.splitlines() if line.startswith("mwt_"))
        assert httpx.get(f"{base}/v1/mines", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        # the user command asks for the password on a terminal; a script pipes it instead
        out = subprocess.run(user_cmd.group(1) + " --password-stdin", shell=True, cwd=ROOT, capture_output=True,
                             text=True, timeout=60, input="alice's long passphrase\n")
        assert out.returncode == 0, out.stderr
        assert _sign_in(base, "alice", "alice's long passphrase") == 303
        out = subprocess.run(psql_cmd.group(1), shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        first_db = re.search(r"database : (\S+)", text)
        first_broker = re.search(r"broker   : (\S+)", text)
    finally:
        _stop(proc, tmp_path / "run1.log")
    # a restart: the same ports, the same demo sign-in
    proc, text = _run(data, tmp_path / "run2.log", api_port)
    try:
        assert first_db and first_db.group(1) in text and first_broker and first_broker.group(1) in text
        m2 = re.search(r"sign in as (\S+) / (\S+)", text)
        assert m2 and m2.groups() == m.groups()
        assert _sign_in(f"http://127.0.0.1:{api_port}", m2.group(1), m2.group(2)) == 303
    finally:
        _stop(proc, tmp_path / "run2.log")
