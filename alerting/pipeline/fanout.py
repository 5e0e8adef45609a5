"""Fan-out: a `Notify` effect of a case becomes one notification per receiver channel address."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from alerting.lifecycle import CaseView, Level, Notify, Reason, Severity
from alerting.pipeline.types import (
    ChannelKind,
    FindingRef,
    Notification,
    digest,
    notification_key,
)
from alerting.routing import Receiver, Routing

# 双报告: a major hazard is reported to the mine's workforce channel too; reminders and
# intermediate state changes are the regulator's and the mine's business, not the workforce's.
WORKFORCE_REASONS = frozenset({Reason.RAISED, Reason.ESCALATED, Reason.RESOLVED})


def fan_out(
    notify: Notify,
    *,
    case: CaseView,
    routing: Routing,
    mine_name: str,
    findings: Sequence[FindingRef],
    occasion: str,
    now: datetime,
) -> list[Notification]:
    """The notifications for one effect: each receiver of each level in `notify.levels` (plus
    the workforce channel for major hazards), one per SMS number and one for the webhook.

    Pass `case` as it stands after the decision is applied (escalated: at its new level), so
    the message names the right level. `occasion` must be stable for the event: "raised" for
    opening, `Escalate.occasion` / `Remind.occasion`, or the transition's action and time
    (`f"{record.action}@{record.at.isoformat()}"`). Ids derive from the dedup key, so the same
    event produced twice yields the same ids (an outbox insert with ON CONFLICT DO NOTHING on
    the id is then idempotent).
    """
    receivers: dict[str, Receiver] = {}
    for level in notify.levels:
        for receiver in routing.receivers_for(case.mine, case.regions, level):
            receivers.setdefault(receiver.id, receiver)
    if case.severity is Severity.MAJOR and notify.reason in WORKFORCE_REASONS:
        for receiver in routing.workforce_for(case.mine):
            receivers.setdefault(receiver.id, receiver)
    notes: list[Notification] = []
    for receiver in receivers.values():
        addresses = [(ChannelKind.SMS, phone) for phone in receiver.sms]
        if receiver.webhook is not None:
            addresses.append((ChannelKind.WEBHOOK, receiver.webhook.url))
        for channel, address in addresses:
            key = notification_key(
                (case.id,), notify.reason, occasion, receiver.id, channel, address
            )
            notes.append(Notification(
                id="n-" + digest([key]), case_ids=(case.id,), mine=case.mine,
                mine_name=mine_name, level=case.level, severity=case.severity,
                receiver_id=receiver.id, lang=receiver.lang, channel=channel, address=address,
                reason=notify.reason, occasion=occasion, findings=tuple(findings),
                created_at=now, case_state=case.state,
                # only the mine acknowledges (rules.md §9); its workforce channel is told only
                ack_by_reply=receiver.level is Level.MINE and not receiver.workforce,
            ))
    return notes
