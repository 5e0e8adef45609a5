"""Rule packs: the shipped packs load and say what the catalogue says; bad packs are named."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from minewatch.timeutil import to_ns
from rules.episodes import DEFAULT_EXCLUDE_MASK
from rules.errors import PackError
from rules.orders import apply_count_rule
from rules.packs import EpisodeSettings, Severity, builtin_pack, builtin_packs, load_pack
from rules.severity import DEFAULT_TIERS

SHANGHAI = ZoneInfo("Asia/Shanghai")
H = 3600 * 1_000_000_000
D = 24 * H


def local(year: int, month: int, day: int, hour: int = 0) -> int:
    return to_ns(datetime(year, month, day, hour, tzinfo=SHANGHAI))


def test_builtin_packs_load() -> None:
    assert builtin_packs() == ["default", "ladder", "national_month"]
    for name in builtin_packs():
        assert builtin_pack(name).name == name


def test_default_pack_is_the_seed_rule() -> None:
    pack = builtin_pack("default")
    assert pack.timezone == "Asia/Shanghai"
    assert pack.episodes.exclude_mask == DEFAULT_EXCLUDE_MASK == EpisodeSettings().exclude_mask
    assert pack.episodes.max_gap == 5 * 60 * 10**9
    assert (pack.events.scope, pack.events.gap) == ("face", 10 * 60 * 10**9)
    seed, accidents = pack.count_rules
    assert (seed.kind, seed.any_of[0].n, seed.any_of[0].window.rolling) == (
        "methane_event", 2, "7d")
    assert seed.action.duration == 72 * H
    assert accidents.kind == "accident" and accidents.action.type == "special_inspection"
    assert [(c.n, c.window.rolling) for c in accidents.any_of] == [(2, "3mo"), (3, "6mo")]
    assert pack.severity.kernel_tiers() == DEFAULT_TIERS == Severity().kernel_tiers()
    assert pack.flags.frequent.n == 3 and pack.flags.high_value.peak_at_least == 3.0


def test_seed_pack_orders_a_mine_with_two_events_in_a_week() -> None:
    rule = builtin_pack("default").count_rules[0]
    t = np.array([local(2026, 3, 2, 8), local(2026, 3, 8, 20)], np.int64)
    orders = apply_count_rule(rule, t, "Asia/Shanghai")
    assert orders.start.tolist() == [t[1]] and orders.min_end.tolist() == [t[1] + 72 * H]


def test_national_month_counts_calendar_months_in_local_time() -> None:
    rule = builtin_pack("national_month").count_rules[0]
    # 31 Jan 23:00 and 1 Feb 01:00 Shanghai are two hours apart but in two months.
    apart = np.array([local(2026, 1, 31, 23), local(2026, 2, 1, 1)], np.int64)
    assert len(apply_count_rule(rule, apart, "Asia/Shanghai")) == 0
    same = np.array([local(2026, 2, 1, 1), local(2026, 2, 27, 1)], np.int64)
    assert len(apply_count_rule(rule, same, "Asia/Shanghai")) == 1


def test_ladder_escalates_within_a_two_month_cycle() -> None:
    rule = builtin_pack("ladder").count_rules[0]
    pairs = [(2026, 1, 3), (2026, 1, 13), (2026, 1, 28), (2026, 2, 20), (2026, 3, 2)]
    t = np.array([local(y, m, d, h) for y, m, d in pairs for h in (8, 9)], np.int64)
    orders = apply_count_rule(rule, t, "Asia/Shanghai")
    assert orders.step.tolist() == [1, 2, 3, 4, 1]
    assert ((orders.min_end - orders.start) // D).tolist() == [3, 6, 9, 9, 3]


def test_accident_rule_calls_for_inspection() -> None:
    rule = builtin_pack("default").count_rules[1]
    t = np.array([local(2026, 1, 5, 10), local(2026, 4, 4, 10)], np.int64)
    orders = apply_count_rule(rule, t, "Asia/Shanghai")
    assert len(orders) == 1 and orders.min_end.tolist() == orders.start.tolist()
    late = np.array([local(2026, 1, 5, 10), local(2026, 4, 6, 10)], np.int64)
    assert len(apply_count_rule(rule, late, "Asia/Shanghai")) == 0


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "province.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_error_names_file_key_and_allowed_values(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\nevents: {scope: district}\n")
    with pytest.raises(PackError) as info:
        load_pack(path)
    message = str(info.value)
    assert str(path) in message
    assert "events.scope: got 'district'; allowed values: 'point', 'face' or 'mine'" in message


def test_error_names_unknown_key_and_allowed_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\nepisodes: {max_gap: 5m, exclude_bits: [calibrating]}\n")
    with pytest.raises(PackError, match=r"episodes\.exclude_bits: unknown key; "
                                        r"allowed keys: exclude, max_gap"):
        load_pack(path)


def test_error_names_bad_status_bit_and_duration(tmp_path: Path) -> None:
    path = write(tmp_path, """name: p
episodes: {exclude: [calibrating, calibration]}
count_rules:
  - id: r
    kind: methane_event
    any_of: [{n: 2, window: {rolling: 7x}}]
    action: {type: order, duration: 72h}
""")
    with pytest.raises(PackError) as info:
        load_pack(path)
    message = str(info.value)
    assert "episodes.exclude[1]: got 'calibration'; allowed values: 'alarm', 'power_off'" in message
    assert "count_rules[0].any_of[0].window.rolling: '7x' is not a duration" in message


def test_error_names_shape_problems(tmp_path: Path) -> None:
    path = write(tmp_path, """name: p
timezone: Mars/Olympus
count_rules:
  - id: r
    kind: methane_event
    any_of: [{n: 2, window: {calendar: fortnight}}, {n: 2, window: {rolling: 7d, calendar: month}}]
    action: {type: order}
""")
    with pytest.raises(PackError) as info:
        load_pack(path)
    message = str(info.value)
    assert "timezone: 'Mars/Olympus' is not an IANA time zone" in message
    assert ("count_rules[0].any_of[0].window.calendar: got 'fortnight'; allowed values: "
            "'iso_week', 'month' or 'cycle'") in message
    assert "count_rules[0].any_of[1].window: give exactly one of 'rolling'" in message
    assert "count_rules[0].action: an order needs exactly one of 'duration' or 'ladder'" in message


def test_unreadable_and_unknown_packs(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="not valid YAML"):
        load_pack(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(PackError, match="must be a mapping"):
        load_pack(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(PackError, match="allowed: default, ladder, national_month"):
        builtin_pack("provincial")
    with pytest.raises(PackError, match="cannot read"):
        load_pack(tmp_path / "missing.yaml")
