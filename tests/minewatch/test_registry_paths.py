"""The registry file and CDDY definitions are one registry: the same points defined either way
store the same threshold versions and judge the same readings into the same episodes.

Property test (hypothesis): random points (methane, CO, oxygen), each with its own ordered
thresholds or none (the catalogue default), and optionally a change at a later time; once as
a YAML registry loaded twice (the change with `thresholds_effective_from`), once as two CDDY
files (the change by data time). Then the rules' episode kernel runs over random readings with
the versions each path stored.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minewatch.db.registry_store import sync_registry
from minewatch.registry import load_registry
from minewatch.timeutil import to_ns
from rules.episodes import Episodes, find_episodes_by_version
from rules.load import load_points, load_versions
from tests.conftest import _create_db, _drop_db
from tests.ingest.files_db.helpers import NOW, body, ingest, name

pytestmark = pytest.mark.integration

T1 = "2024-05-14 08:00:00"  # local (Asia/Shanghai): the first definition
T2 = "2024-05-14 12:00:00"  # local: the change
T2_UTC = datetime(2024, 5, 14, 4, tzinfo=UTC)
# (sensor type, unit, range high, value grid step): methane %CH4, CO ppm, oxygen %
KINDS = {"methane": ("0001", "%CH4", 4.0), "co": ("0004", "ppm", 100.0), "o2": ("0012", "%", 25.0)}
FIELDS = ("alarm_hi", "clear_hi", "poweroff_hi", "restore_hi", "alarm_lo", "clear_lo", "poweroff_lo", "restore_lo")
_mines = itertools.count(1)


@dataclass(frozen=True)
class PointDef:
    kind: str
    first: dict[str, float] | None  # own thresholds, or None: the catalogue default
    second: dict[str, float] | None  # from T2
    values: tuple[float, ...]  # one reading a minute from T2 - 20 min


def _opt(draw: st.DrawFn, value: float) -> float | None:
    return value if draw(st.booleans()) else None


@st.composite
def upper(draw: st.DrawFn, lo: int, hi: int) -> dict[str, float]:
    """Ordered upper-side thresholds in hundredths (exact in a CDDY file's two decimals)."""
    a = draw(st.integers(lo, hi))
    p = a + draw(st.integers(0, 60))
    t = {"alarm_hi": a / 100, "clear_hi": _opt(draw, (a - draw(st.integers(0, 20))) / 100),
         "poweroff_hi": _opt(draw, p / 100), "restore_hi": _opt(draw, (a - draw(st.integers(0, 20))) / 100)}
    return {k: v for k, v in t.items() if v is not None}


@st.composite
def lower(draw: st.DrawFn) -> dict[str, float]:
    """Ordered lower-side (oxygen) thresholds."""
    a = draw(st.integers(1850, 2050))
    t = {"alarm_lo": a / 100, "clear_lo": _opt(draw, (a + draw(st.integers(0, 50))) / 100),
         "poweroff_lo": _opt(draw, (a - draw(st.integers(0, 100))) / 100),
         "restore_lo": _opt(draw, (a + draw(st.integers(0, 50))) / 100)}
    return {k: v for k, v in t.items() if v is not None}


@st.composite
def point_defs(draw: st.DrawFn) -> PointDef:
    kind = draw(st.sampled_from(sorted(KINDS)))
    sets = {"methane": upper(30, 200), "co": upper(1000, 4000), "o2": lower()}[kind]
    first = draw(st.none() | sets)
    second = draw(st.none() | sets) if draw(st.booleans()) else first
    grid = {"methane": st.integers(0, 300).map(lambda v: v / 100), "co": st.integers(0, 5000).map(lambda v: v / 100),
            "o2": st.integers(1700, 2200).map(lambda v: v / 100)}[kind]
    values = tuple(draw(st.lists(grid, min_size=1, max_size=40)))
    return PointDef(kind, first, second, values)


def _yaml(mine: str, cddy_mine: str, points: list[PointDef], which: str) -> dict[str, Any]:
    defs = []
    for i, p in enumerate(points):
        sensor, unit, high = KINDS[p.kind]
        own = p.first if which == "first" else p.second
        d: dict[str, Any] = {"code": f"{mine}01MN{sensor}T01{i:02d}", "station": f"{mine}00101", "sensor_type": sensor,
                             "unit": unit, "range_low": 0.0, "range_high": high}
        if own is not None:
            d["thresholds"] = own
        if which == "second":
            d["thresholds_effective_from"] = "2024-05-14T12:00:00+08:00"
        defs.append(d)
    region = {"county": "140121", "city": "140100", "province": "140000"}
    return {"mines": [
        {"code": mine, "name": f"yaml {mine}", **region, "stations": [{"code": f"{mine}00101"}], "points": defs},
        {"code": cddy_mine, "name": f"cddy {cddy_mine}", **region},
    ]}


def _cddy(mine: str, points: list[PointDef], which: str) -> bytes:
    def f(t: dict[str, float] | None, key: str) -> str:
        v = None if t is None else t.get(key)
        return "" if v is None else f"{v:.2f}"

    records = []
    for i, p in enumerate(points):
        sensor, unit, high = KINDS[p.kind]
        t = p.first if which == "first" else p.second
        when = T1 if which == "first" else T2
        th = ";".join(f(t, k) for k in ("alarm_hi", "clear_hi", "alarm_lo", "clear_lo", "poweroff_hi", "restore_hi",
                                         "poweroff_lo", "restore_lo"))
        records.append(f"{mine}01MN{sensor}T01{i:02d};01;{mine}00101;{sensor};MN;{unit};{high:.2f};0.00;{th};;;"
                       f"测点{i};;;;;{when}")
    return body(*records, mine=mine, upload=when)


async def _stored(conn: asyncpg.Connection, mine: str) -> tuple[list[tuple[Any, ...]], Any, Any]:
    mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", mine)
    points = await load_points(conn, mine_id)
    versions = await load_versions(conn, points)
    rows = [(points.codes[int(pi)][len(mine):], int(ef), versions.values(k))
            for k, (pi, ef) in enumerate(zip(versions.point_idx, versions.effective_from, strict=True))]
    return rows, points, versions


def _episodes(points: Any, versions: Any, defs: list[PointDef]) -> Episodes:
    start = to_ns(T2_UTC - timedelta(minutes=20))
    idx = np.concatenate([np.full(len(d.values), i, np.int64) for i, d in enumerate(defs)])
    ts = np.concatenate([start + np.arange(len(d.values), dtype=np.int64) * 60_000_000_000 for d in defs])
    vals = np.concatenate([np.array(d.values, np.float64) for d in defs])
    return find_episodes_by_version(idx, ts, vals, np.zeros(len(idx), np.int16), table=versions.table,
                                    version_point=versions.point_idx, version_from=versions.effective_from,
                                    max_gap_ns=points.max_gap_ns[idx], lower_by_point=versions.lower_by_point)


@pytest.fixture(scope="module")
def empty_db(pg_dsn: str) -> Iterator[str]:
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(defs=st.lists(point_defs(), min_size=1, max_size=4))
def test_yaml_and_cddy_judge_the_same_readings_identically(empty_db: str, tmp_path: Path,
                                                          defs: list[PointDef]) -> None:
    n = next(_mines)
    yaml_mine, cddy_mine = f"1497{n:08d}", f"1496{n:08d}"

    async def go() -> None:
        conn = await asyncpg.connect(empty_db)
        try:
            for which in ("first", "second"):
                path = tmp_path / f"{yaml_mine}_{which}.yaml"
                path.write_text(yaml.safe_dump(_yaml(yaml_mine, cddy_mine, defs, which), allow_unicode=True),
                                encoding="utf-8")
                reg, checksum = load_registry(path)
                await sync_registry(conn, reg, checksum=checksum, source=which, now=NOW)
            for which in ("first", "second"):
                summary = await ingest(empty_db, name("CDDY", mine=cddy_mine), _cddy(cddy_mine, defs, which))
                assert summary.state == "done" and summary.stored == len(defs), summary
            by_yaml, y_points, y_versions = await _stored(conn, yaml_mine)
            by_cddy, c_points, c_versions = await _stored(conn, cddy_mine)
        finally:
            await conn.close()
        # the same thresholds per version, from the same times
        assert by_yaml == by_cddy
        assert [c[len(yaml_mine):] for c in y_points.codes] == [c[len(cddy_mine):] for c in c_points.codes]
        assert len(y_points) == len(defs)
        # the same episodes from the same readings
        ey, ec = _episodes(y_points, y_versions, defs), _episodes(c_points, c_versions, defs)
        for field in ("point_idx", "start", "end", "peak", "peak_ts", "level", "version", "end_reason"):
            assert np.array_equal(getattr(ey, field), getattr(ec, field)), field

    asyncio.run(go())
