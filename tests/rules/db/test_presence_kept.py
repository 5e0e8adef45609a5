"""The kept presence rows (rules.presence_store, migration 0093) answer the personnel page exactly
as card_reads do, at every instant of a stream.

Random card-read streams (areas that share stations, a shaft station that is also in a working
area, a station in no area, another mine's station; late reads, duplicates with another station)
are written through the ingest's BatchStore in small batches; the rules worker claims windows a
few at a time (so some stay pending while the page is asked), and after every batch and every
claim the page is asked twice, from the kept rows and from card_reads alone (`kept=False`, the
service's definition before the rows existed), at the newest read and at an instant in the past
(reads after it are ignored). The answers must be equal field by field. At the end every row
equals a recomputation from card_reads; a registry change sends the page back to card_reads
until the next claim rebuilds the mine.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from api.pagination import CursorCodec
from api.personnel.service import underground
from minewatch.clock import FrozenClock
from minewatch.timeutil import from_ns
from rules import presence_store
from rules.packs import PersonnelSettings, builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import DATA, MIN, S, new_db, ns
from tests.rules.db.test_urgent_windows import ingest_cards

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]
MINE, OTHER = "149900000031", "149900000032"
STATIONS = [f"{MINE}S000{k}" for k in range(1, 8)] + [f"{OTHER}S0002"]
SHAFTS = [STATIONS[0], STATIONS[5], STATIONS[6]]
CARDS = ["P01", "P02", "P03", "P04", "P05", "P06", "P07", "P08", "PL1", "PV1"]
T0 = ns("2026-11-10T08:00:00+08:00")
CODEC = CursorCodec(b"presence-test")


@pytest.fixture
def presence_db(pg_dsn: str) -> Iterator[Callable[[], Awaitable[str]]]:
    made: list[str] = []

    async def create() -> str:
        made.append(await new_db(pg_dsn, DATA / "registry_presence.yaml"))
        return made[-1]

    yield create
    for dsn in made:
        asyncio.run(_drop_db(pg_dsn, dsn))


def stream(rng: random.Random) -> list[tuple[str, int, str]]:
    """Each card's walk: in through a shaft, about the stations, sometimes out and in again;
    a few duplicates of a (card, time) at another station. Under 50 minutes in all."""
    rows: list[tuple[str, int, str]] = []
    for card in CARDS:
        t = T0 + rng.randrange(0, 10 * MIN)
        station = rng.choice(SHAFTS)
        for _ in range(rng.randrange(1, 25)):
            rows.append((card, t, station))
            if rng.random() < 0.05:
                rows.append((card, t, rng.choice(STATIONS)))
            t += rng.choice([S, 30 * S, MIN, 90 * S]) + rng.randrange(0, 1_000_000_000)
            if rng.random() < 0.5:
                station = rng.choice(STATIONS if rng.random() < 0.7 else SHAFTS)
    return [r for r in rows if r[1] < T0 + 50 * MIN]


def arrivals(rng: random.Random, rows: list[tuple[str, int, str]]) -> list[list[tuple[str, int, str]]]:
    """In time order, a fifth of the reads held back and delivered up to 20 batches late."""
    rows = sorted(rows, key=lambda r: r[1])
    batches: list[list[tuple[str, int, str]]] = []
    late: list[tuple[int, tuple[str, int, str]]] = []
    i = 0
    while i < len(rows) or late:
        n = rng.randrange(1, 8)
        batch = []
        for r in rows[i:i + n]:
            if rng.random() < 0.2:
                late.append((len(batches) + rng.randrange(1, 20), r))
            else:
                batch.append(r)
        i += n
        due = [r for k, r in late if k <= len(batches) or i >= len(rows)]
        late = [(k, r) for k, r in late if not (k <= len(batches) or i >= len(rows))]
        batches.append(batch + due)
    return [b for b in batches if b]


async def both(pool: asyncpg.Pool, mine_id: int, now_ns: int) -> None:
    """The page from the kept rows equals the page from card_reads alone, at `now_ns`."""
    args = {"pool": pool, "codec": CODEC, "mine_id": mine_id, "mine": MINE, "now": from_ns(now_ns), "limit": 1000,
            "cursor": None, "rules": PersonnelSettings()}
    kept = await underground(**args)  # type: ignore[arg-type]
    slow = await underground(**args, kept=False)  # type: ignore[arg-type]
    assert kept.model_dump() == slow.model_dump(), f"at {from_ns(now_ns)}"
    # Page by page (3 a page: kept rows and recomputed ones interleave on a page), the same pages.
    pages: dict[bool, list[object]] = {True: [], False: []}
    for path in (True, False):
        cursor = None
        while True:
            page = await underground(**{**args, "limit": 3, "cursor": cursor}, kept=path)  # type: ignore[arg-type]
            pages[path].append(page.model_dump())
            if (cursor := page.next_cursor) is None:
                break
    assert pages[True] == pages[False], f"pages at {from_ns(now_ns)}"
    assert [p["card"] for page in pages[True] for p in page["items"]] == [p.card for p in kept.items]  # type: ignore[index]


@pytest.mark.parametrize("seed", range(6))
async def test_kept_rows_answer_as_card_reads_do(presence_db: Callable[[], Awaitable[str]], seed: int) -> None:
    rng = random.Random(seed)
    dsn = await presence_db()
    rows = stream(rng)
    worker = RuleWorker(dsn, builtin_pack("default"), clock=FrozenClock(from_ns(T0 + 60 * MIN)),
                        settings=RulesSettings(integrity=False, personnel=False, claim_limit=rng.choice([1, 2, 3])))
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        seen: list[int] = []
        kept_used = 0
        for k, batch in enumerate(arrivals(rng, rows)):
            await ingest_cards(conn, batch)
            seen += [t for _, t, _ in batch]
            for _ in range(rng.randrange(0, 3)):
                await worker.step(conn)
            kept_used += bool(await conn.fetchval(presence_store.BUILT_IS_CURRENT, mine_id))
            await both(pool, mine_id, max(seen) + S)
            await both(pool, mine_id, rng.choice(seen) + rng.choice([0, -1_000, 1_000]))
            if k == 10:  # a registry change: S0004 leaves A_C; the rows are stale until the next claim
                await conn.execute(
                    "DELETE FROM area_stations WHERE station_id = (SELECT id FROM stations WHERE code = $1)",
                    STATIONS[3])
                assert not await conn.fetchval(presence_store.BUILT_IS_CURRENT, mine_id)
                await both(pool, mine_id, max(seen) + S)
        while await worker.step(conn):
            pass
        assert kept_used > 0 and await conn.fetchval(presence_store.BUILT_IS_CURRENT, mine_id)
        assert not await conn.fetchval("SELECT count(*) FROM dirty_windows")
        await both(pool, mine_id, max(seen) + S)
        await both(pool, mine_id, T0 + 25 * MIN)
        cards = [r["id"] for r in await conn.fetch("SELECT id FROM cards WHERE mine_id = $1", mine_id)]
        shaft = [r["station_id"] for r in await conn.fetch(
            "SELECT DISTINCT x.station_id FROM area_stations x JOIN areas a ON a.id = x.area_id AND a.shaft "
            "WHERE a.mine_id = $1", mine_id)]
        recomputed = sorted((p.card_id, p.ts, p.station_id, p.run, p.run_mark, p.stay, p.stay_mark)
                            for p in await presence_store.compute(conn, cards, shaft))
        stored = sorted(tuple(r) for r in await conn.fetch(
            "SELECT card_id, ts, station_id, run, run_mark, stay, stay_mark FROM card_presence"))
        assert stored == recomputed and len(stored) == len({c for c, _, _ in rows})
    finally:
        await pool.close()
        await conn.close()


async def test_a_bulk_upload_rebuilds_the_mine(presence_db: Callable[[], Awaitable[str]], tmp_path: Path) -> None:
    """Windows spanning more than REBUILD_SPAN rebuild the mine from card_reads (one walk per card)
    rather than read every read back; the answer is the same."""
    dsn = await presence_db()
    worker = RuleWorker(dsn, builtin_pack("default"), clock=FrozenClock(from_ns(T0 + 600 * MIN)),
                        settings=RulesSettings(integrity=False, personnel=False))
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        await ingest_cards(conn, [("P01", T0, SHAFTS[0]), ("P01", T0 + MIN, STATIONS[1])])
        assert await worker.step(conn)
        built = await conn.fetchval("SELECT built_at FROM presence_built WHERE mine_id = $1", mine_id)
        hours = int(presence_store.REBUILD_SPAN / timedelta(minutes=1)) + 60
        await ingest_cards(conn, [("P02", T0 + m * MIN, STATIONS[2]) for m in range(0, hours, 7)])
        await both(pool, mine_id, T0 + hours * MIN)  # unclaimed yet: the page reads card_reads alone
        await conn.execute("UPDATE presence_built SET built_at = built_at - interval '1 day'")
        assert await worker.step(conn)
        assert await conn.fetchval("SELECT built_at FROM presence_built WHERE mine_id = $1", mine_id) > built
        await both(pool, mine_id, T0 + hours * MIN)
        out = await underground(pool=pool, codec=CODEC, mine_id=mine_id, mine=MINE, now=from_ns(T0 + hours * MIN),
                                limit=10, cursor=None, rules=PersonnelSettings())
        assert [(p.card, p.entered) for p in out.items] == [("P01", from_ns(T0 + MIN)), ("P02", from_ns(T0))]
    finally:
        await pool.close()
        await conn.close()


async def test_a_failure_to_keep_the_rows_costs_the_page_its_shortcut_not_the_evaluation(
        presence_db: Callable[[], Awaitable[str]], caplog: pytest.LogCaptureFixture) -> None:
    """The rows are an index for one page: when writing them fails (here the database refuses
    every new row) the claim still commits — its windows are done — the mine's build mark goes,
    so the page answers from card_reads, and a later claim rebuilds the rows."""
    dsn = await presence_db()
    worker = RuleWorker(dsn, builtin_pack("default"), clock=FrozenClock(from_ns(T0 + 60 * MIN)),
                        settings=RulesSettings(integrity=False))
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        await ingest_cards(conn, [("P01", T0, SHAFTS[0]), ("P01", T0 + MIN, STATIONS[1])])
        assert await worker.step(conn)
        assert await conn.fetchval(presence_store.BUILT_IS_CURRENT, mine_id)
        await conn.execute("ALTER TABLE card_presence ADD CONSTRAINT refuse CHECK (false) NOT VALID")
        await ingest_cards(conn, [("P02", T0 + 2 * MIN, SHAFTS[0]), ("P02", T0 + 3 * MIN, STATIONS[3])])
        assert await worker.step(conn)
        assert "keeping the presence rows" in caplog.text
        assert not await conn.fetchval("SELECT count(*) FROM dirty_windows")
        assert not await conn.fetchval("SELECT count(*) FROM presence_built")
        await both(pool, mine_id, T0 + 5 * MIN)
        out = await underground(pool=pool, codec=CODEC, mine_id=mine_id, mine=MINE, now=from_ns(T0 + 5 * MIN),
                                limit=10, cursor=None, rules=PersonnelSettings())
        assert [p.card for p in out.items] == ["P01", "P02"]
        await conn.execute("ALTER TABLE card_presence DROP CONSTRAINT refuse")
        await ingest_cards(conn, [("P03", T0 + 4 * MIN, SHAFTS[0])])
        assert await worker.step(conn)
        assert await conn.fetchval(presence_store.BUILT_IS_CURRENT, mine_id)
        assert await conn.fetchval("SELECT count(*) FROM card_presence") == 3
        await both(pool, mine_id, T0 + 5 * MIN)
    finally:
        await pool.close()
        await conn.close()
