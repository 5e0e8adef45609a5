"""Silence stage: maintenance silences suppress notifications, never the cases behind them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from alerting.pipeline.types import FindingRef, Notification, Silence, StageContext


def silence(notifications: Sequence[Notification], ctx: StageContext) -> list[Notification]:
    """Drop the findings covered by a silence active at `ctx.now` (per mine, narrowed by point
    and rule); a notification left without findings is dropped, one with some left goes out
    with those only."""
    active = [s for s in ctx.silences if s.starts_at <= ctx.now < s.ends_at]
    if not active:
        return list(notifications)
    kept: list[Notification] = []
    for note in notifications:
        findings = tuple(f for f in note.findings if not _covered(note.mine, f, active, ctx.now))
        if len(findings) == len(note.findings):
            kept.append(note)
        elif findings:
            kept.append(note.narrowed(findings))
    return kept


def _covered(mine: str, f: FindingRef, active: Sequence[Silence], now: datetime) -> bool:
    """A finding is silenced by a silence matching its subject, or, when it lists the points
    behind it (an event merged over a face), when silences cover every one of those points:
    calibrating one sensor must not mute a neighbour that really reads gas."""
    if any(s.matches(mine, f, now) for s in active):
        return True
    if not f.points:
        return False
    covered = {s.point for s in active if s.point is not None
               and s.matches(mine, FindingRef(f.id, f.case_id, f.rule, f.kind, s.point, f.started_at), now)}
    return set(f.points) <= covered
