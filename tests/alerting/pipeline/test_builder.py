"""The pipeline is defined once (alerting.pipeline.builder) and production runs that one."""

from __future__ import annotations

import asyncio

from alerting import delivery, outbox
from alerting.pipeline import builder, run
from alerting.pipeline.builder import DELIVERY, ENQUEUE, ORDER, deliver


def test_the_order_is_the_house_order() -> None:
    assert ORDER == ("group", "inhibit", "silence", "dedup", "retry", "send", "record")
    assert [s.drops for s in ENQUEUE] == ["grouped", "inhibited", "silenced", "duplicate"]
    # one stage per module, named for it
    assert [s.stage.__module__ for s in ENQUEUE] == [f"alerting.pipeline.{s.name}" for s in ENQUEUE]


def test_production_and_tests_run_the_one_definition() -> None:
    assert vars(outbox)["ENQUEUE"] is builder.ENQUEUE  # the case worker's enqueue
    assert run.__defaults__ == (ENQUEUE,)  # what the pipeline tests run
    assert vars(delivery)["deliver"] is builder.deliver  # the deliverer's step
    assert not hasattr(outbox, "_STAGES") and not hasattr(builder, "STAGES")


class _Recorder:
    def __init__(self, due: list[int]) -> None:
        self.due = due
        self.calls: list[str] = []

    async def retry(self) -> list[int]:
        self.calls.append("retry")
        return self.due

    async def send(self, rows: list[int]) -> list[str]:
        self.calls.append("send")
        return [f"sent {r}" for r in rows]

    async def record(self, sent: list[str]) -> None:
        self.calls.append("record")
        assert sent == [f"sent {r}" for r in self.due]


def test_deliver_runs_the_delivery_steps_in_order() -> None:
    d = _Recorder([1, 2])
    assert asyncio.run(deliver(d)) == 2
    assert tuple(d.calls) == DELIVERY


def test_nothing_due_sends_nothing() -> None:
    d = _Recorder([])
    assert asyncio.run(deliver(d)) == 0
    assert d.calls == ["retry"]
