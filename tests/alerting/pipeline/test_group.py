"""Group stage: one notification per receiver address and reason for a burst of one mine."""

from __future__ import annotations

from datetime import timedelta

from alerting.lifecycle import Level, Reason, Severity
from alerting.pipeline.group import group, ready
from alerting.pipeline.types import ChannelKind, StageContext
from tests.alerting.builders import T0, note

CTX = StageContext(now=T0 + timedelta(minutes=2))
ADDRESSES = [
    ("county-duty", ChannelKind.SMS, "13900000001"),
    ("county-duty", ChannelKind.WEBHOOK, "https://hooks.example.cn/jc"),
    ("mine-duty", ChannelKind.SMS, "13800000001"),
]


def test_fifty_points_in_one_minute_make_one_notification_per_receiver_address() -> None:
    burst = [
        note(i, receiver=r, channel=c, address=a, at=T0 + timedelta(seconds=i))
        for i in range(50) for r, c, a in ADDRESSES
    ]
    out = group(burst, CTX)
    assert sorted((n.receiver_id, n.channel, n.address) for n in out) == sorted(ADDRESSES)
    for n in out:
        assert len(n.findings) == 50 and len(n.case_ids) == 50
        assert len(n.members) == 50 and len(n.keys) == 50
        assert n.id.startswith("grp-")
    assert {m for n in out for m in n.members} == {n.id for n in burst}


def test_groups_split_by_window_mine_and_reason() -> None:
    early = [note(i, at=T0 + timedelta(seconds=10 * i)) for i in range(3)]  # 0..20 s
    late = note(10, at=T0 + timedelta(seconds=90))  # outside the first group's minute
    other_mine = note(11, mine="140100000002")
    escalated = note(12, reason=Reason.ESCALATED)
    out = group([late, *early, other_mine, escalated], CTX)
    sizes = sorted(len(n.members) for n in out)
    assert sizes == [1, 1, 1, 3]
    assert out[-1].members == (late.id,)  # ordered by creation time


def test_single_notification_passes_unchanged() -> None:
    one = note(1)
    assert group([one], CTX) == [one]


def test_group_takes_the_highest_severity_and_level() -> None:
    a = note(1, severity=Severity.NORMAL)
    b = note(2, severity=Severity.MAJOR, level=Level.CITY, at=T0 + timedelta(seconds=5))
    (merged,) = group([a, b], CTX)
    assert merged.severity is Severity.MAJOR and merged.level is Level.CITY


def test_grouped_id_is_stable_for_the_same_members() -> None:
    batch = [note(i, at=T0 + timedelta(seconds=i)) for i in range(5)]
    assert group(batch, CTX)[0].id == group(list(reversed(batch)), CTX)[0].id


def test_ready_waits_for_the_window_unless_urgent() -> None:
    window = timedelta(minutes=1)
    pending = [note(1)]
    assert not ready(pending, now=T0 + timedelta(seconds=59), window=window)
    assert ready(pending, now=T0 + timedelta(seconds=60), window=window)
    assert ready([note(2, severity=Severity.RED)], now=T0, window=window)
    assert not ready([], now=T0, window=window)
