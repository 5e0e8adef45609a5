"""The token pepper: the API and token creation refuse to start on an empty, short or public one;
the embedded demo makes its own per installation."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from launcher.runall import installation_pepper
from minewatch.errors import ConfigError
from minewatch.settings import Settings, pepper_problem, require_strong_pepper
from tests.api.scenario import PEPPER

ROOT = Path(__file__).resolve().parents[2]
WEAK = ["", "   ", "minewatch-dev-pepper", "MINEWATCH-DEV-PEPPER", "test-pepper", "short-but-random-9f2",
        "a" * 64, "abababababababababababababababab"]


@pytest.mark.parametrize("pepper", WEAK)
def test_weak_peppers_are_named_and_refused(pepper: str) -> None:
    assert pepper_problem(pepper) is not None
    with pytest.raises(ConfigError, match="MINEWATCH_TOKEN_PEPPER"):
        require_strong_pepper(Settings(token_pepper=SecretStr(pepper)))


@pytest.mark.parametrize("kind", ["hex", "urlsafe", "suite"])
def test_strong_peppers_pass(kind: str) -> None:
    pepper = {"hex": secrets.token_hex(32), "urlsafe": secrets.token_urlsafe(24), "suite": PEPPER}[kind]
    assert pepper_problem(pepper) is None
    require_strong_pepper(Settings(token_pepper=SecretStr(pepper)))


def test_the_default_is_not_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINEWATCH_TOKEN_PEPPER", raising=False)
    assert pepper_problem(Settings().token_pepper.get_secret_value()) is not None


def _minewatch(args: list[str], pepper: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MINEWATCH_TOKEN_PEPPER"}
    env["DATABASE_URL"] = env.get("DATABASE_URL") or "postgresql://nobody@127.0.0.1:1/none"
    if pepper is not None:
        env["MINEWATCH_TOKEN_PEPPER"] = pepper
    return subprocess.run([sys.executable, "-m", "launcher", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("pepper", [None, "", "minewatch-dev-pepper", "0123456789"])
@pytest.mark.parametrize("args", [["api", "--port", "1"], ["tokens", "create", "--role", "admin", "--name", "x"]])
def test_the_commands_refuse_to_start(pepper: str | None, args: list[str], monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from launcher.cli import main

    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    if pepper is None:
        monkeypatch.delenv("MINEWATCH_TOKEN_PEPPER", raising=False)
    else:
        monkeypatch.setenv("MINEWATCH_TOKEN_PEPPER", pepper)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "MINEWATCH_TOKEN_PEPPER" in err and "openssl rand" in err
    if pepper:
        assert pepper not in err  # the error names the variable, never the value


def test_the_service_process_refuses_to_start() -> None:
    """`minewatch api` as deploy/env.example ships it (an empty pepper): exit 2, the variable named."""
    done = _minewatch(["api", "--port", "1"], "")
    assert done.returncode == 2, done.stderr
    assert "MINEWATCH_TOKEN_PEPPER is empty" in done.stderr


def test_the_embedded_demo_makes_one_per_installation(tmp_path: Path) -> None:
    weak = Settings(token_pepper=SecretStr(""))
    first, path = installation_pepper(weak, tmp_path / "data")
    assert path == tmp_path / "data" / "token_pepper"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pepper = first.token_pepper.get_secret_value()
    assert pepper_problem(pepper) is None
    again, _ = installation_pepper(Settings(token_pepper=SecretStr("minewatch-dev-pepper")), tmp_path / "data")
    assert again.token_pepper.get_secret_value() == pepper  # stable: tokens made earlier still work
    other, _ = installation_pepper(weak, tmp_path / "elsewhere")
    assert other.token_pepper.get_secret_value() != pepper
    # a configured strong pepper is used as it is, and no file is made
    mine, none = installation_pepper(Settings(token_pepper=SecretStr(PEPPER)), tmp_path / "third")
    assert none is None and mine.token_pepper.get_secret_value() == PEPPER
    assert not (tmp_path / "third").exists()
