"""The personnel rules (rules.md §7, §4 evacuation) wired into the rules worker, the back-fill and the clock.

One mine (tests/rules/db/data/registry_personnel.yaml): a shaft, face F1's area A_F1 (approved
10), a restricted old working A_OLD, a roadway A_ROAD; the mine may hold 30. Card reads are
stored as the ingest stores them (COPY + a `card_reads` dirty window + NOTIFY). The expected
findings are written out by hand from the reads, not from a run.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from minewatch.clock import FrozenClock
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.timeutil import from_ns, to_ns
from rules.backfill import Tally, backfill
from rules.packs import builtin_pack
from rules.personnel_worker import clock_pass, reevaluate_personnel
from rules.worker import RuleWorker
from tests.conftest import _drop_db
from tests.rules.db.helpers import DATA, MIN, S, insert_readings, new_db, ns

pytestmark = pytest.mark.integration
PACK = builtin_pack("default")
MINE = "149900000021"
SHAFT, FACE, OLD, ROAD = (f"{MINE}S000{k}" for k in range(1, 5))
CH4 = f"{MINE}_01MN0001_T0001"
T0 = ns("2026-11-10T08:00:00+08:00")  # a shift start (08-16 local)
H = 60 * MIN
PERSONNEL = ("over_capacity", "no_leader", "overtime", "restricted_area", "seal_breach", "work_continued")
CardRow = tuple[str, int, str]  # (card code, ts ns, station code)


@pytest.fixture
def personnel_db(pg_dsn: str) -> Iterator[Callable[[], Awaitable[str]]]:
    made: list[str] = []

    async def create() -> str:
        made.append(await new_db(pg_dsn, DATA / "registry_personnel.yaml"))
        return made[-1]

    yield create
    for dsn in made:
        asyncio.run(_drop_db(pg_dsn, dsn))


async def insert_cards(conn: asyncpg.Connection, rows: Sequence[CardRow]) -> None:
    """Store card reads as the ingest does: one transaction with a `card_reads` dirty window."""
    if not rows:
        return
    cards = {r["code"]: (r["id"], r["mine_id"]) for r in await conn.fetch("SELECT code, id, mine_id FROM cards")}
    stations = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM stations")}
    lo, hi = min(r[1] for r in rows), max(r[1] for r in rows)
    await PartitionKeeper(await current_backend(conn)).ensure_range(conn, "card_reads", from_ns(lo), from_ns(hi))
    async with conn.transaction():
        await conn.copy_records_to_table("card_reads", columns=["card_id", "ts", "station_id", "mine_id"], records=[
            (cards[c][0], from_ns(t), stations[s], cards[c][1]) for c, t, s in rows])
        await conn.execute(
            "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) VALUES ($1, 'card_reads', $2, $3, $4)",
            cards[rows[0][0]][1], from_ns(lo), from_ns(hi), len(rows))
        await conn.execute("SELECT pg_notify('minewatch_dirty', '')")


def iso(t: int | None) -> str | None:
    return None if t is None else from_ns(t).isoformat()


async def live(dsn: str, rules: Sequence[str] = PERSONNEL) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    """Live findings of these rules by (rule, subject, start) -> end, level, state, evidence."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT rule, subject, start_ts, end_ts, level, state, evidence::text AS ev FROM findings "
                                "WHERE state <> 'superseded' AND rule = ANY($1::text[])", list(rules))
    finally:
        await conn.close()
    return {(r["rule"], r["subject"], iso(to_ns(r["start_ts"]))): {
        "end": None if r["end_ts"] is None else iso(to_ns(r["end_ts"])), "level": r["level"], "state": r["state"],
        "evidence": r["ev"]} for r in rows}


def brief(found: dict[tuple[str, str, str | None], dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(*k, v["end"], v["level"]) for k, v in found.items()}


_OPEN: list[asyncpg.Connection] = []


async def conn_of(dsn: str) -> asyncpg.Connection:
    """A connection closed when the test (decorated with `closing`) ends."""
    _OPEN.append(await asyncpg.connect(dsn))
    return _OPEN[-1]


def closing(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        try:
            await test(*args, **kwargs)
        finally:
            while _OPEN:
                await _OPEN.pop().close()

    return run


# --- over_capacity: a limit of ten ------------------------------------------------------------

def crowd(base: int, n: int, stay: int) -> list[CardRow]:
    """n workers read at F1's station at base and at the shaft stay later."""
    return [r for k in range(1, n + 1) for r in ((f"C{k:02d}", base, FACE), (f"C{k:02d}", base + stay, SHAFT))]


CASES = [(n, stay) for stay in (5 * MIN - S, 5 * MIN) for n in (10, 11, 12, 13)]


def case_base(j: int) -> int:
    return T0 + j * 20 * MIN


@closing
async def test_a_limit_of_ten_with_ten_to_thirteen_cards_for_4_59_and_5_00(
        personnel_db: Callable[[], Awaitable[str]]) -> None:
    """Issue 13's named edge case through the worker and the back-fill: none for 4 min 59 s
    whatever the count; at 5 min none / warning / warning / major for 10 / 11 / 12 / 13 cards."""
    dsn, twin = await personnel_db(), await personnel_db()
    conn, other = await conn_of(dsn), await conn_of(twin)
    rows = [r for j, (n, stay) in enumerate(CASES) for r in crowd(case_base(j), n, stay)]
    clock = FrozenClock(from_ns(T0 + 4 * H))
    for j in range(len(CASES)):  # streaming: one case per batch
        await insert_cards(conn, [r for r in rows if case_base(j) <= r[1] < case_base(j + 1)])
        await RuleWorker(dsn, PACK, clock=clock).run(burst=True)
    expected = {("over_capacity", "A_F1", iso(case_base(j)), iso(case_base(j) + 5 * MIN), level)
                for j, level in ((5, "warning"), (6, "warning"), (7, "major"))}
    assert brief(await live(dsn)) == expected
    found = await live(dsn)
    ev = found[("over_capacity", "A_F1", iso(case_base(7)))]["evidence"]
    assert '"peak": 13' in ev and '"limit": 10' in ev and '"scope": "area"' in ev
    await insert_cards(other, rows)
    await backfill(twin, PACK, since_ns=T0 - H, until_ns=T0 + 4 * H, clock=clock)
    assert await live(twin) == found


# --- overtime: silent cards on the clock, a late shaft read -----------------------------------

@closing
async def test_overtime_of_a_silent_card_fires_on_the_clock_and_a_late_shaft_read_withdraws_or_ends_it(
        personnel_db: Callable[[], Awaitable[str]]) -> None:
    """Two cards go down at 08:00 and fall silent at 09:00. At 18:00 + 1 s (entry + 8 h + 2 h,
    strictly longer) the clock pass opens an overtime finding for each with no new read; a
    second pass writes nothing. Then late shaft reads arrive: C01's at 17:00 (before the limit:
    the finding is withdrawn), C02's at 19:00 (it ends the finding at 19:00)."""
    dsn = await personnel_db()
    conn = await conn_of(dsn)
    rows = [(c, T0 + k * 30 * MIN, FACE) for c in ("C01", "C02") for k in range(3)]
    clock = FrozenClock(from_ns(T0 + H))
    await insert_cards(conn, rows)
    worker = RuleWorker(dsn, PACK, clock=clock)
    await worker.run(burst=True)
    assert await live(dsn, ["overtime"]) == {}
    clock.set(from_ns(T0 + 10 * H))  # exactly entry + 10 h: not strictly longer
    await worker.personnel_clock_pass(conn)
    assert await live(dsn, ["overtime"]) == {}
    clock.set(from_ns(T0 + 10 * H + S))
    await worker.personnel_clock_pass(conn)
    found = await live(dsn, ["overtime"])
    assert brief(found) == {("overtime", c, iso(T0 + 10 * H), None, "warning") for c in ("C01", "C02")}
    assert '"entry": "2026-11-10T00:00:00Z"' in found[("overtime", "C01", iso(T0 + 10 * H))]["evidence"]
    tally = Tally()
    assert not await clock_pass(conn, to_ns(clock.now()), tally=tally)  # idempotent at the same clock
    clock.advance(timedelta(minutes=30))
    assert not await clock_pass(conn, to_ns(clock.now()), tally=tally)  # and later while nothing changes
    assert tally.changes() == 0
    clock.set(from_ns(T0 + 12 * H))
    await insert_cards(conn, [("C01", T0 + 9 * H, SHAFT)])
    await insert_cards(conn, [("C02", T0 + 11 * H, SHAFT)])
    await worker.run(burst=True)
    assert brief(await live(dsn, ["overtime"])) == {("overtime", "C02", iso(T0 + 10 * H), iso(T0 + 11 * H), "warning")}
    gone = await conn.fetchrow("SELECT state, superseded_by, evidence->>'withdrawn' AS w FROM findings "
                               "WHERE rule = 'overtime' AND subject = 'C01'")
    assert (gone["state"], gone["superseded_by"], gone["w"]) == ("superseded", None, "true")


# --- work_continued: t + 30 min on the clock ----------------------------------------------------

@closing
async def test_work_continued_fires_at_t_plus_30_min_on_the_clock_listing_the_cards_still_there(
        personnel_db: Callable[[], Awaitable[str]]) -> None:
    """F1's methane reaches its power-off level (1.5 %) at 10:00 with C01-C03 in A_F1; C01 goes
    to the roadway at 10:20, C02 and C03 stay silent. Nothing before 10:30; at 10:30 the clock
    pass opens one work_continued finding of face F1 listing C02 and C03; C02's move to the
    roadway at 10:40 (a late read) leaves C03; C03's shaft read at 10:50 ends it there."""
    dsn = await personnel_db()
    conn = await conn_of(dsn)
    t = T0 + 2 * H
    clock = FrozenClock(from_ns(t + 25 * MIN))
    await insert_cards(conn, [(c, t - 10 * MIN, FACE) for c in ("C01", "C02", "C03")])
    await insert_readings(conn, [(CH4, t + k * 30 * S, 1.6 if 0 <= k < 6 else 0.4, 0) for k in range(-20, 40)])
    await insert_cards(conn, [("C01", t + 20 * MIN, ROAD)])
    worker = RuleWorker(dsn, PACK, clock=clock)
    await worker.run(burst=True)
    assert await live(dsn, ["work_continued"]) == {}
    clock.set(from_ns(t + 30 * MIN - S))
    await worker.personnel_clock_pass(conn)
    assert await live(dsn, ["work_continued"]) == {}
    clock.set(from_ns(t + 30 * MIN))
    await worker.personnel_clock_pass(conn)
    found = await live(dsn, ["work_continued"])
    assert brief(found) == {("work_continued", "F1", iso(t + 30 * MIN), None, "major")}
    ev = found[("work_continued", "F1", iso(t + 30 * MIN))]["evidence"]
    assert '"card": "C02"' in ev and '"card": "C03"' in ev and '"card": "C01"' not in ev and CH4 in ev
    clock.set(from_ns(t + 60 * MIN))
    await insert_cards(conn, [("C03", t + 50 * MIN, SHAFT)])
    await insert_cards(conn, [("C02", t + 40 * MIN, ROAD)])
    await worker.run(burst=True)
    await worker.personnel_clock_pass(conn)
    assert brief(await live(dsn, ["work_continued"])) == {
        ("work_continued", "F1", iso(t + 30 * MIN), iso(t + 50 * MIN), "major")}


# --- seal_breach and restricted_area --------------------------------------------------------------

@closing
async def test_entries_during_a_shutdown_order_and_into_a_restricted_area(
        personnel_db: Callable[[], Awaitable[str]]) -> None:
    """An order active from 10:00, lifted at 12:00. C01 was underground before (no breach) and
    visits the old working 10:10-10:20 (restricted_area); C02 enters 1 s before the order (no
    breach), C03 at 10:00:00 (a breach until it leaves at 10:30), C04 at 11:59:59 (a breach,
    open), C05 at 12:00:00 (the order is lifted: none)."""
    dsn = await personnel_db()
    conn = await conn_of(dsn)
    mine = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
    o0, o1 = T0 + 2 * H, T0 + 4 * H
    order = await conn.fetchval(
        "INSERT INTO orders (mine_id, rule, pack, start_ts, min_end_ts, state, lifted_at) "
        "VALUES ($1, 'weekly_three', 'default', $2, $3, 'lifted', $3) RETURNING id", mine, from_ns(o0), from_ns(o1))
    rows = [("C01", T0, ROAD), ("C01", o0 + 10 * MIN, OLD), ("C01", o0 + 20 * MIN, ROAD),
            ("C02", o0 - S, ROAD), ("C03", o0, FACE), ("C03", o0 + 30 * MIN, SHAFT),
            ("C04", o1 - S, ROAD), ("C05", o1, ROAD)]
    clock = FrozenClock(from_ns(o1 + H))
    for r in sorted(rows, key=lambda r: r[1]):
        await insert_cards(conn, [r])
    await RuleWorker(dsn, PACK, clock=clock).run(burst=True)
    found = await live(dsn, ["seal_breach", "restricted_area"])
    assert brief(found) == {
        ("seal_breach", "C03", iso(o0), iso(o0 + 30 * MIN), "major"),
        ("seal_breach", "C04", iso(o1 - S), None, "major"),
        ("restricted_area", "C01", iso(o0 + 10 * MIN), iso(o0 + 20 * MIN), "warning"),
    }
    assert f'"order": {order}' in found[("seal_breach", "C03", iso(o0))]["evidence"]
    assert '"area": "A_OLD"' in found[("restricted_area", "C01", iso(o0 + 10 * MIN))]["evidence"]


# --- streaming = back-fill ------------------------------------------------------------------------

def shift_day() -> tuple[list[CardRow], list[tuple[str, int, float, int]]]:
    """One 08-16 shift, reads every 5 min while underground (hand-written faults in comments)."""
    cards: list[CardRow] = []

    def stay(card: str, enter: int, leave: int | None, places: Sequence[tuple[int, str]]) -> None:
        """Enter at the shaft, then a read every 5 min (on a grid from T0) and at every move."""
        cards.append((card, enter, SHAFT))
        moves = sorted(places)
        end = leave if leave is not None else moves[-1][0]
        grid = {T0 + k * 5 * MIN for k in range(-24, 24 * 12)}
        for t in sorted(t for t in grid | {a for a, _ in moves} if enter < t < end):
            where = [s for a, s in moves if a <= t]
            cards.append((card, t, where[-1] if where else ROAD))
        if leave is not None:
            cards.append((card, leave, SHAFT))

    for k in range(1, 11):  # C01-C10 at the face 08:10-15:40
        places = [(T0, ROAD), (T0 + 10 * MIN, FACE), (T0 + 7 * H + 40 * MIN, ROAD)]
        if k <= 8:  # the power-off at 12:00: C01-C08 go to the roadway at 12:20, back at 13:00
            places += [(T0 + 4 * H + 20 * MIN, ROAD), (T0 + 5 * H, FACE)]
        stay(f"C{k:02d}", T0 - 10 * MIN, T0 + 7 * H + 50 * MIN, places)
    for k in (11, 12):  # two more at the face 10:00-10:30: 12 > 10 for 30 min
        stay(f"C{k:02d}", T0 + 2 * H - 10 * MIN, T0 + 2 * H + 40 * MIN,
             [(T0 + 2 * H - 9 * MIN, ROAD), (T0 + 2 * H, FACE), (T0 + 2 * H + 30 * MIN, ROAD)])
    stay("C13", T0, T0 + 3 * H, [(T0, ROAD), (T0 + H, OLD), (T0 + H + 20 * MIN, ROAD)])  # old working 09:00-09:20
    stay("C14", T0, None, [(T0, ROAD), (T0 + H, ROAD)])  # silent after 09:00, never comes up
    stay("L1", T0 - 10 * MIN, T0 + 5 * H, [(T0, ROAD)])  # the leader leaves at 13:00
    stay("V1", T0, T0 + 6 * H, [(T0, ROAD)])  # a visitor is no leader
    t = T0 + 4 * H
    methane = [(CH4, t + k * 60 * S, 1.6 if 0 <= k < 3 else 0.4, 0) for k in range(-30, 30)]
    return cards, methane


EXPECTED = {
    ("over_capacity", "A_F1", iso(T0 + 2 * H), iso(T0 + 2 * H + 30 * MIN), "warning"),
    ("restricted_area", "C13", iso(T0 + H), iso(T0 + H + 20 * MIN), "warning"),
    ("overtime", "C14", iso(T0 + 10 * H + 5 * MIN), None, "warning"),  # first read below: 08:05
    # C09, C10 stayed at the face after the 12:00 power-off reading; they left at 15:40.
    ("work_continued", "F1", iso(T0 + 4 * H + 30 * MIN), iso(T0 + 7 * H + 40 * MIN), "major"),
    # L1 up at 13:00; workers (C01-C10, C14) below until the closing margin at 15:30.
    ("no_leader", MINE, iso(T0 + 5 * H), iso(T0 + 7 * H + 30 * MIN), "warning"),
    # C14 is still below in the 16-24 shift, with no leader, from its checked window's start.
    ("no_leader", MINE, iso(T0 + 8 * H + 30 * MIN), None, "warning"),
}


@pytest.mark.parametrize("seed", [1, 2])
@closing
async def test_streaming_in_random_small_chunks_with_late_reads_equals_one_backfill(
        personnel_db: Callable[[], Awaitable[str]],
        seed: int) -> None:
    """A shift's card reads and F1's methane, once as a back-fill, once in random chunks of 1-25
    rows with 5 % of the reads late and out of order, the worker's clock following the data and
    the clock pass at the end: exactly the same live findings, the hand-written ones."""
    rng = random.Random(seed)
    cards, methane = shift_day()
    end = T0 + 12 * H
    dsn, twin = await personnel_db(), await personnel_db()
    conn, other = await conn_of(dsn), await conn_of(twin)
    await insert_cards(other, cards)
    await insert_readings(other, methane)
    await backfill(twin, PACK, since_ns=T0 - H, until_ns=end, clock=FrozenClock(from_ns(end)))
    want = await live(twin)
    assert brief(want) == EXPECTED
    rows: list[tuple[str, int, Any]] = sorted([("c", r[1], r) for r in cards] + [("m", r[1], r) for r in methane],
                                             key=lambda x: x[1])
    arrival: list[list[tuple[str, int, Any]]] = [[] for _ in rows]
    j = 0
    while j < len(rows):
        size = rng.randint(1, 25)
        for r in rows[j:j + size]:
            late = rng.random() < 0.05
            arrival[min(len(rows) - 1, j + (rng.randint(size, 200) if late else 0))].append(r)
        j += size
    clock = FrozenClock(from_ns(T0 - H))
    worker = RuleWorker(dsn, PACK, clock=clock)
    batch: list[tuple[str, int, Any]] = []
    now = T0 - H
    for k, got in enumerate(arrival):
        batch += got
        if batch and (rng.random() < 0.15 or k == len(arrival) - 1):
            now = max(now, max(x[1] for x in batch))
            clock.set(from_ns(now))
            await insert_cards(conn, [x[2] for x in batch if x[0] == "c"])
            await insert_readings(conn, [x[2] for x in batch if x[0] == "m"])
            await worker.run(burst=True)
            batch = []
    clock.set(from_ns(end))
    await worker.personnel_clock_pass(conn)
    got = await live(dsn)
    assert brief(got) == EXPECTED
    assert got == want
    # Nothing left to change: a re-evaluation of everything at the same clock writes nothing.
    tally = Tally()
    async with conn.transaction():
        mine = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        assert not await reevaluate_personnel(conn, mine, [(T0 - H, end)], now_ns=end, tally=tally)


@closing
async def test_a_late_shaft_read_withdraws_a_no_leader_it_kept_open_far_after_it(
        personnel_db: Callable[[], Awaitable[str]]) -> None:
    """C01 goes down at 08:10 and is not read again; L1, a leader, comes at 11:00. Judged at
    13:00: no_leader 08:30-11:00. Then C01's shaft read at 08:20 arrives late: nobody worked
    without a leader, so the finding goes, though it starts after the late read and ended long
    before the clock's last minutes (the late read's window must reach as far as the stay it
    ended had run)."""
    dsn = await personnel_db()
    conn = await conn_of(dsn)
    clock = FrozenClock(from_ns(T0 + 5 * H))
    await insert_cards(conn, [("C01", T0 + 10 * MIN, ROAD), ("L1", T0 + 3 * H, ROAD)])
    await RuleWorker(dsn, PACK, clock=clock).run(burst=True)
    assert brief(await live(dsn, ["no_leader"])) == {
        ("no_leader", MINE, iso(T0 + 30 * MIN), iso(T0 + 3 * H), "warning")}
    await insert_cards(conn, [("C01", T0 + 20 * MIN, SHAFT)])
    await RuleWorker(dsn, PACK, clock=clock).run(burst=True)
    assert await live(dsn, ["no_leader"]) == {}
