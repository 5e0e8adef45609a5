"""The routing file: receivers per mine and region level, validated with named errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.errors import RoutingError
from alerting.lifecycle import Level, Role
from alerting.routing import load_routing, next_level, normalize_phone, parse_routing
from tests.alerting.builders import MINE, REGIONS, ROUTING_YAML


def test_receivers_per_level() -> None:
    routing = parse_routing(ROUTING_YAML, source="routing.yaml")
    mine = routing.receivers_for(MINE, REGIONS, Level.MINE)
    assert [r.id for r in mine] == ["m1-duty"] and mine[0].level is Level.MINE
    county = routing.receivers_for(MINE, REGIONS, Level.COUNTY)
    assert [r.id for r in county] == ["jc-county"]
    assert county[0].webhook is not None
    assert county[0].webhook.url == "https://hooks.example.cn/jc"
    assert county[0].webhook.secret_env == "MINEWATCH_HOOK_SECRET_JC"
    city = routing.receivers_for(MINE, REGIONS, Level.CITY)
    assert [(r.id, r.lang, r.code) for r in city] == [("ll-city", "en", "141100")]
    assert [r.id for r in routing.receivers_for(MINE, REGIONS, Level.PROVINCE)] == ["sx-prov"]
    assert routing.receivers_for("140100000999", REGIONS, Level.MINE) == []
    assert [r.id for r in routing.workforce_for(MINE)] == ["m1-union"]
    assert routing.workforce_for(MINE)[0].workforce


def test_start_level_by_tier_or_rule() -> None:
    routing = parse_routing(ROUTING_YAML, source="routing.yaml")
    assert routing.start_level("methane_exceedance", methane_tier=Level.PROVINCE) is Level.PROVINCE
    assert routing.start_level("stale") is Level.MINE
    assert routing.start_level("seal_breach") is Level.CITY
    assert routing.start_level("anything_else") is Level.COUNTY


def test_integrity_findings_never_start_at_the_mine_alone() -> None:
    """rules.md §6: a monitoring-integrity finding opens at the regulator. A routing file may
    not start one at the mine, and a `mine` default starts them at the county."""
    with pytest.raises(RoutingError, match=r"offline, stuck: monitoring-integrity findings open at the regulator"):
        parse_routing(ROUTING_YAML.replace("{stale: mine,", "{stuck: mine, offline: mine,"), source="routing.yaml")
    routing = parse_routing(ROUTING_YAML.replace("default: county", "default: mine"), source="routing.yaml")
    assert routing.start_level("overtime") is Level.MINE
    for rule in ("offline", "station_fault", "stuck", "calibration_abuse", "implausible_pair", "power_off_failure",
                 "under_reporting"):
        assert routing.start_level(rule) is Level.COUNTY, rule
    city = parse_routing(ROUTING_YAML.replace("{stale: mine,", "{stale: mine, stuck: city,"), source="routing.yaml")
    assert city.start_level("stuck") is Level.CITY


def test_next_level_climbs_the_ladder() -> None:
    assert [next_level(level) for level in Level] == [
        Level.COUNTY, Level.CITY, Level.PROVINCE, None]


def test_sms_reply_speaks_for_the_mine_whose_number_it_is() -> None:
    routing = parse_routing(ROUTING_YAML, source="routing.yaml")
    actor = routing.sms_actor("+8613800000002")
    assert actor is not None and actor.role is Role.MINE and actor.scope == frozenset({MINE})
    assert routing.sms_actor("13900000001") is None  # a regulator's phone
    assert routing.sms_actor("13800000009") is None  # the workforce channel
    assert normalize_phone("0086 138 0000 0001") == "13800000001"


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_YAML, encoding="utf-8")
    assert load_routing(path).receivers_for(MINE, REGIONS, Level.MINE)[0].id == "m1-duty"
    with pytest.raises(RoutingError, match="cannot read"):
        load_routing(tmp_path / "missing.yaml")


def _error(text: str) -> str:
    with pytest.raises(RoutingError) as info:
        parse_routing(text, source="conf/routing.yaml")
    return str(info.value)


@pytest.mark.parametrize(("text", "key", "words"), [
    ("version: 2", "version", "got 2; allowed values: 1"),
    ("version: 1\nstart_levels: {default: township}", "start_levels.default",
     "'mine', 'county', 'city' or 'province'"),
    ("version: 1\nregions: {town: {}}", "regions", "unknown key(s) town; allowed: county, city, "
                                                   "province"),
    ("version: 1\nreceivers: []", "(top level)", "allowed: version, start_levels, mines, regions"),
    ("version: 1\nmines: {'1': {receivers: [{id: a, name: b}]}}", "mines.1.receivers[0]",
     "no channel"),
    ("version: 1\nmines: {'1': {receivers: [{id: a, name: b, sms: ['12ab']}]}}",
     "mines.1.receivers[0].sms[0]", "pattern"),
    ("version: 1\nmines: {'1': {receivers: [{id: a, name: b, lang: fr, sms: ['13800000001']}]}}",
     "mines.1.receivers[0].lang", "'zh' or 'en'"),
    ("version: 1\nregions: {county: {'141122': [{id: a, name: b, webhook: "
     "{url: 'https://x.cn', secret: hunter2}}]}}", "regions.county.141122[0].webhook",
     "never stored in the routing file"),
    ("version: 1\nregions: {county: {'141122': [{id: a, name: b, webhook: "
     "{url: 'ftp://x.cn', secret_env: X}}]}}", "regions.county.141122[0].webhook.url", "URL"),
    ("version: 1\nmines: {'1': {receivers: [{id: a, name: b, sms: ['13800000001']}]},"
     " '2': {receivers: [{id: a, name: c, sms: ['13800000002']}]}}", "(top level)",
     "receiver id a is used twice"),
])
def test_errors_name_file_key_and_allowed_values(text: str, key: str, words: str) -> None:
    message = _error(text)
    assert f"conf/routing.yaml: {key}: " in message, message
    assert words in message, message


def test_non_mapping_and_bad_yaml() -> None:
    assert "must be a mapping" in _error("- 1\n- 2")
    assert "not valid YAML" in _error("version: [1")
