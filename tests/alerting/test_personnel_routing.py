"""Personnel findings (rules.md §7, §4 evacuation): where their cases open and what an order mutes.

restricted_area, seal_breach and work_continued open at the regulator as well as the mine
(never at the mine alone); over_capacity opens where the routing file says while it is a
warning and at the regulator once major (超定员组织生产); none of them is muted by an active
shutdown order, and the major ones reach the mine's workforce channel (双报告)."""

from __future__ import annotations

import pytest

from alerting.errors import RoutingError
from alerting.lifecycle import Level, Reason, Severity
from alerting.pipeline.inhibit import inhibit
from alerting.pipeline.types import ActiveOrder, StageContext
from alerting.routing import Routing, RoutingFile, load_routing
from alerting.settings import sample_routing_path
from minewatch import rule_ids
from tests.alerting.builders import MINE, T0, finding, note

SAMPLE = load_routing(sample_routing_path())


def routing(rules: dict[str, str], default: str = "mine") -> Routing:
    return Routing(RoutingFile.model_validate({"version": 1, "start_levels": {"default": default, "rules": rules}}))


@pytest.mark.parametrize("rule", ["restricted_area", "seal_breach", "work_continued"])
def test_personnel_hazards_never_start_at_the_mine_alone(rule: str) -> None:
    assert routing({}).start_level(rule) is Level.COUNTY  # a 'mine' default does not apply
    assert SAMPLE.start_level(rule) in (Level.COUNTY, Level.CITY, Level.PROVINCE)
    with pytest.raises(ValueError, match=rule):
        routing({rule: "mine"})


def test_a_major_over_capacity_opens_at_the_regulator_a_warning_where_the_file_says() -> None:
    r = routing({"over_capacity": "mine"})
    assert r.start_level("over_capacity", finding_level="warning") is Level.MINE
    assert r.start_level("over_capacity", finding_level="major") is Level.COUNTY
    assert SAMPLE.start_level("over_capacity", finding_level="warning") is Level.MINE
    assert SAMPLE.start_level("over_capacity", finding_level="major") is Level.COUNTY
    assert routing({"over_capacity": "city"}).start_level("over_capacity", finding_level="major") is Level.CITY
    # overtime and no_leader are the mine's first (the regulator hears on escalation)
    assert SAMPLE.start_level("overtime") is Level.MINE and SAMPLE.start_level("no_leader") is Level.MINE


@pytest.mark.parametrize("rule", ["restricted_area", "seal_breach", "work_continued", "over_capacity"])
def test_an_active_order_never_mutes_them(rule: str) -> None:
    # An order of the personnel kind (the worst case: the finding is of the order's kind).
    order = ActiveOrder(mine=MINE, order_id="O1", kind=rule, severity=Severity.MAJOR)
    ctx = StageContext(now=T0, active_orders={MINE: order})
    raised = note(1, findings=(finding(1, rule=rule, kind=rule),), reason=Reason.RAISED)
    reminder = note(2, findings=(finding(2, rule=rule, kind=rule),), reason=Reason.REMINDER)
    assert inhibit([raised, reminder], ctx) == [raised, reminder]
    assert rule in rule_ids.EMITTED


def test_a_routing_error_names_the_rule() -> None:
    with pytest.raises((ValueError, RoutingError)):
        routing({"seal_breach": "mine", "restricted_area": "mine"})
