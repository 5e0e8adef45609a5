"""An installation's own secret, made once at random into a file only its owner can read."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def installation_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret in `path`, written first (mode 0600, never over an existing file, so two
    processes starting at once agree) with `make()` when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(make() + "\n")
    return path.read_text(encoding="ascii").strip()
