"""`minewatch tokens create | list | revoke` through the parser `api.cli.add_commands` builds."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.auth.tokens import create_token, list_tokens
from api.cli import add_commands
from tests.api.conftest import settings_for

pytestmark = pytest.mark.integration


def test_cli_create_list_revoke(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    settings = settings_for(db)

    def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        assert args.func(args, settings) == 0
        return capsys.readouterr().out

    out = run("tokens", "create", "--role", "county", "--scope", "140121", "--name", "qingxu duty desk")
    token = out.splitlines()[1]
    assert token.startswith("mwt_")
    listing = run("tokens", "list")
    assert "qingxu duty desk" in listing and token not in listing

    async def token_id() -> int:
        conn = await asyncpg.connect(db)
        try:
            tokens = [t for t in await list_tokens(conn) if t.name == "qingxu duty desk"]
            assert tokens[0].scope == ("140121",) and tokens[0].revoked_at is None
            return tokens[0].id
        finally:
            await conn.close()

    tid = asyncio.run(token_id())
    assert f"token {tid} revoked" in run("tokens", "revoke", str(tid))
    (line,) = [x for x in run("tokens", "list").splitlines() if "qingxu duty desk" in x]
    assert "revoked" in line


def test_api_serves_with_several_workers(db: str, tmp_path: Path) -> None:
    """`minewatch api --workers 2`: uvicorn's worker processes each build the app from the environment."""
    from launcher.embedded import free_port
    from tests.api.scenario import PEPPER

    async def make_token() -> str:
        conn = await asyncpg.connect(db)
        try:
            _, token = await create_token(conn, name="workers", role="admin", scope=[], pepper=PEPPER,
                                          now=datetime.now(UTC))
            return token
        finally:
            await conn.close()

    token = asyncio.run(make_token())
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db, "MINEWATCH_TOKEN_PEPPER": PEPPER}
    env.pop("MQTT_URL", None)
    with (tmp_path / "api.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "launcher", "api", "--workers", "2", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/mines", headers={"Authorization": f"Bearer {token}"},
                              timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "api.log").read_text()
                time.sleep(0.2)
        assert r.status_code == 200, r.text
        assert r.json()["items"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
