"""The one shape of a long-running Minewatch process, and the one signal helper.

Every worker (MQTT ingest, file watcher, rules, alerting, rollup refresher) has the same contract:

- `await worker.run()` works until `stop()`; `await worker.run(burst=True)` works until there
  is nothing left to do now and returns (tests, back-fill, catch-up jobs). Either way it
  returns the worker's own tally of what it did.
- `worker.stop()` asks it to drain: finish the unit of work in hand, take nothing more, return
  from `run` (bounded by the worker's own drain timeout). It may be called from a signal handler
  and more than once.

Its settings are built once in `main()` / `create_app()` and passed to its constructor; nothing
below reads the environment. `serve` is how a command runs one: the first SIGTERM / SIGINT
drains, a second cancels what is left (like arq's `Worker.handle_sig`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

T_co = TypeVar("T_co", covariant=True)
T = TypeVar("T")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Worker(Protocol[T_co]):
    """A long-running process: run until stopped, or in burst mode until idle."""

    async def run(self, *, burst: bool = False) -> T_co:
        """Work until `stop()` (or, with `burst`, until nothing is left to do now)."""
        ...

    def stop(self) -> None:
        """Drain: finish the work in hand, take no more, let `run` return."""
        ...


def install_stop_signals(stops: Sequence[Callable[[], None]], *,
                         task: asyncio.Task[object] | None = None) -> Callable[[], None]:
    """On the first SIGTERM / SIGINT call every `stops` (a drain); on a second, cancel `task`
    (the current task by default). Returns a function that removes the handlers."""
    loop = asyncio.get_running_loop()
    target = task or asyncio.current_task()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        if len(received) == 1:
            log.info("%s received: draining (send it again to stop at once)", signal.Signals(sig).name)
            for stop in stops:
                stop()
        elif target is not None:
            log.warning("%s received again: stopping now", signal.Signals(sig).name)
            target.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)

    def remove() -> None:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
    return remove


async def serve(worker: Worker[T], *, burst: bool = False) -> T:
    """Run one worker as a process's main job, with the stop signals installed."""
    remove = install_stop_signals([worker.stop])
    try:
        return await worker.run(burst=burst)
    finally:
        remove()


def run_main(main: Callable[[], Awaitable[int]]) -> int:
    """`asyncio.run` for a command's coroutine: a stop signal cancels it (commands that are not
    workers, such as `migrate`, have nothing to drain), and that counts as a clean stop."""
    async def wrapper() -> int:
        task = asyncio.current_task()

        def cancel() -> None:
            if task is not None:
                task.cancel()
        remove = install_stop_signals([cancel])
        try:
            return await main()
        except asyncio.CancelledError:
            log.info("stopped by signal")
            return 0
        finally:
            remove()
    return asyncio.run(wrapper())
