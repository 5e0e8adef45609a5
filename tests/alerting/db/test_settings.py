"""Alerting settings from the environment, and the routing file shipped for the sample registry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerting.lifecycle import Level, Regions
from alerting.routing import load_routing
from alerting.settings import AlertingSettingsError, load_alerting_settings, sample_routing_path
from minewatch.registry import load_registry
from minewatch.settings import packaged


def test_settings_are_read_from_the_prefixed_environment_with_json_for_nested_values() -> None:
    s = load_alerting_settings({
        "MINEWATCH_ALERTING_LEASE_S": "45", "MINEWATCH_ALERTING_DELIVERY_LANES": "2",
        "MINEWATCH_ALERTING_ESCALATION": '{"ack_window": "PT30M"}',
        "MINEWATCH_ALERTING_SMS_GATEWAY": '{"url": "https://sms.example.cn/send", "auth_env": "SMS_KEY", '
                                          '"body_template": {"to": "{to}", "msg": "{text}"}}',
        "UNRELATED": "x",
    })
    assert (s.lease, s.delivery_lanes, s.escalation.ack_window) == (timedelta(seconds=45), 2, timedelta(minutes=30))
    assert s.sms_gateway is not None and s.sms_gateway.auth_env == "SMS_KEY"
    assert s.routing_path == sample_routing_path()


@pytest.mark.parametrize(("env", "names"), [
    ({"MINEWATCH_ALERTING_LEASE_S": "5"}, ["MINEWATCH_ALERTING_*", "lease_s (5.0) must exceed http_timeout_s"]),
    ({"MINEWATCH_ALERTING_POLL_INTERVAL_S": "0"}, ["MINEWATCH_ALERTING_POLL_INTERVAL_S", "greater than 0"]),
    ({"MINEWATCH_ALERTING_ESCALATION": "{nope"}, ["MINEWATCH_ALERTING_ESCALATION", "not valid JSON"]),
    ({"MINEWATCH_ALERTING_ESCALATION": '{"ack_windw": "PT1M"}'}, ["MINEWATCH_ALERTING_ESCALATION.ack_windw"]),
])
def test_invalid_settings_name_the_variable(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(AlertingSettingsError) as caught:
        load_alerting_settings(env)
    for name in names:
        assert name in str(caught.value)


def test_sample_routing_covers_every_mine_and_region_of_the_sample_registry() -> None:
    routing = load_routing(sample_routing_path())
    registry, _ = load_registry(packaged("sample_registry.yaml"))
    assert registry.mines
    for mine in registry.mines:
        regions = Regions(county=mine.county, city=mine.city, province=mine.province)
        for level in Level:
            assert routing.receivers_for(mine.code, regions, level), (mine.code, level)
    # The sample's three coal mines report major hazards to their workforce too (双报告).
    assert [r.id for r in routing.workforce_for("140100000003")] == ["m3-union"]
    assert routing.start_level("shutdown_order") is Level.COUNTY
    assert routing.start_level("offline") is Level.COUNTY  # rules.md §6: integrity opens at the regulator
    assert routing.start_level("overtime") is Level.MINE
    actor = routing.sms_actor("+86 138-0000-0101")
    assert actor is not None and actor.scope == frozenset({"140100000001"})
