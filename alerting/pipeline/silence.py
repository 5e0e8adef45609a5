"""Silence stage: maintenance silences suppress notifications, never the cases behind them."""

from __future__ import annotations

from collections.abc import Sequence

from alerting.pipeline.types import Notification, StageContext


def silence(notifications: Sequence[Notification], ctx: StageContext) -> list[Notification]:
    """Drop the findings covered by a silence active at `ctx.now` (per mine, narrowed by point
    and rule); a notification left without findings is dropped, one with some left goes out
    with those only."""
    active = [s for s in ctx.silences if s.starts_at <= ctx.now < s.ends_at]
    if not active:
        return list(notifications)
    kept: list[Notification] = []
    for note in notifications:
        findings = tuple(
            f for f in note.findings if not any(s.matches(note.mine, f, ctx.now) for s in active)
        )
        if len(findings) == len(note.findings):
            kept.append(note)
        elif findings:
            kept.append(note.narrowed(findings))
    return kept
