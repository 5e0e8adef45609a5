"""Dedup stage: a notification already sent (same case, reason, occasion, receiver) is dropped."""

from __future__ import annotations

from collections.abc import Sequence

from alerting.pipeline.types import Notification, StageContext


def dedup(notifications: Sequence[Notification], ctx: StageContext) -> list[Notification]:
    """Drop notifications all of whose dedup keys are in `ctx.sent_keys` or were already kept
    earlier in this batch. A group with some new members goes out whole: repeating a finding
    in a grouped message is better than losing the new ones."""
    seen: set[str] = set()
    kept: list[Notification] = []
    for note in notifications:
        if all(key in ctx.sent_keys or key in seen for key in note.keys):
            continue
        seen.update(note.keys)
        kept.append(note)
    return kept
