"""The simulators' file mode: its vectorized snapshots against a plain-loop reference, window independence,
abnormal records for scenario episodes, and files the parser reads without a single error. No IO."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from ingest.files import parse_file
from minewatch.registry import Registry, Thresholds, load_registry
from simulators.errors import SimulatorError
from simulators.files import FileOptions, MineFiles, Redefinition, parse_redefinition, single_mine, snapshot_messages
from simulators.model import generate
from simulators.scenario import Scenario, parse_scenario
from simulators.world import World
from tests.conftest import SAMPLE_REGISTRY

MINE = "140100000001"
START = datetime(2024, 5, 14, 0, 0, 3, tzinfo=UTC)  # not on a tick: the first upload is 7 s in


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg, _ = load_registry(SAMPLE_REGISTRY)
    return single_mine(reg, MINE)


def scenario(reg: Registry) -> Scenario:
    return parse_scenario({"events": [
        {"at": "+40m", "point": f"{MINE}_01MN0001_T0003", "kind": "methane_rise", "to": 1.8, "duration": "6m", "ramp": "1m"},
        {"at": "+70m", "point": f"{MINE}_01MN0001_T0004", "kind": "silence", "duration": "20m"},
    ]}, registry=reg)


def reference(reg: Registry, end: datetime) -> dict[int, dict[str, tuple[float, int]]]:
    """Tick -> point -> (value, status) by brute force: the latest reading at or before each tick,
    unless it is older than the point's max_gap_s."""
    readings: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for batch in generate(reg, 3, START, end, scenario(reg)):
        for p, t, v, s in zip(batch.point.tolist(), batch.ts_ms.tolist(), batch.value.tolist(), batch.status.tolist(),
                              strict=True):
            readings[batch.codes[p]].append((t, v, s))
    gap = {p.code: p.max_gap_s * 1000 for p in reg.mines[0].points}
    out: dict[int, dict[str, tuple[float, int]]] = {}
    start_ms, end_ms = int(START.timestamp() * 1000), int(end.timestamp() * 1000)
    for tick in range(-(-start_ms // 10_000) * 10_000, end_ms, 10_000):
        snap: dict[str, tuple[float, int]] = {}
        for code, rows in readings.items():
            best = None
            for t, v, s in rows:
                if t <= tick and (best is None or t >= best[0]):
                    best = (t, v, s)
            if best is not None and tick - best[0] <= gap[code]:
                snap[code] = (best[1], best[2])
        if snap:
            out[tick] = snap
    return out


def test_snapshots_match_the_plain_loop_reference_and_do_not_depend_on_windows(registry: Registry) -> None:
    end = START + timedelta(hours=2)
    expected = reference(registry, end)
    for chunk_h in (1, 6):  # windows cut every hour or every 6 h: the same uploads
        files = MineFiles(World(registry, 3, START, end, scenario(registry), chunk_ms=chunk_h * 3_600_000), MINE)
        got = {t.ts_ms: {r.point: (r.value, r.status) for r in t.cdss} for t in files.ticks() if t.cdss}
        assert got == expected
    # The silenced point drops out of the snapshots once its last reading is older than max_gap_s
    # (and before its first reading of the run).
    first_minute = int((START + timedelta(minutes=1)).timestamp() * 1000)
    silent = [t for t, snap in expected.items() if f"{MINE}_01MN0001_T0004" not in snap and t > first_minute]
    silence = (START + timedelta(minutes=70)).timestamp() * 1000, (START + timedelta(minutes=90)).timestamp() * 1000
    assert silent and all(silence[0] < t < silence[1] + 300_000 for t in silent)


def test_files_parse_cleanly_and_report_the_episode(registry: Registry) -> None:
    end = START + timedelta(hours=2)
    options = FileOptions(encoding="gbk", newline="\r\n")
    files = list(MineFiles(World(registry, 3, START, end, scenario(registry)), MINE, options).files())
    kinds: dict[str, int] = defaultdict(int)
    abnormal = []
    for name, data, _ in files:
        parsed = parse_file(name, data, encoding="gbk")
        assert parsed.errors == [], name
        kinds[parsed.type] += 1
        if parsed.type == "YCBJ":
            abnormal.extend(parsed.records)
    assert kinds["CDDY"] == kinds["FZDY"] == 1
    assert kinds["CDSS"] == 720  # every 10 s from 00:00:10 to 02:00:00 (the run is 00:00:03 to 02:00:03)
    assert kinds["FZSS"] == 120 and kinds["TJSJ"] == 24
    # The methane rise: an alarm (001) and a power-off (002) episode, each reported at its start and end.
    codes = sorted((r.abnormal_code, r.end is None) for r in abnormal if r.point == f"{MINE}_01MN0001_T0003")
    assert codes == [("001", False), ("001", True), ("002", False), ("002", True)]
    ended = next(r for r in abnormal if r.abnormal_code == "002" and r.end is not None)
    assert ended.max == 1.8 and ended.start < ended.end <= ended.data_time


def test_mqtt_snapshots_carry_the_same_readings(registry: Registry) -> None:
    end = START + timedelta(minutes=30)
    w = World(registry, 3, START, end)
    from_files = {(r.point, t.ts_ms, r.value, r.status) for t in MineFiles(w, MINE).ticks() for r in t.cdss}
    import msgspec

    from_mqtt = {(i["point"], i["ts"], i["value"], i["status"]) for m in snapshot_messages(MineFiles(w, MINE), "p/")
                 if not m.topic.endswith("/stations") for i in msgspec.json.decode(m.payload)}
    assert from_files == from_mqtt and len(from_files) > 5_000


def test_a_redefinition_is_uploaded_as_a_cddy_at_the_next_tick(registry: Registry) -> None:
    point, other = f"{MINE}_01MN0001_T0003", f"{MINE}_01MN0001_T0004"
    changes = [
        Redefinition(at=START + timedelta(minutes=5, seconds=2), point=point,
                     thresholds=Thresholds(alarm_hi=0.8, clear_hi=0.7, poweroff_hi=1.2, restore_hi=0.8)),
        # Two changes between the same two uploads: one CDDY, each point with its own time.
        Redefinition(at=START + timedelta(minutes=9, seconds=51), point=point, thresholds=Thresholds(alarm_hi=0.9)),
        Redefinition(at=START + timedelta(minutes=9, seconds=55), point=other, thresholds=Thresholds(alarm_hi=0.7)),
    ]
    w = World(registry, 3, START, START + timedelta(minutes=15))
    cddy = [(name, ts, parse_file(name, data)) for name, data, ts in MineFiles(w, MINE, redefinitions=changes).files()
            if "_CDDY_" in name]
    # At the start (00:00:03), then at the first ticks after the changes: 00:05:10 and 00:10:00.
    day = START.replace(second=0)
    assert [ts for _, ts, _ in cddy] == [int(t.timestamp() * 1000) for t in (
        START, day + timedelta(minutes=5, seconds=10), day + timedelta(minutes=10))]
    first, changed, both = (p for _, _, p in cddy)
    assert all(p.errors == [] for p in (first, changed, both))
    assert len(first.records) == len(changed.records) == len(both.records) == len(registry.mines[0].points)

    def of(parsed: object, code: str) -> tuple[object, ...]:
        r = next(x for x in parsed.records if x.point == code)  # type: ignore[attr-defined]
        return (r.alarm_upper, r.clear_upper, r.power_off_upper, r.restore_upper, r.data_time)

    base = registry.mines[0].points
    t0 = next(p for p in base if p.code == point).effective_thresholds()
    assert of(first, point) == (t0.alarm_hi, t0.clear_hi, t0.poweroff_hi, t0.restore_hi, START)
    assert of(changed, point) == (0.8, 0.7, 1.2, 0.8, START + timedelta(minutes=5, seconds=2))
    assert of(both, point) == (0.9, None, None, None, START + timedelta(minutes=9, seconds=51))
    assert of(both, other)[0] == 0.7 and of(both, other)[4] == START + timedelta(minutes=9, seconds=55)
    # The unchanged points are restated as they were.
    third = f"{MINE}_01MN0001_T0005"
    assert of(changed, third)[:4] == of(first, third)[:4]


def test_redefinitions_are_checked() -> None:
    reg, _ = load_registry(SAMPLE_REGISTRY)
    w = World(single_mine(reg, MINE), 3, START, START + timedelta(minutes=1))
    with pytest.raises(SimulatorError, match="not a point of mine"):
        MineFiles(w, MINE, redefinitions=[Redefinition(at=START, point="nope", thresholds=Thresholds())])
    r = parse_redefinition(f"2024-05-14T09:00:00+08:00 {MINE}_01MN0001_T0003 alarm_hi=0.8,poweroff_hi=1.2")
    assert (r.at, r.thresholds.alarm_hi, r.thresholds.poweroff_hi) == (datetime(2024, 5, 14, 1, tzinfo=UTC), 0.8, 1.2)
    for bad in ("2024-05-14T09:00:00 p alarm_hi=1", "2024-05-14T09:00:00+08:00 p alarm=1", "just two"):
        with pytest.raises(SimulatorError, match="--redefine"):
            parse_redefinition(bad)
