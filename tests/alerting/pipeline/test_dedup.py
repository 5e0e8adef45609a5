"""Dedup stage: nothing is sent twice for the same case, reason, occasion and receiver."""

from __future__ import annotations

from alerting.lifecycle import Reason
from alerting.pipeline.dedup import dedup
from alerting.pipeline.group import group
from alerting.pipeline.types import StageContext
from tests.alerting.builders import T0, note


def test_already_sent_keys_are_dropped() -> None:
    a, b = note(1), note(2)
    assert dedup([a, b], StageContext(now=T0, sent_keys={a.dedup_key})) == [b]


def test_duplicates_within_a_batch_go_once() -> None:
    a = note(1)
    assert dedup([a, note(1)], StageContext(now=T0)) == [a]


def test_key_separates_case_reason_occasion_receiver_and_address() -> None:
    base = note(1)
    variants = [
        note(2),
        note(1, reason=Reason.ESCALATED),
        note(1, occasion="county>city@2026-11-23T01:15:00+00:00"),
        note(1, receiver="city-duty"),
        note(1, address="13900000002"),
    ]
    assert len({base.dedup_key, *(v.dedup_key for v in variants)}) == 6
    assert dedup(variants, StageContext(now=T0, sent_keys={base.dedup_key})) == variants


def test_group_with_a_new_member_goes_out() -> None:
    a, b = note(1), note(2)
    (merged,) = group([a, b], StageContext(now=T0))
    assert dedup([merged], StageContext(now=T0, sent_keys={a.dedup_key})) == [merged]
    assert dedup([merged], StageContext(now=T0, sent_keys={a.dedup_key, b.dedup_key})) == []
