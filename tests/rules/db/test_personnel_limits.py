"""The national upper bounds of a mine's underground head count (rules.md §7: 850 per shift for
disaster-severe mines, 450 otherwise), through the rules worker: the bound caps an approved
count above it, and stands in for a missing one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import yaml

from minewatch.clock import FrozenClock
from minewatch.errors import ConfigError
from minewatch.registry import load_registry
from minewatch.timeutil import from_ns
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import MIN, new_db
from tests.rules.db.test_personnel_worker import T0, brief, insert_cards, iso, live

pytestmark = pytest.mark.integration
MINE = "149900000041"
SHAFT, ROAD = f"{MINE}S0001", f"{MINE}S0002"


def registry(path: Path, approved: int | None, severe: bool | None, cards: int) -> Path:
    mine: dict[str, object] = {
        "code": MINE, "name": "定员上限", "county": "149901", "city": "149900", "province": "149900",
        "stations": [{"code": SHAFT}, {"code": ROAD}],
        "areas": [{"code": "SH", "stations": [SHAFT], "shaft": True}, {"code": "RD", "stations": [ROAD]}],
        "cards": [{"code": f"N{k:04d}"} for k in range(cards)]}
    if approved is not None:
        mine["approved_underground"] = approved
    if severe is not None:
        mine["disaster_severe"] = severe
    path.write_text(yaml.safe_dump({"version": 1, "regions": [
        {"code": "149900", "name": "c", "level": "city"},
        {"code": "149901", "name": "x", "level": "county", "parent": "149900"}], "mines": [mine]}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("approved", "severe", "present", "limit"), [
    (None, None, 451, 450),  # no approved count: the national bound of a mine that is not disaster-severe
    (None, None, 450, None),  # at the bound: nothing
    (600, False, 451, 450),  # an approved count above the bound is capped
    (600, True, 601, 600),  # a disaster-severe mine: its approved 600 is under 850
    (None, True, 851, 850),
])
def test_the_national_bound_caps_the_mines_limit(pg_dsn: str, tmp_path: Path, approved: int | None,
                                                 severe: bool | None, present: int, limit: int | None) -> None:
    async def run() -> None:
        dsn = await new_db(pg_dsn, registry(tmp_path / "r.yaml", approved, severe, present))
        try:
            conn = await asyncpg.connect(dsn)
            try:
                await insert_cards(conn, [r for k in range(present) for r in (
                    (f"N{k:04d}", T0 + k * 100_000_000, ROAD), (f"N{k:04d}", T0 + 10 * MIN, SHAFT))])
            finally:
                await conn.close()
            await RuleWorker(dsn, builtin_pack("default"), clock=FrozenClock(from_ns(T0 + 20 * MIN))).run(burst=True)
            found = await live(dsn, ["over_capacity"])
            if limit is None:
                assert found == {}
                return
            last = T0 + (present - 1) * 100_000_000  # the card that takes the count over the limit
            assert brief(found) == {("over_capacity", MINE, iso(last), iso(T0 + 10 * MIN), "warning")}
            assert f'"limit": {limit}' in found[("over_capacity", MINE, iso(last))]["evidence"]
        finally:
            await _drop_db(pg_dsn, dsn)

    asyncio.run(run())


def test_an_outburst_mine_is_disaster_severe_unless_the_registry_says_otherwise(tmp_path: Path) -> None:
    path = registry(tmp_path / "r.yaml", None, None, 1)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["mines"][0]["gas_class"] = "outburst"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_registry(path)[0].mines[0].severe is True
    data["mines"][0]["disaster_severe"] = False
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_registry(path)[0].mines[0].severe is False
    data["mines"][0]["disaster_severe"] = "sometimes"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="disaster_severe"):
        load_registry(path)
