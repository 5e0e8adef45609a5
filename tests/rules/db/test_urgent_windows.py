"""Urgent dirty windows (migration 0092): windows that may hold a finding raised at once are
claimed ahead of the queue, alternately with the oldest, and nothing else changes.

The ingest marks a window urgent when its card reads include one at a station of a restricted
area, or when the mine has a shutdown order (not withdrawn) in force at some time of the window;
both of the ingest's write paths (COPY straight in, and the staging path a duplicate sends a
batch down) mark it. The rules worker claims the mine of the oldest urgent window, then the mine
of the oldest window of all, in turn: an urgent mine is served within one other mine's turn, and
a stream of urgent windows cannot starve the other mines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import yaml

from ingest.store import BatchStore, TableBatch
from minewatch.clock import FrozenClock
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.timeutil import from_ns
from rules import store
from rules.evaluate import OrderRow
from rules.worker import RulesSettings, RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import DATA, MIN, new_db
from tests.rules.db.test_personnel_worker import FACE, MINE, OLD, PACK, ROAD, SHAFT, T0

pytestmark = pytest.mark.integration
H = 60 * MIN
OTHER = "149900000022"


@pytest.fixture
def two_mines_db(pg_dsn: str, tmp_path: Path) -> Iterator[Callable[[], Awaitable[str]]]:
    """The personnel test registry with a copy of its mine as a second mine (codes renamed)."""
    reg = yaml.safe_load((DATA / "registry_personnel.yaml").read_text(encoding="utf-8"))
    twin = yaml.safe_load(yaml.safe_dump(reg["mines"][0], allow_unicode=True).replace(MINE, OTHER))
    twin["name"] = "人员定位测试煤矿二"
    for card in twin["cards"]:
        card["code"] = "D" + card["code"]
    reg["mines"].append(twin)
    path = tmp_path / "two_mines.yaml"
    path.write_text(yaml.safe_dump(reg, allow_unicode=True), encoding="utf-8")
    made: list[str] = []

    async def create() -> str:
        made.append(await new_db(pg_dsn, path))
        return made[-1]

    yield create
    for dsn in made:
        asyncio.run(_drop_db(pg_dsn, dsn))


async def ingest_cards(conn: asyncpg.Connection, rows: list[tuple[str, int, str]]) -> None:
    """Card reads (card code, ts ns, station code) through the ingest's BatchStore, as a file batch."""
    cards = {r["code"]: (r["id"], r["mine_id"]) for r in await conn.fetch("SELECT code, id, mine_id FROM cards")}
    stations = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM stations")}
    batch = TableBatch()
    by_mine: dict[int, list[tuple[int, datetime, int, int]]] = {}
    for c, t, s in rows:
        card_id, mine_id = cards[c]
        by_mine.setdefault(mine_id, []).append((card_id, from_ns(t), stations[s], mine_id))
    for mine_id, mine_rows in by_mine.items():
        batch.extend(mine_rows, ("file", None), mine_id, min(r[1] for r in mine_rows), max(r[1] for r in mine_rows))
    await BatchStore(conn, PartitionKeeper(await current_backend(conn)), source="file").write(
        {"card_reads": batch}, [], now=datetime.now(UTC))


async def last_window(conn: asyncpg.Connection) -> tuple[str, bool]:
    row = await conn.fetchrow("SELECT kind, urgent FROM dirty_windows ORDER BY id DESC LIMIT 1")
    assert row is not None
    return row["kind"], row["urgent"]


async def test_the_ingest_marks_a_restricted_read_and_a_mine_under_an_order_urgent(
        two_mines_db: Callable[[], Awaitable[str]]) -> None:
    conn = await asyncpg.connect(await two_mines_db())
    try:
        await ingest_cards(conn, [("C01", T0, SHAFT), ("C01", T0 + MIN, FACE)])
        assert await last_window(conn) == ("card_reads", False)
        await ingest_cards(conn, [("C01", T0 + 2 * MIN, ROAD), ("C01", T0 + 3 * MIN, OLD)])
        assert await last_window(conn) == ("card_reads", True)
        # A duplicate sends the batch down the staging path; its restricted read marks it there too.
        await ingest_cards(conn, [("C01", T0 + 3 * MIN, OLD), ("C02", T0 + 4 * MIN, OLD)])
        assert await conn.fetchval("SELECT count(*) FROM card_reads") == 5
        assert await last_window(conn) == ("card_reads", True)
        await ingest_cards(conn, [("C02", T0 + 5 * MIN, FACE), ("C02", T0 + 6 * MIN, FACE)])
        assert await last_window(conn) == ("card_reads", False)

        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        async with conn.transaction():
            oid = await store.write_order(conn, mine_id, PACK.name, OrderRow(
                rule="methane_repeat", start=T0 + 2 * H, min_end=T0 + 74 * H, step=1, triggers=(), attached=()), None)
        await conn.execute("DELETE FROM dirty_windows")  # the order's own re-check window (urgent itself)
        # Reads wholly before the order: not urgent; touching it, or at the other mine: as their reads say.
        await ingest_cards(conn, [("C03", T0 + H, SHAFT), ("C03", T0 + 2 * H - 1, FACE)])
        assert await last_window(conn) == ("card_reads", False)
        await ingest_cards(conn, [("C03", T0 + 2 * H, FACE)])
        assert await last_window(conn) == ("card_reads", True)
        await ingest_cards(conn, [("DC03", T0 + 2 * H + MIN, FACE)])
        assert await last_window(conn) == ("card_reads", False)
        # Lifted at 12:00: reads after it are not urgent, a late read from during it is.
        await conn.execute("UPDATE orders SET state = 'lifted', lifted_at = $2 WHERE id = $1", oid,
                           from_ns(T0 + 4 * H))
        await ingest_cards(conn, [("C03", T0 + 4 * H, FACE)])
        assert await last_window(conn) == ("card_reads", False)
        await ingest_cards(conn, [("C03", T0 + 3 * H, FACE)])
        assert await last_window(conn) == ("card_reads", True)
        # Withdrawn: no order at all.
        await conn.execute("UPDATE orders SET withdrawn_at = now() WHERE id = $1", oid)
        await ingest_cards(conn, [("C03", T0 + 3 * H + MIN, FACE)])
        assert await last_window(conn) == ("card_reads", False)
    finally:
        await conn.close()


async def test_an_order_written_queues_its_seal_recheck_urgent(two_mines_db: Callable[[], Awaitable[str]]) -> None:
    conn = await asyncpg.connect(await two_mines_db())
    try:
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        async with conn.transaction():
            await store.write_order(conn, mine_id, PACK.name, OrderRow(
                rule="methane_repeat", start=T0, min_end=T0 + 72 * H, step=1, triggers=(), attached=()), None)
        assert await last_window(conn) == ("card_reads", True)
    finally:
        await conn.close()


async def queue(conn: asyncpg.Connection, mine: str, urgent: bool) -> int:
    """An empty card-read window of a mine (a span with no reads: cheap to evaluate)."""
    wid: int = await conn.fetchval(
        "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows, urgent) "
        "SELECT id, 'card_reads', $2, $2, 0, $3 FROM mines WHERE code = $1 RETURNING id", mine, from_ns(T0), urgent)
    return wid


async def waiting(conn: asyncpg.Connection) -> set[int]:
    return {r["id"] for r in await conn.fetch("SELECT id FROM dirty_windows")}


@pytest.mark.parametrize("backlog", [False, True], ids=["fresh", "backlog"])
async def test_urgent_mines_go_first_and_alternate_with_the_oldest_in_a_backlog(
        two_mines_db: Callable[[], Awaitable[str]], backlog: bool) -> None:
    """While the oldest window is fresh (younger than `urgent_defer_s`) urgent mines go first,
    one after another; in a backlog (older than that, here 0 s) urgent and oldest-first claims
    alternate: the other mine is served between two urgent ones."""
    dsn = await two_mines_db()
    conn = await asyncpg.connect(dsn)
    settings = RulesSettings(integrity=False, urgent_defer_s=0 if backlog else 3_600)
    worker = RuleWorker(dsn, PACK, settings=settings, clock=FrozenClock(from_ns(T0 + H)))
    try:
        await conn.execute("DELETE FROM dirty_windows")
        old = await queue(conn, OTHER, False)  # the oldest window, not urgent
        await queue(conn, MINE, True)
        # The urgent mine first, though its window is younger.
        assert await worker.step(conn)
        assert await waiting(conn) == {old}
        second = await queue(conn, MINE, True)
        assert await worker.step(conn)
        # Fresh: the urgent mine again. Backlog: the other mine's turn, though an urgent window waits.
        assert await waiting(conn) == ({old} if not backlog else {second})
        assert await worker.step(conn)
        assert await waiting(conn) == set()

        # Without urgent windows the order is the oldest first, whatever the turn.
        a, b = await queue(conn, OTHER, False), await queue(conn, MINE, False)
        assert await worker.step(conn)
        assert await waiting(conn) == {b}
        assert a not in await waiting(conn)
    finally:
        await conn.close()


async def test_a_claim_on_an_urgent_mine_takes_its_other_windows_too(two_mines_db: Callable[[], Awaitable[str]]) -> None:
    """The order of claims changes when a mine is judged, never on what: a mine's claim still
    takes every one of its windows, urgent or not."""
    dsn = await two_mines_db()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM dirty_windows")
        other = await queue(conn, OTHER, False)
        mine = [await queue(conn, MINE, False), await queue(conn, MINE, True), await queue(conn, MINE, False)]
        async with conn.transaction():
            claim = await store.claim_mine(conn, limit=100, urgent_first=True)
            assert claim is not None
            mine_id, windows = claim
            assert mine_id == await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
            assert [w.id for w in windows] == mine and [w.urgent for w in windows] == [False, True, False]
        async with conn.transaction():
            claim = await store.claim_mine(conn, limit=100)
            assert claim is not None and claim[1][0].id == other
    finally:
        await conn.close()


async def test_a_clock_pass_serves_urgent_windows_between_its_mines_and_only_those(
        two_mines_db: Callable[[], Awaitable[str]]) -> None:
    """A clock pass visits every mine; an urgent window that arrives meanwhile is evaluated
    between two mines, not after the whole pass. A window that is not urgent waits for the loop."""
    dsn = await two_mines_db()
    conn = await asyncpg.connect(dsn)
    worker = RuleWorker(dsn, PACK, settings=RulesSettings(integrity=False), clock=FrozenClock(from_ns(T0 + H)))
    try:
        await conn.execute("DELETE FROM dirty_windows")
        plain = await queue(conn, OTHER, False)
        served: list[set[int]] = []

        async def between() -> None:
            if not served:  # the urgent window arrives as the pass reaches its first mine
                await queue(conn, MINE, True)
            await worker.step(conn, urgent_only=True)
            served.append(await waiting(conn))

        await worker.personnel_clock_pass(conn, between=between)
        assert served == [{plain}, {plain}]  # one call per mine with cards; the urgent one gone at the first
        assert not await worker.step(conn, urgent_only=True)
        assert await waiting(conn) == {plain}

        # The worker's own hook: an urgent window is evaluated, a plain one is not.
        assert not await worker.serve_urgent(conn)
        urgent = await queue(conn, MINE, True)
        await asyncio.sleep(0.06)  # it looks at most every 50 ms
        assert await worker.serve_urgent(conn)
        assert urgent not in await waiting(conn) and plain in await waiting(conn)
    finally:
        await conn.close()
