"""Every finding rule the rule engine emits has a name in each language's templates and a
deliberate start level in the shipped routing sample (not just the default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.lifecycle import Level
from alerting.messages import load_templates
from alerting.routing import load_routing
from alerting.store import finding_kind
from rules.accidents import INSPECTION_RULE
from rules.evaluate import FREQUENT_RULE, HIGH_VALUE_RULE, ORDER_RULE, exceedance_rule
from rules.load import EVENT_GASES

SAMPLE = Path(__file__).resolve().parents[2] / "alerting" / "routing_sample.yaml"
EMITTED = (*(exceedance_rule(g) for g in EVENT_GASES), HIGH_VALUE_RULE, FREQUENT_RULE, ORDER_RULE, INSPECTION_RULE)
_REF_TABLE = {ORDER_RULE: "orders", FREQUENT_RULE: None, INSPECTION_RULE: "accidents"}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_templates_name_every_rule_the_rule_engine_emits(lang: str) -> None:
    t = load_templates(lang)
    assert [r for r in EMITTED if r not in t.rules] == []


def test_routing_sample_starts_every_non_methane_rule_deliberately() -> None:
    routing = load_routing(SAMPLE)
    explicit = routing.file.start_levels.rules
    # The gases other than methane take the default on purpose; the flags and orders are listed.
    assert {r: explicit.get(r) for r in (ORDER_RULE, FREQUENT_RULE, HIGH_VALUE_RULE)} == {
        ORDER_RULE: Level.COUNTY, FREQUENT_RULE: Level.COUNTY, HIGH_VALUE_RULE: Level.PROVINCE}
    # A methane case starts at its peak tier, whatever the table says.
    assert routing.start_level(exceedance_rule("methane"), methane_tier=Level.CITY) is Level.CITY


def test_kinds_of_the_emitted_rules() -> None:
    # Only the event's own finding is a methane case (four measures); flags and orders are not.
    kinds = {r: finding_kind(r, _REF_TABLE.get(r, "exceedance_events"), "methane") for r in EMITTED}
    assert kinds["methane_exceedance"] == "methane"
    assert kinds[HIGH_VALUE_RULE] == HIGH_VALUE_RULE
    assert kinds[FREQUENT_RULE] == FREQUENT_RULE
    assert kinds[ORDER_RULE] == "order"
    assert kinds[INSPECTION_RULE] == INSPECTION_RULE
