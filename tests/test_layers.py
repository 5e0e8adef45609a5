"""The layering of the packages (pyproject.toml [tool.importlinter]) holds, and the check can fail.

import-linter builds the import graph of the tree as it is and checks four contracts: the
layers launcher > api > alerting > rules | ingest > minewatch; the simulators import nothing
above ingest and only the launcher starts them; the rule kernels import no asyncpg, paho,
httpx or os. The second test adds a forbidden import to a copy of the tree and expects the
check to name the broken contract, so a check that passes everything cannot go unnoticed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("minewatch", "ingest", "rules", "alerting", "api", "simulators", "launcher")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # before the venv's path to the checkout
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_layering_holds() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("rules/episodes.py", "import asyncpg", "rule kernels are pure"),
    ("rules/evaluate.py", "import os", "rule kernels are pure"),
    ("rules/personnel/__init__.py", "import paho", "rule kernels are pure"),
    ("minewatch/settings.py", "import api.app", "launcher > api"),
    ("alerting/cases.py", "import launcher.cli", "launcher > api"),
    ("rules/worker.py", "import ingest.store", "launcher > api"),
    ("api/app.py", "import simulators.model", "only the launcher starts the simulators"),
])
def test_a_forbidden_import_breaks_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "static"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    done = lint(tmp_path)
    assert done.returncode != 0, done.stdout
    # The contract the import breaks is named as broken (an indirect import may break others too).
    broken = [line for line in done.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), done.stdout
