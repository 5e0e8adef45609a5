"""The four-measure checklist of methane cases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.actions import checklist_from_json, checklist_to_json
from alerting.checklist import Checklist, ChecklistItem, CheckStatus, DataCheck, DataCheckName, Measure
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


def test_measure_one_carries_two_unchecked_data_checks_and_the_others_none() -> None:
    checklist = Checklist.new()
    first = checklist.item(Measure.POWER_OFF_EVACUATE)
    assert [(c.name, c.status, c.rule) for c in first.data] == [
        (DataCheckName.POWER_OFF, CheckStatus.NOT_CHECKED, "power_off_failure"),
        (DataCheckName.EVACUATION, CheckStatus.NOT_CHECKED, "work_continued")]
    assert all(checklist.item(m).data == () for m in tuple(Measure)[1:])
    with pytest.raises(ValueError, match="carries the data checks"):
        ChecklistItem(Measure.ANALYSE_CAUSE, data=(DataCheck(DataCheckName.POWER_OFF),))


def test_a_data_check_is_filled_without_touching_the_person_record_and_the_reverse() -> None:
    person = Checklist.new().record(Measure.POWER_OFF_EVACUATE, by="zhang", now=T0, note="已断电撤人",
                                    done_at=T0 - timedelta(minutes=1))
    failed = DataCheck(DataCheckName.POWER_OFF, CheckStatus.FAILED, checked_at=T0, finding_id=42,
                       detail="feed T0001 still on at t + 60 s")
    both = person.with_data_check(failed)
    item = both.item(Measure.POWER_OFF_EVACUATE)
    assert (item.by, item.note, item.done_at, item.recorded) == ("zhang", "已断电撤人", T0 - timedelta(minutes=1), True)
    assert item.data == (failed, DataCheck(DataCheckName.EVACUATION))
    again = both.record(Measure.POWER_OFF_EVACUATE, by="li", now=T0, note="补充")
    assert again.item(Measure.POWER_OFF_EVACUATE).data == item.data  # the data's verdict is not the person's


def test_checklist_json_round_trips_and_old_rows_read_as_not_checked() -> None:
    checklist = (Checklist.new().record(Measure.ANALYSE_CAUSE, by="u", now=T0, note="n", done_at=T0 - timedelta(hours=1))
                 .with_data_check(DataCheck(DataCheckName.EVACUATION, CheckStatus.CONFIRMED, checked_at=T0)))
    assert checklist_from_json(checklist_to_json(checklist)) == checklist
    # As rows were written before done_at and the data checks existed.
    old = [{"measure": m.value, "recorded": False, "by": None, "at": None, "note": None, "by_data": False}
           for m in Measure]
    assert checklist_from_json(old) == Checklist.new()
