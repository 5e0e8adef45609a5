"""Every finding rule the rule engine emits has a name in each language's templates and a
deliberate start level in the shipped routing sample (not just the default); the ids are the
ones `minewatch.rule_ids` declares (emitted or reserved), and routing and templates name no
other."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alerting.lifecycle import Level
from alerting.messages import load_templates
from alerting.pipeline.types import NEVER_INHIBITED
from alerting.routing import load_routing
from alerting.store import FLAG_RULES, METHANE_RULES, finding_kind
from minewatch import rule_ids
from rules.accidents import INSPECTION_RULE
from rules.evaluate import FREQUENT_RULE, HIGH_VALUE_RULE, ORDER_RULE, exceedance_rule
from rules.inputs import EVENT_GASES
from rules.integrity_rows import INTEGRITY_RULES
from rules.personnel_rows import PERSONNEL_RULES

SAMPLE = Path(__file__).resolve().parents[2] / "alerting" / "routing_sample.yaml"
EMITTED = (*(exceedance_rule(g) for g in EVENT_GASES), HIGH_VALUE_RULE, FREQUENT_RULE, ORDER_RULE, INSPECTION_RULE,
           *INTEGRITY_RULES, *PERSONNEL_RULES)
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
    # Integrity findings reference no typed row: each is a case of its own rule.
    assert {r: finding_kind(r, None, None) for r in INTEGRITY_RULES} == {r: r for r in INTEGRITY_RULES}
    # So do personnel findings (rules.personnel_rows: no typed row).
    assert {r: finding_kind(r, None, None) for r in PERSONNEL_RULES} == {r: r for r in PERSONNEL_RULES}


# --- one owner: minewatch.rule_ids; routing and templates name nothing else ------------------

TEMPLATES = Path(__file__).resolve().parents[2] / "alerting" / "templates"
# Gases other than methane start at the routing file's default on purpose (see above); methane
# starts at its peak tier. Every other emitted rule is listed in the sample by name.
_DEFAULT_START = frozenset(rule_ids.exceedance_rule(g) for g in rule_ids.EXCEEDANCE_GASES)


def test_the_engine_emits_exactly_the_ids_declared_emitted() -> None:
    assert set(EMITTED) == rule_ids.EMITTED
    assert EVENT_GASES == rule_ids.EXCEEDANCE_GASES  # rules/load.py evaluates these gases
    assert rule_ids.EMITTED.isdisjoint(rule_ids.RESERVED)
    assert rule_ids.KNOWN == rule_ids.EMITTED | rule_ids.RESERVED


def test_alerting_speaks_only_of_known_ids() -> None:
    assert METHANE_RULES | FLAG_RULES <= rule_ids.EMITTED
    assert NEVER_INHIBITED <= rule_ids.KNOWN


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_templates_name_no_rule_id_outside_the_contract(lang: str) -> None:
    # Read from the file, not the loaded model, so that a key the model dropped would count.
    names = yaml.safe_load((TEMPLATES / f"{lang}.yaml").read_text(encoding="utf-8"))["rules"]
    assert sorted(r for r in names if not rule_ids.is_known(r)) == []
    assert set(names) == set(load_templates(lang).rules)


def test_both_languages_name_the_same_rules() -> None:
    assert set(load_templates("zh").rules) == set(load_templates("en").rules)


def test_routing_sample_names_no_rule_id_outside_the_contract() -> None:
    raw = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))["start_levels"]["rules"]
    assert sorted(r for r in raw if not rule_ids.is_known(r)) == []


def test_routing_sample_routes_every_emitted_rule() -> None:
    routing = load_routing(SAMPLE)
    explicit = set(routing.file.start_levels.rules)
    assert sorted(rule_ids.EMITTED - explicit - _DEFAULT_START) == []
    # and the default really is taken for those: not listed, so not routed by accident elsewhere
    assert explicit.isdisjoint(_DEFAULT_START)
    for rule in rule_ids.EMITTED:
        assert routing.start_level(rule) in Level


def test_an_unknown_id_is_caught() -> None:
    # the checks above would see a retyped or misspelt id
    assert not rule_ids.is_known("methane_repeat") and not rule_ids.is_known("stale")
    assert rule_ids.is_known("slope_warning") and "slope_warning" not in rule_ids.EMITTED
    assert rule_ids.PERSONNEL <= rule_ids.EMITTED and "seal_breach" not in rule_ids.RESERVED
    assert rule_ids.INTEGRITY <= rule_ids.EMITTED and "offline" not in rule_ids.RESERVED
