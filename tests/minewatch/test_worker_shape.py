"""One worker shape (minewatch/worker.py): every long-running process has `run(*, burst=False)` and
`stop()`, takes its settings from its caller, and the one signal helper drains on the first
SIGTERM and cancels on the second."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
from pathlib import Path

import pytest

from alerting.worker import AlertingWorker
from ingest.files.watch import DropWatcher
from ingest.service import IngestService
from minewatch.db.rollup import Refresher
from minewatch.worker import serve
from rules.worker import RuleWorker
from tests.conftest import ROOT

WORKERS = [IngestService, DropWatcher, RuleWorker, AlertingWorker, Refresher]
PACKAGES = ("minewatch", "ingest", "rules", "alerting", "api", "simulators")


@pytest.mark.parametrize("cls", WORKERS, ids=lambda c: c.__name__)
def test_every_worker_has_the_one_contract(cls: type) -> None:
    run = inspect.signature(cls.run)
    assert inspect.iscoroutinefunction(cls.run)
    params = [p for p in run.parameters.values() if p.name != "self"]
    assert [(p.name, p.kind, p.default) for p in params] == [("burst", inspect.Parameter.KEYWORD_ONLY, False)]
    stop = inspect.signature(cls.stop)
    assert list(stop.parameters) == ["self"] and not inspect.iscoroutinefunction(cls.stop)


class _Counting:
    """A worker that counts steps until stopped; burst mode stops after three."""

    def __init__(self) -> None:
        self.steps = 0
        self.stopped = asyncio.Event()
        self.drained = False

    def stop(self) -> None:
        self.stopped.set()

    async def run(self, *, burst: bool = False) -> int:
        try:
            while not self.stopped.is_set() and not (burst and self.steps >= 3):
                self.steps += 1
                await asyncio.sleep(0.01)
            self.drained = True
            return self.steps
        except asyncio.CancelledError:
            self.drained = False
            raise


async def test_burst_runs_until_idle_without_signals() -> None:
    assert await serve(_Counting(), burst=True) == 3


async def test_first_signal_drains_second_cancels() -> None:
    w = _Counting()
    task = asyncio.create_task(serve(w))
    await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 5) > 0 and w.drained

    class Stubborn(_Counting):
        def stop(self) -> None:  # ignores the drain: only the second signal ends it
            pass
    s = Stubborn()
    task = asyncio.create_task(serve(s))
    await asyncio.sleep(0.05)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.05)
    assert not task.done()
    os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    # the handlers are removed with the worker: the loop's default SIGINT handling is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py")) if "migrations" not in p.parts]


def test_one_signal_helper() -> None:
    """Only minewatch/worker.py installs signal handlers (the launcher included)."""
    found = [str(p.relative_to(ROOT)) for p in [*_sources(), *sorted((ROOT / "launcher").rglob("*.py"))]
             if re.search(r"add_signal_handler|signal\.signal\(", p.read_text(encoding="utf-8"))]
    assert found == ["minewatch/worker.py"]


# Each is a process's main(): a command function or the uvicorn worker factory.
MAINS = {"rules/cli.py", "alerting/cli.py", "api/cli.py", "minewatch/commands.py"}


def test_the_environment_is_read_only_by_mains() -> None:
    """Settings are built once in main() / create_app() and passed down (style.md §12)."""
    readers = {str(p.relative_to(ROOT)) for p in _sources()
               if re.search(r"os\.environ|os\.getenv|\bSettings\(\)|RulesSettings\(\)", p.read_text(encoding="utf-8"))}
    assert readers <= MAINS, readers - MAINS
