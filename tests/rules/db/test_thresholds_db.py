"""Thresholds through the registry and the worker: a point's own set wins, else its location type's.

The registry loader writes each point's effective set into `point_thresholds` (its own, or
the location-type default of rules.md §1); the worker judges every reading by the version
in force at its time. Three points of mine 1, the same readings, three outcomes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import yaml

from rules.errors import RulesError
from rules.load import load_points, load_versions
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import MIN, REGISTRY, insert_readings, new_db, series
from tests.rules.db.test_reevaluate import DAY, T

pytestmark = pytest.mark.integration
M1 = "149900000001"
UPPER = f"{M1}_01MN0001_T0001"  # re-typed main_return here: default alarm 0.75, no power-off
FACE = f"{M1}_01MN0001_T0002"  # T1 with its own set: alarm 0.9, power-off 1.2
RETURN = f"{M1}_01MN0001_T0003"  # T2 default: alarm 1.0 and power-off 1.0


def registry(tmp_path: Path) -> Path:
    data: dict[str, Any] = yaml.safe_load(REGISTRY.read_text(encoding="utf-8"))
    for p in data["mines"][0]["points"]:
        if p["code"] == UPPER:
            p["location_type"] = "main_return"
        if p["code"] == FACE:
            p["thresholds"] = {"alarm_hi": 0.9, "clear_hi": 0.9, "poweroff_hi": 1.2, "restore_hi": 0.9}
            p["thresholds_effective_from"] = "2026-10-01T00:00:00+08:00"
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest_asyncio.fixture(loop_scope="function")
async def dsn(pg_dsn: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database whose registry had these location types from its first load (a later change
    of type takes effect from the time it is loaded, like any threshold version)."""
    made = await new_db(pg_dsn, registry(tmp_path))
    try:
        yield made
    finally:
        await _drop_db(pg_dsn, made)


async def test_own_thresholds_win_else_location_type_defaults(dsn: str) -> None:
    e = T + DAY + 120 * MIN
    conn = await asyncpg.connect(dsn)
    try:
        # The same rise on each point: 0.8, then 0.95, then 1.0, a minute each, then low again.
        rise = [0.3] * 20 + [0.8] * 2 + [0.95] * 2 + [1.0] * 2 + [0.3] * 20
        await insert_readings(conn, [r for code in (UPPER, FACE, RETURN) for r in series(code, e - 10 * MIN, rise)])
        await RuleWorker(dsn, builtin_pack("default")).run(burst=True)
        rows = await conn.fetch(
            "SELECT p.code, e.start_ts, e.level, e.thresholds::text AS thr FROM episodes e "
            "JOIN points p ON p.id = e.point_id ORDER BY p.code")
    finally:
        await conn.close()
    got = {r["code"]: ((r["start_ts"].timestamp() * 1e9 - e) / MIN, r["level"]) for r in rows}
    assert got == {
        UPPER: (0, "alarm"),  # 0.8 >= 0.75 (main return default), no power-off level there
        FACE: (1, "alarm"),  # 0.95 >= its own 0.9; 1.0 stays under its own power-off 1.2
        RETURN: (2, "power_off"),  # 1.0 >= 1.0, which is also a T2 return airway's power-off
    }, got



class _Undo(Exception):
    """Raised to roll one case's update back."""


async def test_a_stored_version_out_of_order_is_refused_not_repaired(dsn: str) -> None:
    """The case rules/load.py used to repair silently (a clear level above the alarm read as no
    clear level; a power-off level inside the alarm band dropped) now stops with an error naming
    the mine, the point and the version. The registry refuses such sets at load, so one can only
    be in the table if written around it."""
    conn = await asyncpg.connect(dsn)
    try:
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", M1)
        points = await load_points(conn, mine_id)
        assert len((await load_versions(conn, points)).table) > 0  # as loaded: in order
        for bad in ("clear_hi = alarm_hi + 0.2", "poweroff_hi = alarm_hi - 0.2"):
            with pytest.raises(_Undo):
                async with conn.transaction():
                    await conn.execute(
                        f"UPDATE point_thresholds t SET {bad} FROM points p "  # the texts are ours
                        "WHERE p.id = t.point_id AND p.code = $1", RETURN)
                    with pytest.raises(RulesError, match=rf"mine {M1}, point {RETURN}: threshold version from "
                                                         r".* is out of order"):
                        await load_versions(conn, points)
                    raise _Undo
        assert len((await load_versions(conn, points)).table) > 0
    finally:
        await conn.close()
