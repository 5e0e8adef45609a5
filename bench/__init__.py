"""Benchmarks: run on demand (`python -m bench.<area>...`), never in the test suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def scratch(prefix: str) -> Path:
    """A private scratch directory for one benchmark process (embedded servers, payloads, logs),
    removed when the process exits, so repeated runs do not fill the disk (a run's broker
    persistence and PostgreSQL are 1-4 GB). MINEWATCH_BENCH_KEEP=1 keeps it for a post-mortem."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(work, 0o711)  # the embedded servers may run as another user
    if os.environ.get("MINEWATCH_BENCH_KEEP") != "1":
        atexit.register(shutil.rmtree, work, ignore_errors=True)
    else:
        print(f"scratch directory kept: {work}")
    return work
