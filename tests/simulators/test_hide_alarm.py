"""The scenario event `hide_alarm`: the simulated mine's YCBJ upload leaves out an episode's
abnormal records while its readings (CDSS, TJSJ) still show it. No IO."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ingest.files import parse_file
from ingest.files.records import CdssRecord, YcbjRecord
from minewatch.registry import Registry
from simulators.errors import SimulatorError
from simulators.files import ABNORMAL_OF_BIT, MineFiles, single_mine
from simulators.scenario import HideAlarm, parse_scenario
from simulators.world import World
from tests.simulators.conftest import COAL, START

T0 = f"{COAL}_01MN0001_T0003"  # upper corner methane of the sample registry: alarm 1.0, power-off 1.5
T1 = f"{COAL}_01MN0001_T0004"
RISES = [
    # Two exceedances of T0: one to power-off level (001 and 002 episodes), then one to alarm level only.
    {"at": "+20m", "point": T0, "kind": "methane_rise", "to": 1.8, "duration": "5m", "ramp": "1m"},
    {"at": "+60m", "point": T0, "kind": "methane_rise", "to": 1.2, "duration": "5m", "ramp": "1m"},
]


def uploads(reg: Registry, *hide: dict[str, Any]) -> tuple[list[YcbjRecord], set[tuple[int, str, float, int]]]:
    """The run's YCBJ records of T0 as the ingest parses them, and every CDSS row (tick, point, value, status)."""
    scenario = parse_scenario({"model": {"spikes_per_day": 0}, "events": [*RISES, *hide]}, registry=reg)
    files = MineFiles(World(reg, 3, START, START + timedelta(hours=2), scenario), COAL)
    ycbj: list[YcbjRecord] = []
    cdss: set[tuple[int, str, float, int]] = set()
    for name, data, ts in files.files():
        parsed = parse_file(name, data)
        assert parsed.errors == [], name
        ycbj.extend(r for r in parsed.records if isinstance(r, YcbjRecord) and r.point == T0)
        cdss.update((ts, r.point, r.value, r.status) for r in parsed.records if isinstance(r, CdssRecord))
    return ycbj, cdss


def episodes(records: list[YcbjRecord]) -> list[tuple[str, int, bool]]:
    """(abnormal code, minutes after the run's start of the episode's start, record with an end)."""
    return sorted((r.abnormal_code, round((r.start - START).total_seconds() / 60), r.end is not None) for r in records)


@pytest.fixture(scope="module")
def reg(registry: Registry) -> Registry:
    return single_mine(registry, COAL)


def test_ycbj_without_the_event_reports_every_episode(reg: Registry) -> None:
    ycbj, _ = uploads(reg)
    # Each episode is reported at its start (no end yet) and at its end. The first rise reaches
    # alarm at about +20.5 min and power-off a little later; the second reaches alarm only.
    assert episodes(ycbj) == [
        ("001", 21, False),
        ("001", 21, True),
        ("001", 61, False),
        ("001", 61, True),
        ("002", 21, False),
        ("002", 21, True),
    ]


def test_hide_alarm_leaves_the_episode_out_of_ycbj_but_not_out_of_the_readings(reg: Registry) -> None:
    _, cdss_plain = uploads(reg)
    # The window covers the second rise's start only: its alarm records vanish, start and end.
    ycbj, cdss = uploads(reg, {"at": "+50m", "point": T0, "kind": "hide_alarm", "duration": "30m"})
    assert episodes(ycbj) == [("001", 21, False), ("001", 21, True), ("002", 21, False), ("002", 21, True)]
    # The readings are untouched: every CDSS row is the same, the hidden exceedance included.
    assert cdss == cdss_plain
    assert any(p == T0 and v == 1.2 and s & 1 for _, p, v, s in cdss)


def test_hide_alarm_leaves_out_only_the_given_codes_and_points(reg: Registry) -> None:
    ycbj, _ = uploads(
        reg,
        {"at": "+0m", "point": T0, "kind": "hide_alarm", "duration": "2h", "codes": ["002"]},
        {"at": "+0m", "point": T1, "kind": "hide_alarm", "duration": "2h"},  # another point: T0 unaffected
    )
    assert episodes(ycbj) == [("001", 21, False), ("001", 21, True), ("001", 61, False), ("001", 61, True)]
    # An episode starting exactly at the window's end is not covered (the window is [at, at + duration)).
    event = HideAlarm.model_validate({"at": "+10m", "point": T0, "kind": "hide_alarm", "duration": "1m"})
    assert event.hides(0, "001", 600_000) and event.hides(0, "001", 659_999)
    assert not event.hides(0, "001", 660_000) and not event.hides(0, "001", 599_999) and not event.hides(0, "004", 600_000)


def test_hide_alarm_is_checked(reg: Registry) -> None:
    def error(event: dict[str, Any]) -> str:
        with pytest.raises(SimulatorError) as exc:
            parse_scenario({"events": [{"at": "+1m", "kind": "hide_alarm", **event}]}, "scen.yaml", reg)
        return str(exc.value)

    assert "events[0](kind=hide_alarm).point: unknown point 'NOPE'" in error({"point": "NOPE"})
    assert "codes" in error({"point": T0, "codes": ["003"]})
    assert "codes" in error({"point": T0, "codes": []})
    # Every abnormal type the file mode writes can be hidden, and only those.
    assert set(HideAlarm.model_fields["codes"].annotation.__args__[0].__args__) == set(ABNORMAL_OF_BIT.values())  # type: ignore[union-attr]
