"""The notification pipeline: stages with one signature, run in order over a batch.

`fan_out` turns a case's `Notify` effect into notifications; `run` passes them through
group → inhibit → silence → dedup. Retry, send and record belong to the outbox worker,
which backs off with `alerting.backoff` and sends through `alerting.notifiers`.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerting.pipeline.dedup import dedup
from alerting.pipeline.group import group
from alerting.pipeline.inhibit import inhibit
from alerting.pipeline.silence import silence
from alerting.pipeline.types import Notification, Stage, StageContext

STAGES: tuple[Stage, ...] = (group, inhibit, silence, dedup)


def run(
    notifications: Sequence[Notification],
    ctx: StageContext,
    stages: Sequence[Stage] = STAGES,
) -> Sequence[Notification]:
    """Pass a batch through the stages in order. Inputs whose id is in no output's `members`
    were suppressed (inhibited, silenced or duplicate)."""
    for stage in stages:
        notifications = stage(notifications, ctx)
    return notifications
