"""`minewatch user add|passwd|disable|list` as real processes against a real database."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from tests.api.scenario import M1
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _mw(db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db}
    return subprocess.run([sys.executable, "-m", "launcher", "user", *args], env=env, cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_user_commands(db: str) -> None:
    secret = "bob's own long passphrase"
    r = _mw(db, "add", "bob", "--role", "mine", "--scope", M1, "--name", "Bob Li", "--password-stdin", stdin=secret + "\n")
    assert r.returncode == 0, r.stderr
    assert "bob" in r.stdout and secret not in r.stdout + r.stderr
    stored = _fetch(db, "SELECT password_hash FROM console_users WHERE username = 'bob'")
    assert stored.startswith("$argon2id$") and secret not in stored
    listed = _mw(db, "list")
    assert listed.returncode == 0 and "bob" in listed.stdout and M1 in listed.stdout and "$argon2" not in listed.stdout
    # refusals name what is wrong
    assert "exists already" in _mw(db, "add", "bob", "--role", "admin", "--password-stdin", stdin="x" * 12 + "\n").stderr
    assert "at least 10" in _mw(db, "add", "carol", "--role", "admin", "--password-stdin", stdin="short\n").stderr
    assert "unknown mine" in _mw(db, "add", "dan", "--role", "mine", "--scope", "149999999999",
                                 "--password-stdin", stdin="y" * 12 + "\n").stderr
    assert "region code" in _mw(db, "add", "eve", "--role", "county", "--password-stdin", stdin="z" * 12 + "\n").stderr
    no_tty = _mw(db, "add", "fay", "--role", "admin", stdin="")
    assert no_tty.returncode != 0 and "--password-stdin" in no_tty.stderr
    # a new password, then disabled
    assert _mw(db, "passwd", "bob", "--password-stdin", stdin="another long passphrase\n").returncode == 0
    assert _fetch(db, "SELECT password_hash FROM console_users WHERE username = 'bob'") != stored
    assert _mw(db, "disable", "bob").returncode == 0
    assert "disabled" in _mw(db, "list").stdout


def _fetch(db: str, sql: str) -> str:
    import asyncio

    async def go() -> str:
        conn = await asyncpg.connect(db)
        try:
            return str(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(go())
