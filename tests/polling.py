"""Waiting in tests for something another process does (a message stored, a window judged)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_for(what: str, probe: Callable[[], Awaitable[bool]], timeout: float = 60,
                   interval: float = 0.2) -> None:
    """Poll ``probe`` every ``interval`` seconds until it is true; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await probe():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
