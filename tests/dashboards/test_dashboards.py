"""The Grafana dashboards: valid, wired to the provisioned data sources, and every query works on a real database."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import itertools
import re
import subprocess
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.dashboards import grafana
from tests.dashboards.promtool import promtool
from tests.dashboards.seed import (
    AREA_STATION,
    CALM_POINTS,
    CO2_POINT,
    CO_POINT,
    COUNTY,
    HOT_POINT,
    MAIN_RETURN_POINT,
    MINE,
    NEW_ALARM,
    NEW_POWER_OFF,
    NEW_THRESHOLDS_AGO,
    O2_POINT,
    PEOPLE_IN_A01,
    PROVINCE,
    QUIET_MINE,
    RETHRESHOLDED_POINT,
    RETURN_POINT,
    SILENT_POINT,
    Seeded,
    seed,
)

DASHBOARDS = grafana.load_dashboards()
READER_SQL = grafana.ROOT / "deploy" / "postgres" / "grafana_reader.sql"
# Modules whose `*Metrics(registry)` classes define the metric families the dashboards may use.
METRICS_MODULES = ("ingest.metrics", "rules.metrics", "alerting.metrics", "api.metrics")
# LISTEN / NOTIFY channel names that look like metric names in the docs.
NOTIFY_CHANNELS = frozenset({"minewatch_dirty", "minewatch_findings", "minewatch_case_actions", "minewatch_outbox"})
T = TypeVar("T")
SHORT = timedelta(hours=6)
CHOSEN = {"mine": MINE, "region": COUNTY, "province": PROVINCE}  # single-value variables' choice
LONG = timedelta(days=3)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# --- structure ---------------------------------------------------------------------------------


def test_the_four_dashboards_exist_with_unique_uids() -> None:
    assert set(DASHBOARDS) == {"control-room.json", "regulator.json", "operations.json", "province.json"}
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert all(uids) and len(set(uids)) == len(uids)
    for d in DASHBOARDS.values():
        assert d["schemaVersion"] >= 36  # Grafana 10+
        assert d["title"] and d.get("id") is None  # an id would pin the dashboard to one Grafana database


def test_every_query_uses_a_provisioned_data_source() -> None:
    provisioned = grafana.provisioned_datasources()
    assert {ds["name"] for ds in provisioned.values()} == {"Minewatch DB", "Minewatch Prometheus"}
    seen: set[str] = set()
    for name, d in DASHBOARDS.items():
        refs = [(f"variable {v['name']}", v["datasource"]) for v in grafana.variables(d) if v.get("type") == "query"]
        for p in grafana.panels(d):
            if p["type"] == "row":
                continue
            assert p.get("targets"), f"{name}: panel {p['title']!r} has no query"
            refs += [(f"panel {p['title']!r}", t.get("datasource") or p.get("datasource")) for t in p["targets"]]
        for where, ds in refs:
            assert ds and ds.get("uid") in provisioned, f"{name} {where}: data source {ds} is not provisioned"
            assert ds["type"] == provisioned[ds["uid"]]["type"], f"{name} {where}: type {ds['type']}"
            seen.add(ds["uid"])
    assert seen == set(provisioned)


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    for name, d in DASHBOARDS.items():
        ps = list(grafana.panels(d))
        assert len({p["id"] for p in ps}) == len(ps), name
        cells: dict[tuple[int, int], str] = {}
        for p in ps:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24, f"{name}: {p['title']!r} is wider than the grid"
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {p['title']!r} overlaps {cells[(x, y)]!r}"
                    cells[(x, y)] = p["title"]


def test_variables_mine_and_point() -> None:
    room = {v["name"]: v for v in grafana.variables(DASHBOARDS["control-room.json"])}
    assert list(room) == ["mine", "point"]
    assert not room["mine"]["multi"] and "FROM mines" in room["mine"]["query"]
    assert room["point"]["multi"] and room["point"]["includeAll"] and "'$mine'" in room["point"]["query"]
    regulator = {v["name"]: v for v in grafana.variables(DASHBOARDS["regulator.json"])}
    assert list(regulator) == ["region", "mine"] and "'$region'" in regulator["mine"]["query"]
    province = {v["name"]: v for v in grafana.variables(DASHBOARDS["province.json"])}
    assert list(province) == ["province"] and "level = 'province'" in province["province"]["query"]


def test_no_fixed_methane_threshold_lines() -> None:
    """Thresholds differ by location type (rules.md §1): the gas charts draw each point's own, not 1.0 / 1.5."""
    room = DASHBOARDS["control-room.json"]
    for title in ("Methane by point", "Carbon monoxide", "Oxygen", "Carbon dioxide"):
        (p,) = [p for p in grafana.panels(room) if p["title"] == title]
        defaults = p["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "off", title
        assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None], title
        assert "point_thresholds" in p["targets"][0]["rawSql"], title
        styled = {o["matcher"]["options"] for o in p["fieldConfig"]["overrides"]}
        assert styled == {"/ alarm$/", "/ power-off$/", "/ clear$/"}, title


def test_dashboard_provider_points_at_the_dashboard_directory() -> None:
    text = (grafana.PROVISIONING_DIR / "dashboards" / "minewatch.yaml").read_text(encoding="utf-8")
    (provider,) = yaml.safe_load(text)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].endswith("/dashboards/json")


def test_provisioning_environment_is_documented() -> None:
    text = "\n".join(line.split("#")[0] for p in grafana.PROVISIONING_DIR.rglob("*.yaml")
                     for line in p.read_text(encoding="utf-8").splitlines())
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
    example = (grafana.ROOT / "deploy" / "grafana" / "grafana.env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.M))
    assert used and used <= documented, f"not in deploy/grafana/grafana.env.example: {used - documented}"


def test_macro_and_variable_expansion_follows_grafana() -> None:
    """The emulation the SQL tests rely on produces Grafana's documented forms."""
    t0 = datetime.fromisoformat("2026-11-23T00:00:00+00:00")
    tr = grafana.TimeRange(t0, t0 + timedelta(hours=6), timedelta(minutes=1))
    sql = ("SELECT $__timeGroupAlias(ts, $__interval), 1 FROM t WHERE $__timeFilter(ts) AND m = '$mine' "
           "AND p IN ($point) AND ${mine} <> '' AND a > $__timeFrom() AND b < $__timeTo()")
    out = grafana.expand(sql, values={"mine": "O'Brien", "point": ["a", "b'c"]},
                         multi={"mine": False, "point": True}, time_range=tr)
    assert out == ("SELECT floor(extract(epoch from ts)/60)*60 AS \"time\", 1 FROM t "
                   "WHERE ts BETWEEN '2026-11-23T00:00:00Z' AND '2026-11-23T06:00:00Z' AND m = 'O''Brien' "
                   "AND p IN ('a','b''c') AND O''Brien <> '' AND a > '2026-11-23T00:00:00Z' "
                   "AND b < '2026-11-23T06:00:00Z'")
    with pytest.raises(ValueError, match="unexpanded"):
        grafana.expand("SELECT $region", values={}, multi={}, time_range=tr)
    with pytest.raises(ValueError, match="not emulated"):
        grafana.expand("SELECT $__unixEpochFilter(t)", values={}, multi={}, time_range=tr)


# --- Prometheus ----------------------------------------------------------------------------------


def _exposed_metric_names() -> set[str]:
    """Sample names the metric classes expose (counter x -> x_total, histogram x -> x_bucket, ...)."""
    registry = CollectorRegistry()
    for module_name in METRICS_MODULES:
        module = importlib.import_module(module_name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if name.endswith("Metrics") and cls.__module__ == module_name:
                cls(registry)
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("", "_count", "_sum", "_created"), "info": ("_info",)}
    return {family.name + s for family in registry.collect() for s in suffixes.get(family.type, ("",))}


def _promql() -> Iterator[tuple[str, str, str]]:
    for name, d in DASHBOARDS.items():
        for p in grafana.panels(d):
            for t in p.get("targets", []):
                if "expr" in t:
                    yield name, p["title"], t["expr"]


def test_prometheus_queries_use_metrics_the_code_exposes() -> None:
    exposed = _exposed_metric_names()
    assert {"minewatch_ingest_items_stored_total", "minewatch_alerting_notifications_total",
            "minewatch_api_request_seconds_bucket"} <= exposed  # the discovery itself works
    exprs = list(_promql())
    assert exprs
    for name, title, expr in exprs:
        for metric in re.findall(r"\bminewatch_\w+", expr):
            assert metric in exposed, f"{name} {title!r}: no metric {metric} in {', '.join(METRICS_MODULES)}"


def test_documented_metric_names_exist() -> None:
    exposed = _exposed_metric_names()
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exposed}
    for path in (grafana.ROOT / "docs" / "operations.md", *sorted((grafana.ROOT / "deploy").rglob("*.yml"))):
        for metric in set(re.findall(r"\bminewatch_[a-z0-9_]+[a-z0-9]", path.read_text(encoding="utf-8"))):
            if metric in NOTIFY_CHANNELS:
                continue
            assert metric in exposed or metric in families, f"{path.name}: unknown metric {metric}"


def test_promql_parses(tmp_path: Path) -> None:
    tool = promtool()
    rules = [{"record": f"panel_{i}", "expr": expr.replace("$__rate_interval", "1m")}
             for i, (_, _, expr) in enumerate(_promql())]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    res = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


# --- SQL against a migrated database --------------------------------------------------------------


# Columns a query may need that another part of issue 16 adds (migration 0060): queries that use
# them are left out, and their tests skip, only while the database has no such columns.
COORDINATES = ("longitude", "latitude")
NO_COORDINATES = "mines.longitude / mines.latitude do not exist yet (migration 0060_mine_coordinates)"


async def _mines_have_coordinates(conn: asyncpg.Connection) -> bool:
    n = await conn.fetchval("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                            "AND table_name = 'mines' AND column_name = ANY($1::text[])", list(COORDINATES))
    return bool(n == len(COORDINATES))


@dataclass
class Results:
    """Rows of every query of one dashboard, by where it sits (`panel 'Title' A`, `variable mine`)."""

    rows: dict[str, list[dict[str, Any]]]
    skipped: list[str]

    def panel(self, title: str, ref: str = "A") -> list[dict[str, Any]]:
        return self.rows[f"panel {title!r} {ref}"]


async def run_dashboard(conn: asyncpg.Connection, name: str, time_range: grafana.TimeRange,
                        chosen: dict[str, str]) -> Results:
    """Resolve the variables as Grafana does (their own queries, in order; multi-value ones take All)
    and run every SQL query of the dashboard, read-only."""
    dashboard = DASHBOARDS[name]
    multi = {v["name"]: bool(v.get("multi") or v.get("includeAll")) for v in grafana.variables(dashboard)}
    values: dict[str, str | list[str]] = {}
    out: dict[str, list[dict[str, Any]]] = {}
    skipped: list[str] = []
    coordinates = await _mines_have_coordinates(conn)
    async with conn.transaction(readonly=True):
        for var in grafana.variables(dashboard):
            sql = grafana.expand(var["query"], values=values, multi=multi, time_range=time_range)
            options = [r["__value"] for r in await conn.fetch(sql)]
            assert options, f"{name}: variable {var['name']} has no options"
            if multi[var["name"]]:
                values[var["name"]] = options
            else:
                assert chosen[var["name"]] in options
                values[var["name"]] = chosen[var["name"]]
        for q in grafana.sql_queries(name, dashboard):
            if not coordinates and "m.latitude" in q.sql:
                skipped.append(q.where)
                continue
            sql = grafana.expand(q.sql, values=values, multi=multi, time_range=time_range)
            try:
                records = await conn.fetch(sql)
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{name} {q.where}: {type(exc).__name__}: {exc}\n{sql}") from exc
            out[q.where] = [dict(r) for r in records]
            if q.format == "time_series" and records:
                assert {"time", "value"} <= set(records[0].keys()), f"{name} {q.where}: needs time and value"
    return Results(out, skipped)


@pytest.fixture(scope="module")
def seeded(db: str) -> Seeded:
    async def go() -> Seeded:
        conn = await asyncpg.connect(db)
        try:
            now: datetime = await conn.fetchval("SELECT date_trunc('second', now())")
            return await seed(conn, now)
        finally:
            await conn.close()
    return run(go())


def _range(s: Seeded, span: timedelta) -> grafana.TimeRange:
    return grafana.TimeRange(s.now - span, s.now + timedelta(minutes=1), timedelta(minutes=1))


def _results(db: str, name: str, time_range: grafana.TimeRange) -> Results:
    async def go() -> Results:
        conn = await asyncpg.connect(db)
        try:
            return await run_dashboard(conn, name, time_range, CHOSEN)
        finally:
            await conn.close()
    return run(go())


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_sql_query_runs_and_returns_rows(db: str, seeded: Seeded, name: str) -> None:
    results = _results(db, name, _range(seeded, SHORT))
    assert len(results.rows) + len(results.skipped) == len(grafana.sql_queries(name, DASHBOARDS[name]))
    empty = [where for where, rows in results.rows.items() if not rows]
    assert not empty, f"{name}: no rows from {empty}"


@pytest.mark.integration
def test_control_room_shows_the_seeded_state(db: str, seeded: Seeded) -> None:
    r = _results(db, "control-room.json", _range(seeded, SHORT))
    now = {row["Point"]: row for row in r.panel("Methane now")}
    assert (now[HOT_POINT]["State"], now[HOT_POINT]["Value"], now[HOT_POINT]["Alarm at"]) == ("alarm", 1.2, 1.0)
    assert now[CALM_POINTS[0]]["State"] == "normal" and now[CALM_POINTS[0]]["Reporting"] == "ok"
    assert now[CALM_POINTS[1]]["Reporting"] == "calibrating"
    assert (now[SILENT_POINT]["State"], now[SILENT_POINT]["Reporting"]) == ("no_data", "silent")
    assert r.panel("Methane now")[0]["Point"] == HOT_POINT  # the worst state first

    (event,) = r.panel("Open exceedance events")
    assert (event["Event"], event["Point"], event["Episode level"]) == (seeded.open_event, HOT_POINT, "alarm")
    (order,) = r.panel("Shutdown order not lifted")
    assert (order["Order"], order["Trigger events"], order["Attached events"]) == (
        seeded.order, str(seeded.closed_event), str(seeded.open_event))
    assert 0 < order["Until minimum end"] < 72 * 3600
    assert r.panel("Shutdown order")[0]["Orders not lifted"] == 1

    cases = {c["Case"]: c for c in r.panel("Open cases")}
    assert set(cases) == {seeded.overdue_case, seeded.unacknowledged_case}
    assert cases[seeded.overdue_case]["Past deadline"] is True
    assert cases[seeded.unacknowledged_case]["Past deadline"] is False
    assert r.panel("Exceedances and cases")[0] == {"Open events": 1, "Open cases": 2, "Past deadline": 1}

    areas = {a["Area"].split()[0]: a for a in r.panel("Personnel underground by area")}
    # three in A01, one who just entered at the shaft; the one who left through the shaft is out
    assert areas["Whole"]["Underground"] == PEOPLE_IN_A01 + 1
    assert (areas["A01"]["Underground"], areas["A01"]["Approved"]) == (PEOPLE_IN_A01, 40)
    assert areas["A00"]["Underground"] == 1
    stations = r.panel("Outstations")
    assert (stations[0]["Station"], stations[0]["State"], stations[0]["Power"]) == (AREA_STATION, "comm_lost", "ac")  # the faulty one first


@pytest.mark.integration
def test_methane_series_uses_minute_buckets_up_to_a_day_and_hours_beyond(db: str, seeded: Seeded) -> None:
    def series(span: timedelta) -> list[dict[str, Any]]:
        rows = _results(db, "control-room.json", _range(seeded, span)).panel("Methane by point")
        return [row for row in rows if row["metric"].endswith(HOT_POINT)]

    short, long = series(SHORT), series(LONG)
    assert {(b["time"] - a["time"]).total_seconds() for a, b in itertools.pairwise(short)} == {60}
    assert {(b["time"] - a["time"]).total_seconds() % 3600 for a, b in itertools.pairwise(long)} == {0}
    assert max(row["value"] for row in short) == 1.2
    assert max(row["value"] for row in long) == 2.1  # the old peak survives the hourly bucket (max, not avg)
    # the first bucket starts at most a minute before the range; the 50 h old readings are out
    assert all(row["time"] > seeded.now - SHORT - timedelta(minutes=1) for row in short)


def _series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[datetime, float]]]:
    out: dict[str, list[tuple[datetime, float]]] = {}
    for row in rows:
        out.setdefault(row["metric"], []).append((row["time"], row["value"]))
    return out


def _line(series: dict[str, list[tuple[datetime, float]]], name: str) -> set[float]:
    return {v for _, v in series[name]}


@pytest.mark.integration
def test_methane_threshold_lines_are_each_points_own(db: str, seeded: Seeded) -> None:
    """Not fixed 1.0 / 1.5 lines: each point's thresholds by its location type, as the registry set them."""
    series = _series(_results(db, "control-room.json", _range(seeded, SHORT)).panel("Methane by point"))
    assert (_line(series, f"{HOT_POINT} alarm"), _line(series, f"{HOT_POINT} power-off")) == ({1.0}, {1.5})
    # a longwall return airway: power-off at 1.0, not the face's 1.5
    assert (_line(series, f"{RETURN_POINT} alarm"), _line(series, f"{RETURN_POINT} power-off")) == ({1.0}, {1.0})
    # an intake airway (no readings: the lines are drawn all the same)
    assert _line(series, f"{SILENT_POINT} alarm") == {0.5} and _line(series, f"{SILENT_POINT} clear") == {0.5}
    # a main return: alarm 0.75, and no power-off line at all
    assert _line(series, f"{MAIN_RETURN_POINT} alarm") == {0.75}
    assert f"{MAIN_RETURN_POINT} power-off" not in series
    # each line spans the whole range
    t0, t1 = seeded.now - SHORT, seeded.now + timedelta(minutes=1)
    assert [t for t, _ in series[f"{RETURN_POINT} alarm"]] == [t0, t1]


@pytest.mark.integration
def test_threshold_lines_follow_the_version_in_force(db: str, seeded: Seeded) -> None:
    series = _series(_results(db, "control-room.json", _range(seeded, SHORT)).panel("Methane by point"))
    changed = seeded.now - NEW_THRESHOLDS_AGO
    t0, t1 = seeded.now - SHORT, seeded.now + timedelta(minutes=1)
    assert series[f"{RETHRESHOLDED_POINT} alarm"] == [(t0, 1.0), (changed, NEW_ALARM), (t1, NEW_ALARM)]
    assert series[f"{RETHRESHOLDED_POINT} power-off"] == [(t0, 1.5), (changed, NEW_POWER_OFF), (t1, NEW_POWER_OFF)]
    # a range that ends before the change shows only the old version
    early = grafana.TimeRange(seeded.now - SHORT, changed - timedelta(minutes=10), timedelta(minutes=1))
    series = _series(_results(db, "control-room.json", early).panel("Methane by point"))
    assert _line(series, f"{RETHRESHOLDED_POINT} alarm") == {1.0}


@pytest.mark.integration
def test_co_o2_co2_charts_against_their_own_thresholds(db: str, seeded: Seeded) -> None:
    r = _results(db, "control-room.json", _range(seeded, SHORT))
    co = _series(r.panel("Carbon monoxide"))
    (co_metric,) = [m for m in co if m.endswith(CO_POINT)]
    assert max(v for _, v in co[co_metric]) == 30.0 and _line(co, f"{CO_POINT} alarm") == {24.0}
    o2 = _series(r.panel("Oxygen"))
    (o2_metric,) = [m for m in o2 if m.endswith(O2_POINT)]
    # lower is worse: the bucket keeps the dip, and the line is the lower alarm (below 20 %)
    assert min(v for _, v in o2[o2_metric]) == 19.5 and _line(o2, f"{O2_POINT} alarm") == {20.0}
    assert f"{O2_POINT} power-off" not in o2
    co2 = _series(r.panel("Carbon dioxide"))
    assert _line(co2, f"{CO2_POINT} alarm") == {0.5}
    assert all(not m.endswith(HOT_POINT) for m in co | o2 | co2)  # one gas per chart


@pytest.mark.integration
def test_personnel_head_count_over_time_and_leader(db: str, seeded: Seeded) -> None:
    # The range ends on the 5-minute grid the ticks follow, at or after now + 1 min: so the last
    # tick is past the exit read (now - 1 min) and the fresh entry (now - 2 min), wherever now
    # falls on the grid (a last tick between the two counted the leaving card too).
    grid = 300
    end = datetime.fromtimestamp(-(-(seeded.now + timedelta(minutes=1)).timestamp() // grid) * grid, UTC)
    r = _results(db, "control-room.json", grafana.TimeRange(seeded.now - SHORT, end, timedelta(minutes=1)))
    series = _series(r.panel("Head count by area"))
    (a01,) = [m for m in series if m.startswith("A01 ") and not m.endswith("approved")]
    # the reads are 5 min old: the last tick sees them, the first (6 h ago) sees nobody
    assert series[a01][0][1] == 0 and series[a01][-1][1] == PEOPLE_IN_A01
    assert _line(series, "A01 approved") == {40} and _line(series, "Whole mine approved") == {450}
    assert series["Whole mine"][-1][1] == PEOPLE_IN_A01 + 1
    ticks = [t for t, _ in series["Whole mine"]]
    assert {(b - a).total_seconds() for a, b in itertools.pairwise(ticks)} == {300}
    assert r.panel("Leader underground") == [{"Leader underground": "yes", "Leaders": 1, "Workers": 3,
                                              "Visitors": 0}]


@pytest.mark.integration
def test_regulator_shows_status_and_overdue_cases(db: str, seeded: Seeded) -> None:
    r = _results(db, "regulator.json", _range(seeded, timedelta(days=7)))
    assert r.panel("Mines by status") == [{"Normal": 2, "Warning": 0, "Under order": 1}]
    assert r.panel("Mines")[0]["Mine"] == MINE and r.panel("Mines")[0]["Status"] == "under_order"
    per_mine = {row["Mine"].split()[0]: row for row in r.panel("Exceedance events per mine")}
    assert (per_mine[MINE]["Methane, alarm"], per_mine[MINE]["Methane, power-off"]) == (1, 1)
    overdue = {row["Case"]: row["Overdue because"] for row in r.panel("Overdue cases")}
    assert overdue == {seeded.unacknowledged_case: "not acknowledged", seeded.overdue_case: "deadline passed"}
    by_state = {row["State"]: row for row in r.panel("Open cases by state and level")}
    assert (by_state["open"]["County"], by_state["rectifying"]["City"]) == (1, 1)
    assert sum(row[level] for row in by_state.values() for level in ("Mine", "County", "City", "Province")) == 2
    people = {row["Mine"]: row for row in r.panel("People underground per mine")}
    assert (people[MINE]["Underground"], people[MINE]["Approved"], people[MINE]["Leaders"]) == (PEOPLE_IN_A01 + 1,
                                                                                              450, 1)
    assert people[MINE]["Leader with workers"] is True
    assert people[QUIET_MINE]["Underground"] == 0 and people[QUIET_MINE]["Leader with workers"] is None


@pytest.mark.integration
def test_province_overview_counts_and_map(db: str, seeded: Seeded) -> None:
    r = _results(db, "province.json", _range(seeded, timedelta(days=7)))
    # the sample registry's province: three coal mines, a tailings pond and an open pit
    assert r.panel("Mines by status") == [{"Normal": 4, "Warning": 0, "Under order": 1}]
    counties = {row["County"]: row for row in r.panel("Counties")}
    (hot,) = [row for row in counties.values() if row["Under order"]]
    assert (hot["Mines"], hot["Under order"], hot["Methane events"], hot["Open cases"]) == (3, 1, 2, 2)
    if "panel 'Mines on the map' A" in r.skipped:
        pytest.skip(NO_COORDINATES)
    rows = {row["Mine"]: row for row in r.panel("Mines on the map")}
    assert (rows[MINE]["Status"], rows[MINE]["Severity"], rows[MINE]["Open events"]) == ("under_order", 2, 1)
    assert rows[QUIET_MINE]["Severity"] == 0
    assert (rows[MINE]["longitude"], rows[MINE]["latitude"]) == seeded.coordinates[MINE]
    assert set(rows) == set(seeded.coordinates)  # every mine with a position, and only those


def _reader_statements(role: str, database: str) -> list[str]:
    """deploy/postgres/grafana_reader.sql with its psql variables filled in."""
    text = "\n".join(line.split("--")[0] for line in READER_SQL.read_text(encoding="utf-8").splitlines())
    text = text.replace(':"reader"', f'"{role}"').replace(':"DBNAME"', f'"{database}"')
    return [s.strip() for s in text.split(";") if s.strip()]


@pytest.mark.integration
def test_every_query_runs_as_the_documented_read_only_role(db: str, seeded: Seeded) -> None:
    role = f"mw_grafana_{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        conn = await asyncpg.connect(db)
        try:
            statements = _reader_statements(role, db.rsplit("/", 1)[-1].split("?")[0])
            try:
                await conn.execute(statements[0])  # CREATE ROLE
            except asyncpg.InsufficientPrivilegeError:
                pytest.skip("the test database user may not create roles")
            try:
                for statement in statements[1:]:
                    await conn.execute(statement)
                await conn.execute(f'SET ROLE "{role}"')
                for name in DASHBOARDS:
                    await run_dashboard(conn, name, _range(seeded, SHORT), CHOSEN)
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetch("SELECT token_hash FROM api_tokens")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetch("SELECT target FROM notifications")
            finally:  # roles are cluster-wide: never leave one behind
                await conn.execute("RESET ROLE")
                await conn.execute(f'DROP OWNED BY "{role}"')
                await conn.execute(f'DROP ROLE "{role}"')
        finally:
            await conn.close()
    run(go())
