"""The case lifecycle: a table over every (state, action, role), then the finer rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.checklist import Checklist, Measure
from alerting.errors import AlertingError
from alerting.lifecycle import (
    Action,
    Actor,
    Allowed,
    CaseKind,
    CaseState,
    Level,
    LiftOrder,
    Notify,
    OrderRef,
    Reason,
    Refused,
    Role,
    StopEscalation,
    open_effects,
    order_may_lift,
    record_measure,
    transition,
)
from tests.alerting.builders import ACTORS, T0, make_case, methane_case

ROLES = (Role.MINE, Role.COUNTY, Role.CITY, Role.PROVINCE, Role.ADMIN, Role.SYSTEM)

# Expected outcome per (state, action), one cell per role in ROLES order:
# a state name = allowed and moves there; F = forbidden (403); C = conflict (409).
# The case is raised at county level, so every regulator is at or above its supervisor.
TABLE: dict[tuple[str, str], str] = {
    ("open", "acknowledge"): "acknowledged F F F F F",
    ("open", "plan"): "C F F F F F",
    ("open", "submit"): "C F F F F F",
    ("open", "verify"): "F C C C C F",
    ("open", "reject"): "F C C C C F",
    ("open", "close"): "F C C C C F",
    ("acknowledged", "acknowledge"): "C F F F F F",
    ("acknowledged", "plan"): "rectifying F F F F F",
    ("acknowledged", "submit"): "C F F F F F",
    ("acknowledged", "verify"): "F C C C C F",
    ("acknowledged", "reject"): "F C C C C F",
    ("acknowledged", "close"): "F C C C C F",
    ("rectifying", "acknowledge"): "C F F F F F",
    ("rectifying", "plan"): "C F F F F F",
    ("rectifying", "submit"): "rectified F F F F F",
    ("rectifying", "verify"): "F C C C C F",
    ("rectifying", "reject"): "F C C C C F",
    ("rectifying", "close"): "F C C C C F",
    ("rectified", "acknowledge"): "C F F F F F",
    ("rectified", "plan"): "C F F F F F",
    ("rectified", "submit"): "C F F F F F",
    ("rectified", "verify"): "F verified verified verified verified F",
    ("rectified", "reject"): "F rectifying rectifying rectifying rectifying F",
    ("rectified", "close"): "F C C C C F",
    ("verified", "acknowledge"): "C F F F F F",
    ("verified", "plan"): "C F F F F F",
    ("verified", "submit"): "C F F F F F",
    ("verified", "verify"): "F C C C C F",
    ("verified", "reject"): "F rectifying rectifying rectifying rectifying F",
    ("verified", "close"): "F closed closed closed closed F",
    ("closed", "acknowledge"): "C F F F F F",
    ("closed", "plan"): "C F F F F F",
    ("closed", "submit"): "C F F F F F",
    ("closed", "verify"): "F C C C C F",
    ("closed", "reject"): "F C C C C F",
    ("closed", "close"): "F C C C C F",
}

CASES = [
    pytest.param(CaseState(state), Action(action), role, cell, id=f"{state}-{action}-{role.value}")
    for (state, action), row in TABLE.items()
    for role, cell in zip(ROLES, row.split(), strict=True)
]


def test_table_covers_every_state_action_role() -> None:
    assert {(s, a) for s, a in TABLE} == {(s.value, a.value) for s in CaseState for a in Action}
    assert len(CASES) == 6 * 6 * 6


@pytest.mark.parametrize(("state", "action", "role", "expected"), CASES)
def test_transition_table(state: CaseState, action: Action, role: Role, expected: str) -> None:
    case = make_case(state=state)
    deadline = T0 + timedelta(days=3) if action is Action.PLAN else None
    outcome = transition(case, action, ACTORS[role], now=T0, comment="整改说明", deadline=deadline)
    if expected == "F":
        assert isinstance(outcome, Refused) and outcome.reason == "forbidden"
        assert outcome.http_status == 403
    elif expected == "C":
        assert isinstance(outcome, Refused) and outcome.reason == "conflict"
        assert outcome.http_status == 409
    else:
        assert isinstance(outcome, Allowed), outcome
        assert outcome.new_state is CaseState(expected)
        record = outcome.record
        assert (record.who, record.role, record.at) == (ACTORS[role].who, role, T0)
        assert (record.from_state, record.to_state, record.action) == (state, outcome.new_state,
                                                                       action)
        assert record.comment == "整改说明"


def _deadline_case_outcome(deadline: object, *, state: CaseState = CaseState.ACKNOWLEDGED,
                           action: Action = Action.PLAN) -> Refused | Allowed:
    return transition(make_case(state=state), action, ACTORS[Role.MINE], now=T0,
                      comment="plan", deadline=deadline)  # type: ignore[arg-type]


def test_plan_needs_a_future_aware_deadline() -> None:
    for deadline, words in ((None, "needs a deadline"), (T0, "future"),
                            (T0 - timedelta(hours=1), "future"),
                            (T0.replace(tzinfo=None) + timedelta(days=1), "offset")):
        outcome = _deadline_case_outcome(deadline)
        assert isinstance(outcome, Refused) and outcome.reason == "invalid", deadline
        assert outcome.http_status == 422 and words in outcome.detail


def test_state_is_checked_before_the_request() -> None:
    outcome = _deadline_case_outcome(None, state=CaseState.OPEN)
    assert isinstance(outcome, Refused) and outcome.reason == "conflict"


def test_plan_records_the_deadline() -> None:
    deadline = T0 + timedelta(days=3)
    outcome = _deadline_case_outcome(deadline)
    assert isinstance(outcome, Allowed) and outcome.record.deadline == deadline


def test_only_plan_and_reject_take_a_deadline() -> None:
    later = T0 + timedelta(days=1)
    outcome = _deadline_case_outcome(later, state=CaseState.OPEN, action=Action.ACKNOWLEDGE)
    assert isinstance(outcome, Refused) and outcome.reason == "invalid"
    reject = transition(make_case(state=CaseState.VERIFIED), Action.REJECT, ACTORS[Role.CITY],
                        now=T0, comment="证据不足", deadline=later)
    assert isinstance(reject, Allowed) and reject.record.deadline == later


@pytest.mark.parametrize(("state", "action", "role"), [
    (CaseState.RECTIFYING, Action.SUBMIT, Role.MINE),
    (CaseState.RECTIFIED, Action.REJECT, Role.COUNTY),
])
@pytest.mark.parametrize("comment", [None, "", "   "])
def test_evidence_and_refusals_need_a_comment(
    state: CaseState, action: Action, role: Role, comment: str | None
) -> None:
    outcome = transition(make_case(state=state), action, ACTORS[role], now=T0, comment=comment,
                         deadline=None)
    assert isinstance(outcome, Refused) and outcome.reason == "invalid"


def test_mine_acts_only_on_its_own_cases() -> None:
    stranger = Actor("li.si", Role.MINE, frozenset({"140100000999"}))
    outcome = transition(make_case(), Action.ACKNOWLEDGE, stranger, now=T0, comment=None,
                         deadline=None)
    assert isinstance(outcome, Refused) and outcome.reason == "forbidden"
    assert "140100000001" in outcome.detail


def test_regulator_acts_only_in_its_region() -> None:
    other_county = Actor("qian", Role.COUNTY, frozenset({"141123"}))
    outcome = transition(make_case(state=CaseState.RECTIFIED), Action.VERIFY, other_county,
                         now=T0, comment=None, deadline=None)
    assert isinstance(outcome, Refused) and outcome.reason == "forbidden"


@pytest.mark.parametrize(("case_level", "role", "allowed"), [
    (Level.MINE, Role.COUNTY, True),  # a mine-level case is supervised by the county
    (Level.COUNTY, Role.COUNTY, True),
    (Level.CITY, Role.COUNTY, False),  # escalated past the county: it may no longer verify
    (Level.CITY, Role.CITY, True),
    (Level.CITY, Role.PROVINCE, True),  # a level above may always
    (Level.PROVINCE, Role.CITY, False),
    (Level.PROVINCE, Role.PROVINCE, True),
    (Level.PROVINCE, Role.ADMIN, True),
])
def test_only_the_supervising_level_or_above_verifies(
    case_level: Level, role: Role, allowed: bool
) -> None:
    case = make_case(state=CaseState.RECTIFIED, level=case_level)
    outcome = transition(case, Action.VERIFY, ACTORS[role], now=T0, comment=None, deadline=None)
    if allowed:
        assert isinstance(outcome, Allowed) and outcome.new_state is CaseState.VERIFIED
    else:
        assert isinstance(outcome, Refused) and outcome.reason == "forbidden"
        assert "supervised at" in outcome.detail


def _complete(checklist: Checklist) -> Checklist:
    for measure in Measure:
        checklist = checklist.record(measure, by="zhang.san", now=T0, note="done")
    return checklist


def test_methane_case_closes_only_with_all_four_measures() -> None:
    partial = Checklist.new().record(Measure.POWER_OFF_EVACUATE, by="x", now=T0, note=None)
    case = methane_case(state=CaseState.VERIFIED, checklist=partial)
    outcome = transition(case, Action.CLOSE, ACTORS[Role.COUNTY], now=T0, comment=None,
                         deadline=None)
    assert isinstance(outcome, Refused) and outcome.reason == "conflict"
    assert "analyse_cause, stop_rectify, hold_accountable" in outcome.detail
    done = methane_case(state=CaseState.VERIFIED, checklist=_complete(partial))
    closed = transition(done, Action.CLOSE, ACTORS[Role.COUNTY], now=T0, comment=None,
                        deadline=None)
    assert isinstance(closed, Allowed) and closed.new_state is CaseState.CLOSED


def test_methane_case_without_checklist_cannot_close() -> None:
    case = methane_case(state=CaseState.VERIFIED, checklist=None)
    outcome = transition(case, Action.CLOSE, ACTORS[Role.ADMIN], now=T0, comment=None,
                         deadline=None)
    assert isinstance(outcome, Refused) and outcome.reason == "conflict"


def test_effects_of_each_action() -> None:
    def effects(state: CaseState, action: Action, role: Role) -> tuple[object, ...]:
        deadline = T0 + timedelta(days=1) if action is Action.PLAN else None
        outcome = transition(make_case(state=state, level=Level.CITY), action, ACTORS[role],
                             now=T0, comment="c", deadline=deadline)
        assert isinstance(outcome, Allowed)
        return outcome.effects

    city, mine = Level.CITY, Level.MINE
    assert effects(CaseState.OPEN, Action.ACKNOWLEDGE, Role.MINE) == (
        Notify((city,), Reason.STATE_CHANGED), StopEscalation("ack"))
    assert effects(CaseState.ACKNOWLEDGED, Action.PLAN, Role.MINE) == (
        Notify((city,), Reason.STATE_CHANGED),)
    assert effects(CaseState.RECTIFYING, Action.SUBMIT, Role.MINE) == (
        Notify((city,), Reason.STATE_CHANGED), StopEscalation("deadline"))
    assert effects(CaseState.RECTIFIED, Action.VERIFY, Role.CITY) == (
        Notify((mine,), Reason.STATE_CHANGED),)
    assert effects(CaseState.VERIFIED, Action.REJECT, Role.CITY) == (
        Notify((mine,), Reason.STATE_CHANGED),)
    assert effects(CaseState.VERIFIED, Action.CLOSE, Role.PROVINCE) == (
        Notify((mine, city), Reason.RESOLVED), StopEscalation("all"))


def test_open_effects_notify_mine_and_start_level() -> None:
    assert open_effects(make_case(level=Level.CITY)) == (
        Notify((Level.MINE, Level.CITY), Reason.RAISED),)
    assert open_effects(make_case(level=Level.MINE)) == (Notify((Level.MINE,), Reason.RAISED),)


def test_order_lifts_only_when_verified_and_min_end_passed() -> None:
    min_end = T0 + timedelta(hours=72)
    order = OrderRef("O1", min_end)
    case = make_case(state=CaseState.RECTIFIED, kind=CaseKind.ORDER, order=order)
    early = transition(case, Action.VERIFY, ACTORS[Role.COUNTY], now=min_end - timedelta(hours=1),
                       comment=None, deadline=None)
    assert isinstance(early, Allowed)
    assert not any(isinstance(e, LiftOrder) for e in early.effects)
    late = transition(case, Action.VERIFY, ACTORS[Role.COUNTY], now=min_end, comment=None,
                      deadline=None)
    assert isinstance(late, Allowed) and LiftOrder("O1") in late.effects
    verified = make_case(state=CaseState.VERIFIED, kind=CaseKind.ORDER, order=order)
    closed = transition(verified, Action.CLOSE, ACTORS[Role.COUNTY], now=min_end + timedelta(1),
                        comment=None, deadline=None)
    assert isinstance(closed, Allowed) and LiftOrder("O1") in closed.effects


@pytest.mark.parametrize(("state", "offset_h", "lifts"), [
    (CaseState.RECTIFIED, 100, False),  # past min_end but not verified
    (CaseState.VERIFIED, 71, False),  # verified before the 72 h are over
    (CaseState.VERIFIED, 72, True),
    (CaseState.CLOSED, 80, True),
    (CaseState.RECTIFYING, 80, False),  # verification refused: stays stopped
])
def test_order_may_lift(state: CaseState, offset_h: int, lifts: bool) -> None:
    min_end = T0 + timedelta(hours=72)
    case = make_case(state=state, kind=CaseKind.ORDER, order=OrderRef("O1", min_end))
    assert order_may_lift(case, min_end, T0 + timedelta(hours=offset_h)) is lifts


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(AlertingError):
        transition(make_case(), Action.ACKNOWLEDGE, ACTORS[Role.MINE],
                   now=T0.replace(tzinfo=None), comment=None, deadline=None)


def test_mine_records_measures_on_its_methane_case() -> None:
    case = methane_case(state=CaseState.RECTIFYING)
    result = record_measure(case, Measure.ANALYSE_CAUSE, ACTORS[Role.MINE], now=T0,
                            note="局部通风机故障")
    assert isinstance(result, Checklist)
    item = result.item(Measure.ANALYSE_CAUSE)
    assert (item.recorded, item.by, item.at, item.note, item.by_data) == (
        True, "zhang.san", T0, "局部通风机故障", False)


@pytest.mark.parametrize(("case_changes", "actor", "reason"), [
    ({}, ACTORS[Role.COUNTY], "forbidden"),
    ({}, ACTORS[Role.ADMIN], "forbidden"),
    ({}, Actor("li.si", Role.MINE, frozenset({"140100000999"})), "forbidden"),
    ({"state": CaseState.CLOSED}, ACTORS[Role.MINE], "conflict"),
    ({"kind": CaseKind.OTHER, "checklist": None}, ACTORS[Role.MINE], "conflict"),
])
def test_record_measure_refusals(case_changes: dict[str, object], actor: Actor,
                                 reason: str) -> None:
    case = methane_case(**case_changes)
    result = record_measure(case, Measure.STOP_RECTIFY, actor, now=T0, note=None)
    assert isinstance(result, Refused) and result.reason == reason


def test_a_withdrawn_case_may_be_closed_by_its_regulator_from_any_state_with_a_reason() -> None:
    case = methane_case(withdrawn=True)  # four measures not recorded
    county = ACTORS[Role.COUNTY]
    refused = transition(case, Action.CLOSE, county, now=T0, comment=None, deadline=None)
    assert isinstance(refused, Refused) and refused.reason == "invalid"
    done = transition(case, Action.CLOSE, county, now=T0, comment="标校气体，非超限", deadline=None)
    assert isinstance(done, Allowed) and done.new_state is CaseState.CLOSED
    # Still the regulator's decision, never the mine's.
    mine = transition(case, Action.CLOSE, ACTORS[Role.MINE], now=T0, comment="x", deadline=None)
    assert isinstance(mine, Refused) and mine.reason == "forbidden"
    # Without the withdrawal, the usual rule holds: only from verified.
    kept = transition(methane_case(), Action.CLOSE, county, now=T0, comment="x", deadline=None)
    assert isinstance(kept, Refused) and kept.reason == "conflict"


def _with(*measures: Measure) -> Checklist:
    checklist = Checklist.new()
    for measure in measures:
        checklist = checklist.record(measure, by="zhang.san", now=T0, note="done")
    return checklist


# Verifying a rectified methane case (rules.md §4: the regulator refuses a verification that
# lacks a measure): (measures recorded, withdrawn, expected: a state, or C with the missing names).
VERIFY_TABLE: list[tuple[tuple[Measure, ...], bool, str]] = [
    ((), False, "C power_off_evacuate, analyse_cause, stop_rectify, hold_accountable"),
    ((Measure.POWER_OFF_EVACUATE,), False, "C analyse_cause, stop_rectify, hold_accountable"),
    (tuple(Measure)[:3], False, "C hold_accountable"),
    (tuple(Measure)[1:], False, "C power_off_evacuate"),
    (tuple(Measure), False, "verified"),
    ((), True, "verified"),  # every finding withdrawn: nothing left to take measures against
]


@pytest.mark.parametrize(("recorded", "withdrawn", "expected"), VERIFY_TABLE)
@pytest.mark.parametrize("role", [Role.COUNTY, Role.CITY, Role.PROVINCE, Role.ADMIN])
def test_verification_of_a_methane_case_is_refused_while_a_measure_is_missing(
        recorded: tuple[Measure, ...], withdrawn: bool, expected: str, role: Role) -> None:
    case = methane_case(state=CaseState.RECTIFIED, checklist=_with(*recorded), withdrawn=withdrawn)
    outcome = transition(case, Action.VERIFY, ACTORS[role], now=T0, comment=None, deadline=None)
    if expected.startswith("C "):
        assert isinstance(outcome, Refused) and outcome.http_status == 409
        assert outcome.detail.endswith(f"missing: {expected[2:]}"), outcome.detail
        assert "cannot verify a methane case" in outcome.detail
    else:
        assert isinstance(outcome, Allowed) and outcome.new_state is CaseState(expected)
    # Refusing the evidence stays the regulator's choice, measures or not.
    rejected = transition(case, Action.REJECT, ACTORS[role], now=T0, comment="四项措施未落实", deadline=None)
    assert isinstance(rejected, Allowed) and rejected.new_state is CaseState.RECTIFYING


def test_the_mine_is_still_refused_verification_as_a_role_not_for_missing_measures() -> None:
    case = methane_case(state=CaseState.RECTIFIED)
    outcome = transition(case, Action.VERIFY, ACTORS[Role.MINE], now=T0, comment=None, deadline=None)
    assert isinstance(outcome, Refused) and outcome.reason == "forbidden"


def test_a_measure_records_when_it_was_done_not_after_now() -> None:
    case = methane_case(state=CaseState.OPEN)
    done = record_measure(case, Measure.POWER_OFF_EVACUATE, ACTORS[Role.MINE], now=T0, note="断电撤人",
                          done_at=T0 - timedelta(minutes=3))
    assert isinstance(done, Checklist)
    item = done.item(Measure.POWER_OFF_EVACUATE)
    assert (item.at, item.done_at, item.by) == (T0, T0 - timedelta(minutes=3), "zhang.san")
    exactly_now = record_measure(case, Measure.ANALYSE_CAUSE, ACTORS[Role.MINE], now=T0, note=None, done_at=T0)
    assert isinstance(exactly_now, Checklist)
    default = record_measure(case, Measure.ANALYSE_CAUSE, ACTORS[Role.MINE], now=T0, note=None)
    assert isinstance(default, Checklist) and default.item(Measure.ANALYSE_CAUSE).done_at == T0
    for bad, words in ((T0 + timedelta(microseconds=1), "in the future"),
                       (T0.replace(tzinfo=None), "UTC offset")):
        refused = record_measure(case, Measure.ANALYSE_CAUSE, ACTORS[Role.MINE], now=T0, note=None, done_at=bad)
        assert isinstance(refused, Refused) and refused.reason == "invalid" and words in refused.detail
    # The role and the state are judged before the request, as in `transition`.
    closed = methane_case(state=CaseState.CLOSED)
    late = record_measure(closed, Measure.ANALYSE_CAUSE, ACTORS[Role.MINE], now=T0, note=None,
                          done_at=T0 + timedelta(days=1))
    assert isinstance(late, Refused) and late.reason == "conflict"
