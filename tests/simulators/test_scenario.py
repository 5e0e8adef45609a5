"""Scenario files: validated at load with errors naming file, key and allowed values."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from minewatch.registry import Registry
from simulators.errors import SimulatorError
from simulators.scenario import MethaneRise, load_scenario, parse_duration, parse_scenario
from simulators.world import World
from tests.simulators.conftest import COAL, START, ms

T0 = f"{COAL}_01MN0001_T0003"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("6m", 360_000),
        ("1h30m", 5_400_000),
        ("90s", 90_000),
        ("2d", 172_800_000),
        ("250ms", 250),
        (30, 30_000),
        ("1.5h", 5_400_000),
    ],
)
def test_durations(text: object, want: int) -> None:
    assert parse_duration(text) == want


@pytest.mark.parametrize("bad", ["", "6", "6x", "m6", "-1m", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_a_full_scenario_file_loads(tmp_path: Path, registry: Registry) -> None:
    f = tmp_path / "rise.yaml"
    f.write_text(
        f"""
name: two rises in a week
model: {{spikes_per_day: 0}}
events:
  - at: 2026-11-23T10:05:00+08:00
    point: "{T0}"
    kind: methane_rise
    to: 1.8
    duration: 6m
    ramp: 1m
  - {{at: "+2h", station: "{COAL}S0002", kind: station_down, duration: 15m}}
  - {{at: "2026-11-24T10:00:00+08:00", mine: "{COAL}", area: A01, kind: overcrowd, n: 5,
      duration: 1h}}
expect:
  orders: [{{mine: "{COAL}", rule: repeated_exceedance}}]
""",
        encoding="utf-8",
    )
    sc = load_scenario(f, registry)
    assert sc.name == "two rises in a week"
    assert sc.expect == {"orders": [{"mine": COAL, "rule": "repeated_exceedance"}]}
    assert sc.params().spikes_per_day == 0 and sc.params().spike_scale == 0.15
    rise = sc.events[0]
    assert isinstance(rise, MethaneRise)
    assert rise.start_ms(0) == ms(datetime.fromisoformat("2026-11-23T10:05:00+08:00"))
    assert rise.hold_ms(0) == (rise.start_ms(0) + 60_000, rise.start_ms(0) + 420_000)
    assert sc.events[1].start_ms(ms(START)) == ms(START + timedelta(hours=2))


def _error(data: object, registry: Registry | None = None) -> str:
    with pytest.raises(SimulatorError) as exc:
        parse_scenario(data, "scen.yaml", registry)
    return str(exc.value)


def test_unknown_kind_names_the_file_the_event_and_the_allowed_kinds() -> None:
    msg = _error({"events": [{"at": "+1m", "kind": "methane_up", "point": T0}]})
    assert "scen.yaml" in msg and "events[0]" in msg
    assert "methane_rise" in msg and "slope_accelerate" in msg


def test_time_without_offset_is_rejected() -> None:
    msg = _error({"events": [{"at": "2026-11-23T10:05:00", "kind": "silence", "point": T0}]})
    assert "events[0](kind=silence).at" in msg and "offset" in msg


def test_missing_and_extra_fields() -> None:
    msg = _error({"events": [{"at": "+1m", "kind": "methane_rise", "point": T0, "speed": 3}]})
    assert ".to" in msg and "Field required" in msg and ".speed" in msg


def test_codes_are_checked_against_the_registry(registry: Registry) -> None:
    msg = _error(
        {
            "events": [
                {"at": "+1m", "kind": "methane_rise", "point": "NOPE", "to": 2},
                {"at": "+1m", "kind": "methane_rise", "point": f"{COAL}_01KG1011_T0001", "to": 2},
                {"at": "+1m", "kind": "overcrowd", "mine": COAL, "area": "A99", "n": 3},
                {"at": "+1m", "kind": "station_down", "station": "S?"},
                {"at": "+1m", "kind": "rainfall", "mine": "999", "mm_per_h": 3},
            ]
        },
        registry,
    )
    assert "events[0](kind=methane_rise).point: unknown point 'NOPE'" in msg
    assert "is not an analog (MN) point" in msg
    assert "unknown area 'A99'" in msg and "allowed: A00, A01" in msg
    assert "unknown station" in msg and "unknown mine '999'" in msg


def test_expect_must_be_a_mapping() -> None:
    assert "expect" in _error({"events": [], "expect": ["orders"]})


def test_the_world_refuses_a_scenario_for_another_registry(coal: Registry) -> None:
    sc = parse_scenario({"events": [{"at": "+1m", "kind": "rainfall", "mine": "140100000901", "mm_per_h": 3}]})
    with pytest.raises(SimulatorError, match="unknown mine"):
        World(coal, 1, START, START + timedelta(hours=1), sc)


def test_too_few_free_cards_for_a_crowd(coal: Registry) -> None:
    sc = parse_scenario(
        {"events": [{"at": "+1h", "kind": "overcrowd", "mine": COAL, "area": "A01", "n": 140}]},
        "crowd.yaml",
        coal,
    )
    world = World(coal, 1, START, START + timedelta(hours=2), sc)
    with pytest.raises(SimulatorError, match=r"only \d+ cards"):
        next(world.windows())
