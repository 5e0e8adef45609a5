"""Registry: validation names file, entry and problem; loading is idempotent; thresholds are versioned."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import yaml

from minewatch.db.registry_store import SINCE_FOREVER, sync_registry
from minewatch.errors import ConfigError
from minewatch.registry import METHANE_DEFAULTS, Thresholds, default_thresholds, load_registry
from tests.conftest import SAMPLE_REGISTRY


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "reg.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def sample() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(SAMPLE_REGISTRY.read_text(encoding="utf-8"))


def test_sample_registry_has_what_the_simulators_and_tests_need() -> None:
    reg, checksum = load_registry(SAMPLE_REGISTRY)
    coal = [m for m in reg.mines if m.kind == "coal"]
    assert len(coal) == 3 and {m.kind for m in reg.mines} == {"coal", "tailings", "openpit"}
    for m in coal:
        assert 38 <= len(m.points) <= 45 and len(m.areas) == 6 and len(m.cards) == 150
        assert {p.location_type for p in m.points} >= {"T0", "T1", "T2", "heading", "heading_return", "main_return"}
        assert {p.gas for p in m.points} >= {"methane", "co", "o2", "wind_speed", "feed", "poweroff_relay"}
        assert any(r.kind == "D" for p in m.points for r in p.relations)
        assert sum(a.shaft for a in m.areas) == 1 and sum(a.restricted for a in m.areas) == 1
        assert sum(c.role == "leader" for c in m.cards) >= 3
    assert len(checksum) == 64


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["mines"][0]["points"][0].update(station="NOPE"), ["mines[0](code=140100000001)", "point 140100000001_01KG1011_T0001", "NOPE"]),
        (lambda d: d["mines"][0]["points"][1].update(value_type="XX"), ["value_type", "'MN', 'KG', 'LJ' or 'DT'"]),
        (lambda d: d["mines"][0]["cards"].append(d["mines"][1]["cards"][0]), ["card code", "twice"]),
        (lambda d: d["mines"][0].pop("county"), ["mines[0](code=140100000001).county", "Field required"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_hi": "high"}), ["thresholds.alarm_hi"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds_effective_from="2026-01-01T00:00:00"), ["offset"]),
        # thresholds out of order, per side (rules.md §1): the old repair case (clear above alarm) is refused
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_hi": 1.0, "clear_hi": 1.2}),
         ["mines[0](code=140100000001).points[2](code=", ".thresholds", "clear_hi=1.2 must be at or below alarm_hi=1.0"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_hi": 1.0, "poweroff_hi": 0.8}),
         ["points[2](code=", "alarm_hi=1.0 must be at or below poweroff_hi=0.8"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_hi": 1.0, "poweroff_hi": 1.5, "restore_hi": 1.6}),
         ["points[2](code=", "restore_hi=1.6 must be at or below poweroff_hi=1.5"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_lo": 20.0, "clear_lo": 19.5}),
         ["points[2](code=", "alarm_lo=20.0 must be at or below clear_lo=19.5"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_lo": 19.5, "poweroff_lo": 20.0}),
         ["points[2](code=", "poweroff_lo=20.0 must be at or below alarm_lo=19.5"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_hi": 1.0, "alarm_lo": 1.0}),
         ["points[2](code=", "alarm_lo=1.0 must be below alarm_hi=1.0"]),
        (lambda d: d["mines"][0]["points"][2].update(thresholds={"alarm_hi": float("nan")}),
         ["points[2](code=", "alarm_hi=nan is not a finite number"]),
        # only a coal-output counter or an on-off point can be a production signal (rules.md §7)
        (lambda d: d["mines"][0]["points"][2].update(production_signal=True),
         ["points[2](code=", "production_signal needs a coal-output counter (3001) or an equipment on-off point (1004)"]),
        # a relation naming a missing point
        (lambda d: d["mines"][0]["points"][2].update(relations=[{"kind": "D", "target": "140100000001_NOPE"}]),
         ["mines[0](code=140100000001)", "relation target '140100000001_NOPE' is not a point of this mine"]),
        # an area naming a missing face
        (lambda d: d["mines"][0]["areas"][0].update(face="99999"),
         ["mines[0](code=140100000001)", "area ", "face '99999' is not a face of this mine"]),
        # declared faces: a point's face must be one of them
        (lambda d: d["mines"][0].update(faces=[{"code": "11301"}]),
         ["mines[0](code=140100000001)", "is not a face of this mine (faces: 11301)"]),
        # units: a methane point in ppm would be judged by %CH4 defaults
        (lambda d: next(p for p in d["mines"][0]["points"] if p["sensor_type"] == "0001").update(unit="ppm"),
         ["mines[0](code=140100000001).points[", "unit 'ppm' does not fit methane"]),
    ],
)
def test_errors_name_the_file_the_entry_and_the_problem(tmp_path: Path, mutate, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    data = sample()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    text = str(err.value)
    assert str(path) in text
    for needle in expected:
        assert needle in text, text


def test_unreadable_and_non_yaml_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("mines: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_registry(bad)


def test_location_type_defaults_follow_the_catalogue() -> None:
    t0 = default_thresholds("methane", "T0")
    assert (t0.alarm_hi, t0.poweroff_hi, t0.restore_hi) == (1.0, 1.5, 1.0)
    assert default_thresholds("methane", "T2").poweroff_hi == 1.0
    assert default_thresholds("methane", "intake").alarm_hi == 0.5
    assert default_thresholds("methane", "main_return").poweroff_hi is None
    assert default_thresholds("o2", "other").alarm_lo == 20.0
    assert default_thresholds("co", "other").alarm_hi == 24.0


# rules.md §1, the methane table as written there: (alarm, power-off, restore), None for "—".
RULES_MD_METHANE = {
    "T0": (1.0, 1.5, 1.0), "T1": (1.0, 1.5, 1.0), "T2": (1.0, 1.0, 1.0), "intake": (0.5, 0.5, 0.5),
    "return_middle": (1.0, 1.0, 1.0), "shearer": (1.0, 1.5, 1.0), "heading": (1.0, 1.5, 1.0),
    "heading_return": (1.0, 1.0, 1.0), "main_return": (0.75, None, None), "chamber": (0.5, 0.5, 0.5),
}


def test_the_one_catalogue_is_rules_md() -> None:
    """Every row of rules.md §1 is in the catalogue with its values; clear is the alarm level
    (the table gives no separate clear value); the only extra rows are the intake alias and
    `other` (a point of unknown location type), and the catalogue lives in the registry alone."""
    for loc, (alarm, poweroff, restore) in RULES_MD_METHANE.items():
        t = default_thresholds("methane", loc)
        assert (t.alarm_hi, t.clear_hi, t.poweroff_hi, t.restore_hi) == (alarm, alarm, poweroff, restore), loc
        assert t.alarm_lo is None and t.clear_lo is None
    assert set(METHANE_DEFAULTS) - set(RULES_MD_METHANE) == {"face_intake", "other"}
    assert default_thresholds("methane", "face_intake") == default_thresholds("methane", "intake")
    assert default_thresholds("co", "T0") == Thresholds(alarm_hi=24.0, clear_hi=24.0)
    assert default_thresholds("o2", "T0") == Thresholds(alarm_lo=20.0, clear_lo=20.0)
    assert default_thresholds("co2", "T0") == Thresholds(alarm_hi=0.5, clear_hi=0.5)
    assert default_thresholds("wind_speed", "other").is_empty()
    import rules
    import rules.thresholds

    assert not hasattr(rules.thresholds, "default_thresholds") and not hasattr(rules, "default_thresholds")


def test_unknown_location_type_or_gas_names_the_allowed_ones() -> None:
    """Moved from tests/rules/test_thresholds.py (the catalogue left rules/ for the registry)."""
    with pytest.raises(ValueError, match=r"'tunnel'.*allowed: T0, T1, T2, intake"):
        default_thresholds("methane", "tunnel")
    with pytest.raises(ValueError, match=r"unknown gas 'H2S'; allowed: .*co, co2"):
        default_thresholds("H2S", "other")


def test_catalogue_defaults_in_kernel_terms() -> None:
    """Moved from tests/rules/test_thresholds.py::test_methane_defaults_by_location_type: the
    registry's defaults as the kernels see them (NaN where absent; oxygen a lower-limit set)."""
    import math

    from rules.thresholds import ThresholdSet

    def kernel(t: Thresholds) -> ThresholdSet:
        return ThresholdSet(**{k: math.nan if v is None else v for k, v in t.as_dict().items()})

    t0 = kernel(default_thresholds("methane", "T0"))
    assert (t0.alarm_hi, t0.poweroff_hi, t0.restore_hi) == (1.0, 1.5, 1.0)
    main = kernel(default_thresholds("methane", "main_return"))
    assert main.alarm_hi == 0.75 and math.isnan(main.poweroff_hi)
    assert kernel(default_thresholds("methane", "intake")).poweroff_hi == 0.5
    assert kernel(default_thresholds("co", "other")).alarm_hi == 24.0
    o2 = kernel(default_thresholds("o2", "other"))
    assert o2.alarm_lo == 20.0 and o2.lower and not kernel(default_thresholds("co2", "other")).lower
    assert kernel(default_thresholds("co2", "other")).alarm_hi == 0.5


def test_thresholds_in_order_are_accepted_at_the_edges() -> None:
    """Equal levels are in order (T2: alarm = power-off = restore); so is a lone side."""
    Thresholds(alarm_hi=1.0, clear_hi=1.0, poweroff_hi=1.0, restore_hi=1.0)
    Thresholds(alarm_lo=20.0, clear_lo=20.0, poweroff_lo=20.0, restore_lo=20.0)
    Thresholds(alarm_hi=0.8, clear_hi=0.7, poweroff_hi=1.2, restore_hi=0.8, alarm_lo=0.0)


@pytest.mark.integration
def test_reload_is_idempotent_and_threshold_changes_are_versioned(fresh_db: str, tmp_path: Path) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            reg, checksum = load_registry(SAMPLE_REGISTRY)
            t1 = datetime(2026, 11, 1, tzinfo=UTC)
            again = await sync_registry(conn, reg, checksum=checksum, source="test", now=t1)
            assert again.threshold_versions_added == 0  # the fixture already loaded this file
            before = await conn.fetch("SELECT * FROM points ORDER BY id")
            # change one point's thresholds
            data = sample()
            point = data["mines"][0]["points"][2]
            point["thresholds"] = {"alarm_hi": 0.8, "clear_hi": 0.8, "poweroff_hi": 1.2, "restore_hi": 0.8}
            reg2, c2 = load_registry(write(tmp_path, data))
            t2 = datetime(2026, 11, 20, 8, tzinfo=UTC)
            s2 = await sync_registry(conn, reg2, checksum=c2, source="test", now=t2)
            assert s2.threshold_versions_added == 1
            versions = await conn.fetch(
                "SELECT effective_from, alarm_hi FROM point_thresholds t JOIN points p ON p.id = t.point_id "
                "WHERE p.code = $1 ORDER BY effective_from", point["code"])
            assert [(v["effective_from"], v["alarm_hi"]) for v in versions] == [(SINCE_FOREVER, 1.0), (t2, 0.8)]
            after = await conn.fetch("SELECT id, code FROM points ORDER BY id")
            assert [(r["id"], r["code"]) for r in after] == [(r["id"], r["code"]) for r in before]
            # removing a point deactivates it (its history stays readable), never deletes it
            del data["mines"][0]["points"][-1]
            reg3, c3 = load_registry(write(tmp_path, data))
            s3 = await sync_registry(conn, reg3, checksum=c3, source="test", now=t2)
            assert s3.points_deactivated == 1
            assert await conn.fetchval("SELECT count(*) FROM points WHERE NOT active") == 1
        finally:
            await conn.close()
    asyncio.run(go())


@pytest.mark.integration
def test_reload_retires_only_the_registrys_own_points(fresh_db: str) -> None:
    """A point a mine defined in its upload files (CDDY) is not in the YAML; reloading the
    registry must leave it accepted. The upload path's upsert (ingest/files/registry_update)
    does not name `defined_by`, so its rows take the column's default."""
    from ingest.files.registry_update import _UPSERT_POINT

    async def go() -> None:
        conn = await asyncpg.connect(fresh_db)
        try:
            reg, checksum = load_registry(SAMPLE_REGISTRY)
            mine = reg.mines[0]
            mine_id, station_id = await conn.fetchrow(
                "SELECT m.id, s.id FROM mines m JOIN stations s ON s.mine_id = m.id WHERE m.code = $1 "
                "ORDER BY s.id LIMIT 1", mine.code)
            t = datetime(2026, 11, 20, tzinfo=UTC)
            code = f"{mine.code}_99MN9001"
            row = await conn.fetchrow(_UPSERT_POINT, mine_id, station_id, code, "CH4", "MN", "methane", "%CH4",
                                      0.0, 40.0, "uploaded heading", None, None, None, t)
            assert row["created"]
            assert await conn.fetchval("SELECT defined_by FROM points WHERE code = $1", code) == "upload"
            summary = await sync_registry(conn, reg, checksum=checksum, source="test", now=t)
            assert summary.points_deactivated == 0
            assert await conn.fetchval("SELECT active FROM points WHERE code = $1", code) is True
            # and the reload did not claim it for the registry
            assert await conn.fetchval("SELECT count(*) FROM points WHERE defined_by = 'upload'") == 1
        finally:
            await conn.close()
    asyncio.run(go())


def test_the_documented_example_loads(tmp_path: Path) -> None:
    """docs/registry.md's example is a valid registry, judged as the page says."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "registry.md").read_text(encoding="utf-8")
    example = text.split("### Example\n\n```yaml\n", 1)[1].split("\n```", 1)[0]
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    reg, _ = load_registry(path)
    upper_corner, face, _relay, oxygen = reg.mines[0].points
    assert upper_corner.effective_thresholds() == default_thresholds("methane", "T0")
    assert face.effective_thresholds().alarm_hi == 0.9
    assert oxygen.effective_thresholds().alarm_lo == 20.0


def test_one_owner_of_the_lookup_and_the_version_writer() -> None:
    """MQTT ingest, file ingest and the registry file use the registry package's functions,
    not copies of their own (a copy drifts until the two disagree)."""
    import ingest.files.registry_update as files_registry
    import ingest.service as mqtt_service
    import minewatch.db.registry_store as yaml_store
    import minewatch.registry.db as owner

    assert mqtt_service.load_lookup is owner.load_lookup
    assert files_registry.load_lookup is owner.load_lookup
    assert files_registry.version_thresholds is owner.version_thresholds
    assert yaml_store.version_thresholds is owner.version_thresholds
    assert yaml_store.SINCE_FOREVER is owner.SINCE_FOREVER
