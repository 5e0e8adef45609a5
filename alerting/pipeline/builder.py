"""The notification pipeline composed in one place: which stages run, in which order.

Like Alertmanager's `PipelineBuilder`, this module is the only one that knows the order;
the case worker's outbox (`alerting.outbox`), the deliverer (`alerting.delivery`) and the
tests all take it from here.

    group → inhibit → silence → dedup  ║ outbox ║  retry → send → record
    (ENQUEUE: pure stages, one          (a row    (DELIVERY: `Deliverer` steps, run by
     signature, in the case worker's     per note) `deliver`, in the deliverer)
     transaction)

The enqueue stages take and return notifications (`Stage`). The delivery steps cannot: they
work on outbox rows, across a committed claim and a later transaction, with the HTTP calls
in between and no transaction open, and several deliverers share the rows through leases.
Folding them into the enqueue signature would lose the outbox's guarantees (a row exists
before anything is sent; a crash loses nothing), so they keep their own signatures and the
builder owns only their order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from alerting.pipeline.dedup import dedup
from alerting.pipeline.group import group
from alerting.pipeline.inhibit import inhibit
from alerting.pipeline.silence import silence
from alerting.pipeline.types import Notification, Stage, StageContext


@dataclass(frozen=True, slots=True)
class NamedStage:
    """An enqueue stage with its name and the word recorded for what it drops (the metric's
    `why`, a suppressed row's `last_error`)."""

    name: str
    drops: str
    stage: Stage

    def __call__(self, notifications: Sequence[Notification], ctx: StageContext) -> Sequence[Notification]:
        return self.stage(notifications, ctx)


ENQUEUE: tuple[NamedStage, ...] = (
    NamedStage("group", "grouped", group),
    NamedStage("inhibit", "inhibited", inhibit),
    NamedStage("silence", "silenced", silence),
    NamedStage("dedup", "duplicate", dedup),
)

# The deliverer's steps, in order (see `Deliverer`).
DELIVERY: tuple[str, ...] = ("retry", "send", "record")

# The whole pipeline by name, as docs/alerting.md draws it.
ORDER: tuple[str, ...] = (*(s.name for s in ENQUEUE), *DELIVERY)


def run(
    notifications: Sequence[Notification],
    ctx: StageContext,
    stages: Sequence[Stage] = ENQUEUE,
) -> Sequence[Notification]:
    """Pass a batch through the enqueue stages in order. Inputs whose id is in no output's
    `members` were suppressed (inhibited, silenced or duplicate)."""
    for stage in stages:
        notifications = stage(notifications, ctx)
    return notifications


Row = TypeVar("Row")
Sent = TypeVar("Sent")


class Deliverer(Protocol[Row, Sent]):
    """The delivery steps of the pipeline. `retry` takes the rows due now (first attempts and
    the retries whose backoff has passed) under a lease; `send` sends them, raising nothing
    and sleeping never (each outcome is delivered, retryable or permanent); `record` writes
    every attempt and settles each row, scheduling the next retry by `alerting.backoff`."""

    async def retry(self) -> list[Row]: ...

    async def send(self, rows: list[Row]) -> list[Sent]: ...

    async def record(self, sent: list[Sent]) -> None: ...


async def deliver(deliverer: Deliverer[Row, Sent]) -> int:
    """One round of the delivery steps in their order; returns how many rows were taken."""
    rows = await deliverer.retry()
    if not rows:
        return 0
    await deliverer.record(await deliverer.send(rows))
    return len(rows)
