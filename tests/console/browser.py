"""Headless Chromium for the console's browser tests: the system's chromium (Debian's package,
installed by scripts/bootstrap), driven by Playwright from PyPI; never `playwright install`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The browser executable: MINEWATCH_CHROMIUM, else the first candidate on PATH."""
    explicit = os.environ.get("MINEWATCH_CHROMIUM")
    if explicit and Path(explicit).exists():
        return explicit
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def require_browser() -> str:
    """The chromium path, or skip the module saying what is missing and how to get it."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on this machine: scripts/bootstrap installs Debian's `chromium` when run as "
                    "root, or set MINEWATCH_CHROMIUM to a Chromium/Chrome executable")
    return path
