"""Accident count rules as special-inspection findings (no IO), and the packs that may hold them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from alerting.lifecycle import Level
from alerting.messages import load_templates
from alerting.routing import load_routing
from minewatch.timeutil import to_ns
from rules.accidents import INSPECTION_RULE, inspection_findings
from rules.errors import PackError
from rules.packs import builtin_pack, parse_pack

SHANGHAI = ZoneInfo("Asia/Shanghai")
TZ = "Asia/Shanghai"
MINE = "149900000001"
ROOT = Path(__file__).resolve().parents[2]


def local(month: int, day: int, hour: int = 10) -> int:
    return to_ns(datetime(2026, month, day, hour, tzinfo=SHANGHAI))


def find(times: list[int], pack_name: str = "default", severities: list[str] | None = None,
         pack: Any = None) -> list[Any]:
    ids = list(range(101, 101 + len(times)))
    sev = severities or ["general"] * len(times)
    return inspection_findings(pack or builtin_pack(pack_name), MINE, ids, np.array(times, np.int64), sev, TZ)


def test_two_accidents_within_three_months_call_for_one_inspection_on_the_whole_mine() -> None:
    (f,) = find([local(1, 5), local(4, 4)])
    assert (f.rule, f.subject, f.start, f.end, f.level, f.tier, f.state, f.ref_table, f.ref_id) == (
        INSPECTION_RULE, MINE, local(4, 4), None, "inspection", None, "open", "accidents", 102)
    assert f.evidence == {
        "pack": "default", "rule": "accidents", "n": 2, "window": {"rolling": "3mo"},
        "accident_ids": [101, 102], "accident_times": ["2026-01-05T02:00:00Z", "2026-04-04T02:00:00Z"],
        "severities": ["general", "general"]}


@pytest.mark.parametrize("pack_name", ["default", "national_month", "ladder"])
def test_three_months_and_a_day_apart_call_for_none(pack_name: str) -> None:
    assert find([local(1, 5), local(4, 6)], pack_name) == []


def test_three_within_six_months_call_for_one() -> None:
    # Any three accidents within six months hold two within three months, so under rolling
    # windows the seed's second clause is reached through the first: here at 10 Jun, counting
    # 20 Apr and 10 Jun (10 Jan is more than three months before either).
    (f,) = find([local(1, 10), local(4, 20), local(6, 10)])
    assert f.start == local(6, 10) and f.evidence["accident_ids"] == [102, 103]
    assert (f.evidence["n"], f.evidence["window"]) == (2, {"rolling": "3mo"})


def test_the_six_month_clause_alone() -> None:
    pack = parse_pack({"name": "p", "count_rules": [{"id": "acc6", "kind": "accident", "any_of": [
        {"n": 3, "window": {"rolling": "6mo"}}], "action": {"type": "special_inspection"}}]}, "test")
    (f,) = find([local(1, 10), local(4, 20), local(7, 9)], pack=pack)
    assert f.start == local(7, 9) and f.evidence["accident_ids"] == [101, 102, 103]
    assert (f.evidence["rule"], f.evidence["n"], f.evidence["window"]) == ("acc6", 3, {"rolling": "6mo"})
    assert find([local(1, 10), local(4, 20), local(7, 10)], pack=pack) == []  # 6 months: out


def test_counted_accidents_are_not_counted_again_and_every_severity_counts() -> None:
    times = [local(1, 5), local(1, 20), local(2, 10), local(3, 1)]
    got = find(times, severities=["general", "major", "serious", "general"])
    assert [(f.start, f.evidence["accident_ids"]) for f in got] == [(local(1, 20), [101, 102]),
                                                                   (local(3, 1), [103, 104])]
    assert got[0].evidence["severities"] == ["general", "major"]


def test_no_accidents_or_no_accident_rule_call_for_none() -> None:
    assert find([]) == []
    pack = parse_pack({"name": "p", "count_rules": [{"id": "m", "kind": "methane_event", "any_of": [
        {"n": 2, "window": {"rolling": "7d"}}], "action": {"type": "order", "duration": "72h"}}]}, "test")
    assert find([local(1, 5), local(1, 6)], pack=pack) == []


def _accident_rule(rule_id: str, action: dict[str, str]) -> dict[str, Any]:
    return {"id": rule_id, "kind": "accident", "any_of": [{"n": 2, "window": {"rolling": "3mo"}}], "action": action}


def test_packs_refuse_orders_from_accidents_and_two_accident_rules() -> None:
    with pytest.raises(PackError, match=r"count_rules\[0\]: a count rule of kind 'accident' calls for a special "):
        parse_pack({"name": "p", "count_rules": [_accident_rule("a", {"type": "order", "duration": "72h"})]}, "p.yaml")
    inspect = {"type": "special_inspection"}
    with pytest.raises(PackError, match=r"at most one count rule of kind 'accident'.*\['a', 'b'\]"):
        parse_pack({"name": "p", "count_rules": [_accident_rule("a", inspect), _accident_rule("b", inspect)]}, "p.yaml")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_alerting_names_the_inspection(lang: str) -> None:
    assert INSPECTION_RULE in load_templates(lang).rules


def test_routing_sample_starts_the_inspection_at_the_county() -> None:
    routing = load_routing(ROOT / "alerting" / "routing_sample.yaml")
    assert routing.file.start_levels.rules.get(INSPECTION_RULE) is Level.COUNTY
