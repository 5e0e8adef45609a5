"""Group stage: simultaneous notifications of one mine to one receiver become one message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from alerting.lifecycle import Severity
from alerting.pipeline.types import Notification, StageContext, digest

_GroupKey = tuple[str, str, str, str, str]


def group(notifications: Sequence[Notification], ctx: StageContext) -> list[Notification]:
    """Merge notifications of the same mine, receiver, channel address and reason whose
    creation lies within `ctx.group_window` of the first of their group into one carrying
    all their findings and cases (50 points exceeding within a minute: one SMS per phone).

    Groups are formed from what the batch holds; when to run a batch is the worker's choice
    (see `ready`). Output is ordered by creation time.
    """
    buckets: dict[_GroupKey, list[list[Notification]]] = {}
    for note in sorted(notifications, key=lambda n: (n.created_at, n.id)):
        key = (note.mine, note.receiver_id, note.channel.value, note.address, note.reason.value)
        groups = buckets.setdefault(key, [])
        if groups and note.created_at - groups[-1][0].created_at <= ctx.group_window:
            groups[-1].append(note)
        else:
            groups.append([note])
    merged = [_merge(members) for groups in buckets.values() for members in groups]
    return sorted(merged, key=lambda n: (n.created_at, n.id))


def ready(pending: Sequence[Notification], *, now: datetime, window: timedelta) -> bool:
    """Whether a worker should run the pipeline over `pending` now: at once when anything is
    red or major (an urgent alarm is not held back to wait for company), otherwise once the
    oldest pending notification's group window has closed."""
    if not pending:
        return False
    if any(n.severity is not Severity.NORMAL for n in pending):
        return True
    return now - min(n.created_at for n in pending) >= window


def _merge(members: list[Notification]) -> Notification:
    if len(members) == 1:
        return members[0]
    first = members[0]
    member_ids = tuple(m for note in members for m in note.members)
    findings = tuple({f.id: f for note in members for f in note.findings}.values())
    case_ids = tuple(dict.fromkeys(c for note in members for c in note.case_ids))
    # id, case_state and occasion stay the first member's: the keys of all members are kept,
    # and a burst grouped within a minute shares its state (all newly open, or all waiting).
    return replace(
        first,
        id="grp-" + digest(member_ids),
        case_ids=case_ids,
        findings=findings,
        level=max((n.level for n in members), key=lambda level: level.rank),
        severity=max((n.severity for n in members), key=lambda s: s.rank),
        members=member_ids,
        keys=tuple(dict.fromkeys(k for note in members for k in note.keys)),
    )
