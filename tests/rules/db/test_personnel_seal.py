"""The electronic seal (`seal_breach`, rules.md §7) through the rules worker: production signals
under an order, and entries and signals judged before the order that covers them was written.

Registry: tests/rules/db/data/registry_personnel_signals.yaml (the personnel test mine with a
coal-output counter COAL, a shearer SHEARER and a conveyor CONV marked as production signals,
and a pump PUMP that is not). Readings and card reads are stored as the ingest stores them
(with their dirty windows); the expected findings are written out by hand.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator

import pytest

from minewatch.clock import FrozenClock
from minewatch.timeutil import from_ns
from rules import store
from rules.evaluate import OrderRow
from rules.worker import RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import DATA, MIN, Row, S, insert_readings, new_db
from tests.rules.db.test_personnel_worker import FACE, MINE, PACK, SHAFT, T0, brief, closing, conn_of, insert_cards, iso, live

pytestmark = pytest.mark.integration
H = 60 * MIN
COAL, SHEARER, CONV, PUMP = (f"{MINE}_01{k}" for k in ("LJ3001_COL", "KG1004_SHR", "KG1004_CNV", "KG1004_PMP"))
O0, O1 = T0 + 2 * H, T0 + 4 * H  # the order: active from 10:00, lifted at 12:00
GRID = [T0 + k * 5 * MIN for k in range(73)]  # 08:00 .. 14:00 every 5 min


@pytest.fixture
def signals_db(pg_dsn: str) -> Iterator[Callable[[], Awaitable[str]]]:
    made: list[str] = []

    async def create() -> str:
        made.append(await new_db(pg_dsn, DATA / "registry_personnel_signals.yaml"))
        return made[-1]

    yield create
    for dsn in made:
        asyncio.run(_drop_db(pg_dsn, dsn))


def z(t: int) -> str:
    return from_ns(t).isoformat().replace("+00:00", "Z")


def on_off(code: str, on: Callable[[int], bool]) -> list[Row]:
    return [(code, t, 1.0 if on(t) else 0.0, 0) for t in GRID]


def signal_day() -> list[Row]:
    """The shearer on from 08:00 (already on when the order starts: no breach), off 10:10,
    on again 10:20-10:40 (a breach); the conveyor switched on at 10:00:00, the order's very
    instant (a breach), until 12:30 (the span outlives the order's lifting); the counter
    rising 09:35-10:15 (from its first rise at or after 10:00: a breach until 10:20, its first
    flat reading), one more rise at 11:59:59 (a breach until 12:00, the next reading, flat) and one at 12:10 (the
    order is lifted: none); the pump, not a production signal, switched on at 10:30."""
    rows = on_off(SHEARER, lambda t: t < O0 + 10 * MIN or O0 + 20 * MIN <= t < O0 + 40 * MIN)
    rows += on_off(CONV, lambda t: O0 <= t < O1 + 30 * MIN)
    rows += on_off(PUMP, lambda t: t >= O0 + 30 * MIN)

    def coal(t: int) -> float:
        rises = sum(1 for u in GRID if O0 - 25 * MIN <= u <= min(t, O0 + 15 * MIN))
        return 100.0 + rises + (1 if t >= O1 - S else 0) + (1 if t >= O1 + 10 * MIN else 0)

    rows += [(COAL, t, coal(t), 0) for t in sorted([*GRID, O1 - S])]
    return rows


EXPECTED_SIGNALS = {
    ("seal_breach", SHEARER, iso(O0 + 20 * MIN), iso(O0 + 40 * MIN), "major"),
    ("seal_breach", CONV, iso(O0), iso(O1 + 30 * MIN), "major"),
    ("seal_breach", COAL, iso(O0), iso(O0 + 20 * MIN), "major"),
    ("seal_breach", COAL, iso(O1 - S), iso(O1), "major"),
}


@closing
async def test_production_signals_under_an_order_are_breaches_with_their_readings(
        signals_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await signals_db()
    conn = await conn_of(dsn)
    mine = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
    order = await conn.fetchval(
        "INSERT INTO orders (mine_id, rule, pack, start_ts, min_end_ts, state, lifted_at) "
        "VALUES ($1, 'weekly_three', 'default', $2, $3, 'lifted', $3) RETURNING id", mine, from_ns(O0), from_ns(O1))
    rows = signal_day()
    # In pieces of half an hour, as a feed arrives, then the worker at 15:00.
    for k in range(12):
        await insert_readings(conn, [r for r in rows if T0 + k * 30 * MIN <= r[1] < T0 + (k + 1) * 30 * MIN])
    await RuleWorker(dsn, PACK, clock=FrozenClock(from_ns(T0 + 7 * H))).run(burst=True)
    found = await live(dsn, ["seal_breach"])
    assert brief(found) == EXPECTED_SIGNALS
    conv = json.loads(found[("seal_breach", CONV, iso(O0))]["evidence"])
    # The evidence carries the reading before the switch and the switching reading.
    assert conv == {"source": "signal", "point": CONV, "signal": "on_off", "started": z(O0),
                    "stopped": z(O1 + 30 * MIN), "readings": [{"ts": z(O0 - 5 * MIN), "value": 0.0},
                                                             {"ts": z(O0), "value": 1.0}],
                    "order": order, "order_rule": "weekly_three", "order_start": z(O0), "order_lifted": z(O1)}
    coal = json.loads(found[("seal_breach", COAL, iso(O0))]["evidence"])
    assert coal["signal"] == "counter" and coal["readings"] == [{"ts": z(O0 - 5 * MIN), "value": 105.0},
                                                                {"ts": z(O0), "value": 106.0}]


@closing
async def test_entries_and_signals_judged_before_their_order_was_written_become_breaches_and_go_with_it(
        signals_db: Callable[[], Awaitable[str]]) -> None:
    """The methane chain writes an order after the personnel rules judged the entries under it
    (the second exceedance is evaluated later, or arrives late): writing it re-judges the
    mine from its start; withdrawing it takes its breaches back."""
    dsn = await signals_db()
    conn = await conn_of(dsn)
    mine = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
    await insert_cards(conn, [("C03", O0 + 10 * MIN, FACE), ("C03", O0 + 50 * MIN, SHAFT), ("C04", O0 - S, FACE)])
    await insert_readings(conn, on_off(CONV, lambda t: O0 <= t < O1 + 30 * MIN))
    worker = RuleWorker(dsn, PACK, clock=FrozenClock(from_ns(T0 + 7 * H)))
    await worker.run(burst=True)
    assert await live(dsn, ["seal_breach"]) == {}
    order = OrderRow("weekly_three", O0, O0 + 72 * H, 0, (), ())
    async with conn.transaction():
        oid = await store.write_order(conn, mine, "default", order, None)
    await worker.run(burst=True)
    assert brief(await live(dsn, ["seal_breach"])) == {
        ("seal_breach", "C03", iso(O0 + 10 * MIN), iso(O0 + 50 * MIN), "major"),
        ("seal_breach", CONV, iso(O0), iso(O1 + 30 * MIN), "major"),
    }
    async with conn.transaction():
        await store.withdraw_order(conn, oid)
    await worker.run(burst=True)
    assert await live(dsn, ["seal_breach"]) == {}
    assert await conn.fetchval("SELECT count(*) FROM dirty_windows") == 0
