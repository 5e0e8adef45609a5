"""Inhibit stage: an active shutdown order mutes repeated lesser notifications of its kind."""

from __future__ import annotations

from collections.abc import Sequence

from alerting.lifecycle import Reason
from alerting.pipeline.types import ActiveOrder, FindingRef, Notification, StageContext

# Only new findings and reminders repeat; escalations, state changes and resolutions are
# news even while the mine is stopped.
INHIBITABLE = frozenset({Reason.RAISED, Reason.REMINDER})


def inhibit(notifications: Sequence[Notification], ctx: StageContext) -> list[Notification]:
    """While a mine is under an active shutdown order, drop raised/reminder notifications
    whose findings are of the order's kind and no more severe than the order: the mine is
    already stopped for exactly that. Findings of `ctx.never_inhibited` rules (seal breach,
    power-off failure) always go through; a grouped notification keeps those findings and
    loses the inhibited ones. Cases are unaffected: only the message is muted.
    """
    kept: list[Notification] = []
    for note in notifications:
        order = ctx.active_orders.get(note.mine)
        worse = order is not None and note.severity.rank > order.severity.rank
        if order is None or note.reason not in INHIBITABLE or worse:
            kept.append(note)
            continue
        findings = tuple(f for f in note.findings if not _inhibited(f, order, ctx))
        if len(findings) == len(note.findings):
            kept.append(note)
        elif findings:
            kept.append(note.narrowed(findings))
    return kept


def _inhibited(finding: FindingRef, order: ActiveOrder, ctx: StageContext) -> bool:
    return finding.kind == order.kind and finding.rule not in ctx.never_inhibited
