"""The rule kernels read no clock: `now` is an argument (style.md §4).

The import side of purity (no asyncpg, paho, httpx, os, time, socket, subprocess) is
import-linter's "pure-kernels" contract (pyproject.toml, tests/test_layers.py); a call such as
`datetime.now()` imports nothing forbidden, so this test reads the kernels' sources for clock calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

KERNELS = [*(ROOT / "rules" / m for m in ("inputs.py", "evaluate.py", "episodes.py", "events.py", "orders.py",
                                          "accidents.py", "thresholds.py", "severity.py", "windows.py",
                                          "calendar.py", "packs.py", "integrity_rows.py",
                                          "personnel_rows.py")),
           *sorted(p for pkg in ("personnel", "integrity", "geotech") for p in (ROOT / "rules" / pkg).glob("*.py"))]
CLOCK_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter", "getenv"}


def clock_calls(source: str) -> list[str]:
    """The clock reads (and environment reads) in a module's source."""
    return [f"{node.func.attr}()" for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_CALLS]


@pytest.mark.parametrize("path", KERNELS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_kernel_reads_no_clock(path: Path) -> None:
    assert clock_calls(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("line", ["x = datetime.now(UTC)", "x = time.time()", "d = date.today()", "t = time.monotonic()"])
def test_the_check_can_fail(line: str) -> None:
    assert clock_calls(line) != []
