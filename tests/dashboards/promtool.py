"""Find promtool for the Prometheus checks: skip without it on a workstation, fail without it in CI.

scripts/bootstrap installs Debian's `prometheus` package (which ships promtool) when it runs as
root with apt-get; a CI job where that did not happen must not pass by skipping the checks.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL_HINT = "promtool (Debian package prometheus: apt-get install prometheus) not installed"


def promtool() -> str:
    """The promtool binary; skips the test without one, or fails it when CI=true."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{INSTALL_HINT}; CI=true, so the Prometheus checks may not be skipped")
        pytest.skip(INSTALL_HINT)
    return path
