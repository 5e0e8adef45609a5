"""Silence stage: maintenance windows per mine, point or rule suppress notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.pipeline.silence import silence
from alerting.pipeline.types import Silence, StageContext
from tests.alerting.builders import MINE, T0, finding, note

START, END = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
POINT = finding(1).subject


def _ctx(*silences: Silence, now_offset: timedelta = timedelta(0)) -> StageContext:
    return StageContext(now=T0 + now_offset, silences=silences)


def test_mine_wide_silence_drops_everything_of_the_mine_only() -> None:
    ctx = _ctx(Silence("S1", MINE, START, END))
    other = note(2, mine="140100000002")
    assert silence([note(1), other], ctx) == [other]


def test_silence_narrowed_to_a_point_or_a_rule() -> None:
    by_point = _ctx(Silence("S1", MINE, START, END, point=POINT))
    assert silence([note(1)], by_point) == []
    assert silence([note(2)], by_point) == [note(2)]
    by_rule = _ctx(Silence("S2", MINE, START, END, rule="offline"))
    offline = note(3, findings=(finding(3, rule="offline", kind="health"),))
    assert silence([offline, note(4)], by_rule) == [note(4)]


@pytest.mark.parametrize(("offset", "silenced"), [
    (timedelta(hours=-1), True),  # the start is inside
    (timedelta(minutes=59), True),
    (timedelta(hours=1), False),  # the end is outside
    (timedelta(hours=-2), False),
])
def test_silence_holds_only_in_its_window(offset: timedelta, silenced: bool) -> None:
    ctx = _ctx(Silence("S1", MINE, START, END), now_offset=offset)
    assert (silence([note(1)], ctx) == []) is silenced


def test_grouped_notification_loses_only_silenced_findings() -> None:
    grouped = note(1, findings=(finding(1), finding(2)))
    (out,) = silence([grouped], _ctx(Silence("S1", MINE, START, END, point=POINT)))
    assert [f.id for f in out.findings] == ["F2"]


def test_silence_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Silence("S1", MINE, END, START)
