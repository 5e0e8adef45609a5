"""The integrity kernels are pure: no database, broker, HTTP, environment or clock.

pyproject's import-linter contract "pure-kernels" names its modules one by one and does not
list `rules.integrity` yet, so this test checks the package's own sources until it does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FORBIDDEN_MODULES = {"asyncpg", "paho", "httpx", "os", "time", "socket", "subprocess"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "getenv"}


def impurities(source: str) -> list[str]:
    """What in a module's source breaks purity: forbidden imports and clock reads."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FORBIDDEN_MODULES:
            found.append(node.module or "")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FORBIDDEN_CALLS:
            found.append(f"{node.func.attr}()")
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "rules" / "integrity").glob("*.py")), ids=lambda p: p.name)
def test_integrity_module_is_pure(path: Path) -> None:
    assert impurities(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("line", ["import os", "from asyncpg import connect", "import paho.mqtt.client",
                                  "x = datetime.now(UTC)", "x = time.time()"])
def test_the_purity_check_can_fail(line: str) -> None:
    assert impurities(line) != []
