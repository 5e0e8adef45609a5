"""The four-measure checklist of methane cases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.checklist import Checklist, ChecklistItem, Measure
from tests.alerting.builders import T0


def test_new_checklist_misses_all_four_in_regulation_order() -> None:
    checklist = Checklist.new()
    assert checklist.missing() == (Measure.POWER_OFF_EVACUATE, Measure.ANALYSE_CAUSE,
                                   Measure.STOP_RECTIFY, Measure.HOLD_ACCOUNTABLE)
    assert not checklist.is_complete()


def test_recording_all_four_completes_it_and_keeps_who_and_when() -> None:
    checklist = Checklist.new()
    for i, measure in enumerate(Measure):
        checklist = checklist.record(measure, by=f"user{i}", now=T0 + timedelta(minutes=i),
                                     note=f"note {i}")
    assert checklist.is_complete() and checklist.missing() == ()
    item = checklist.item(Measure.STOP_RECTIFY)
    assert (item.by, item.at, item.note, item.by_data) == ("user2", T0 + timedelta(minutes=2),
                                                           "note 2", False)


def test_record_returns_a_new_checklist() -> None:
    empty = Checklist.new()
    empty.record(Measure.ANALYSE_CAUSE, by="u", now=T0, note=None)
    assert empty.missing() == tuple(Measure)


def test_measure_one_is_checked_by_data_and_a_person_may_override() -> None:
    checklist = Checklist.new().record_by_data(now=T0, note="T0101 feed off in 40 s; area empty")
    item = checklist.item(Measure.POWER_OFF_EVACUATE)
    assert (item.recorded, item.by_data, item.by) == (True, True, "system")
    assert checklist.missing() == (Measure.ANALYSE_CAUSE, Measure.STOP_RECTIFY,
                                   Measure.HOLD_ACCOUNTABLE)
    overridden = checklist.record(Measure.POWER_OFF_EVACUATE, by="zhang", now=T0, note="manual")
    assert overridden.item(Measure.POWER_OFF_EVACUATE).by_data is False


def test_checklist_must_hold_exactly_the_four_measures() -> None:
    with pytest.raises(ValueError, match="exactly the measures"):
        Checklist((ChecklistItem(Measure.ANALYSE_CAUSE),))
