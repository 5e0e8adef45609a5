"""The integrity rules (rules.md §6, §4 power-off) wired into the rules worker and the back-fill.

One mine (tests/rules/db/data/registry_integrity.yaml), six hours of readings every 30 s from
08:00 local (one shift), with a hand-written fault each: the heading's methane point unplugged
for 10 min, the upper corner frozen at 0.12 % for 3 h while the face moves, the return airway
calibrating for 40 min (and again for 2 min during the face's exceedance), the return airway
reading 0.5 % below its face for 45 min, the face reaching its power-off level while its relay
stays on for 7.5 min, and the F2 station reporting comm. lost for 10 min. The expected findings
are written out by hand below; the clock (injected) stands a day after the data.
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC

import asyncpg
import pytest

from minewatch.clock import FrozenClock
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.timeutil import from_ns
from rules.backfill import backfill
from rules.evaluate import iso as ev_iso
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from tests.rules.db.helpers import MIN, Row, S, insert_readings, ns, snapshot

pytestmark = pytest.mark.integration
PACK = builtin_pack("default")
MINE = "149900000011"
FACE, RETURN, CORNER, HEADING, RELAY, CO = (
    f"{MINE}_01MN0001_T0001",
    f"{MINE}_01MN0001_T0002",
    f"{MINE}_01MN0001_T0003",
    f"{MINE}_01MN0001_T0004",
    f"{MINE}_01KG1009_T0005",
    f"{MINE}_01MN0004_T0006",
)
POINTS = (FACE, RETURN, CORNER, HEADING, RELAY, CO)
STATION_2 = f"{MINE}S0002"
T0 = ns("2026-11-10T08:00:00+08:00")  # a shift start (08-16 local)
N = 720  # six hours at 30 s
NOW = from_ns(T0 + 24 * 60 * MIN)
INTEGRITY = ("offline", "station_fault", "stuck", "calibration_abuse", "implausible_pair", "power_off_failure", "under_reporting")
StateRow = tuple[str, int, int]  # (station code, ts ns, state)


def t(k: int) -> int:
    return T0 + k * 30 * S


def readings() -> list[Row]:
    """The six hours of readings with their faults, in time order."""
    rows: list[Row] = []
    for k in range(N):
        face = 0.30 + 0.01 * ((k * 7) % 11)
        ret = 0.28 + 0.01 * ((k * 5 + 3) % 11)
        if 300 <= k < 390:  # the return airway reads 0.5 below its face for 45 min
            face = 0.80 + 0.01 * ((k * 7) % 11)
            ret = face - 0.5
        if 500 <= k < 510:  # the face at power-off level for 5 min
            face = 1.6
        status_ret = 4 if 200 <= k < 280 or 502 <= k < 506 else 0  # calibrating 40 min, then 2 min
        corner = 0.12 if 120 <= k < 480 else 0.25 + 0.01 * ((k * 3 + 1) % 11)  # frozen 3 h
        relay = 0.0 if 515 <= k < 530 else 1.0  # opens 7.5 min after the power-off reading
        rows += [
            (FACE, t(k), round(face, 4), 0),
            (RETURN, t(k), round(ret, 4), status_ret),
            (CORNER, t(k), round(corner, 4), 0),
            (RELAY, t(k), relay, 0),
            (CO, t(k), float(5 + (k * 7) % 11), 0),
        ]
        if not 100 <= k < 120:  # the heading's point unplugged for 10 min
            rows.append((HEADING, t(k), round(0.2 + 0.01 * ((k * 7 + 2) % 11), 4), 0))
    return rows


def states() -> list[StateRow]:
    """F2's station: ok, comm. lost at 200 min for 10 min, ok again."""
    return [(STATION_2, T0, 0), (STATION_2, T0 + 200 * MIN, 1), (STATION_2, T0 + 205 * MIN, 1), (STATION_2, T0 + 210 * MIN, 0)]


def iso(ns_: int | None) -> str | None:
    return None if ns_ is None else from_ns(ns_).isoformat()


# (rule, subject, start, end): written from the faults above, not from a run.
EXPECTED = {
    ("offline", HEADING, iso(t(99)), iso(t(120))),  # last reading before the 10 min, the next one
    *(("offline", p, iso(t(N - 1)), None) for p in POINTS),  # the clock stands a day later: all silent
    ("stuck", CORNER, iso(t(120)), iso(t(480))),  # first of the equal readings -> first different
    ("calibration_abuse", RETURN, iso(t(200)), iso(t(506))),  # 40 + 2 min in the 08-16 shift
    ("calibration_abuse", RETURN, iso(t(502)), iso(t(505))),  # during the face's episode
    ("implausible_pair", RETURN, iso(t(300)), iso(t(390))),  # 45 min at 0.5 below
    ("power_off_failure", FACE, iso(t(500) + 60 * S), iso(t(515))),  # t + 60 s -> the relay's first "off"
    ("station_fault", STATION_2, iso(T0 + 200 * MIN), iso(T0 + 210 * MIN)),
}


async def insert_states(conn: asyncpg.Connection, rows: Sequence[StateRow]) -> None:
    """Store station states as the ingest does: with a `station_states` dirty window."""
    if not rows:
        return
    ids = {r["code"]: (r["id"], r["mine_id"]) for r in await conn.fetch("SELECT code, id, mine_id FROM stations")}
    lo, hi = min(r[1] for r in rows), max(r[1] for r in rows)
    await PartitionKeeper(await current_backend(conn)).ensure_range(conn, "station_states", from_ns(lo), from_ns(hi))
    async with conn.transaction():
        await conn.copy_records_to_table(
            "station_states",
            columns=["station_id", "ts", "state"],
            records=[(ids[c][0], from_ns(ts), state) for c, ts, state in rows],
        )
        await conn.execute(
            "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) VALUES ($1, 'station_states', $2, $3, $4)",
            ids[rows[0][0]][1],
            from_ns(lo),
            from_ns(hi),
            len(rows),
        )


async def findings(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT rule, subject, start_ts, end_ts, level, state, evidence FROM findings "
                "WHERE state <> 'superseded' AND rule = ANY($1::text[]) ORDER BY rule, subject, start_ts",
                list(INTEGRITY),
            )
        )
    finally:
        await conn.close()


def keyed(rows: Sequence[asyncpg.Record]) -> set[tuple[str, str, str | None, str | None]]:
    return {
        (
            r["rule"],
            r["subject"],
            r["start_ts"].astimezone(UTC).isoformat(),
            None if r["end_ts"] is None else r["end_ts"].astimezone(UTC).isoformat(),
        )
        for r in rows
    }


async def stream(dsn: str, rows: Sequence[Row], sts: Sequence[StateRow], clock: FrozenClock) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await insert_readings(conn, rows)
        await insert_states(conn, sts)
    finally:
        await conn.close()
    await RuleWorker(dsn, PACK, clock=clock).run(burst=True)


async def test_the_worker_finds_every_fault_with_its_evidence_and_nothing_else(
    integrity_db: Callable[[], Awaitable[str]],
) -> None:
    dsn = await integrity_db()
    await stream(dsn, readings(), states(), FrozenClock(NOW))
    rows = await findings(dsn)
    assert keyed(rows) == EXPECTED
    by = {
        (r["rule"], r["subject"], r["start_ts"].astimezone(UTC).isoformat()): (r["level"], json.loads(r["evidence"]))
        for r in rows
    }
    level, ev = by[("offline", HEADING, iso(t(99)))]
    assert level == "warning" and ev["seen_s"] == 630 and ev["limit_s"] == 90 and ev["expected_period_s"] == 30
    assert ev["raised_at"] == ev_iso(t(99) + 90 * S) and ev["station"] == STATION_2
    level, ev = by[("stuck", CORNER, iso(t(120)))]
    assert level == "warning" and ev["value"] == 0.12 and ev["witness"] == FACE and ev["n_readings"] == 360
    assert ev["last_equal_reading"] == ev_iso(t(479)) and ev["min_duration_s"] == 7200
    level, ev = by[("calibration_abuse", RETURN, iso(t(200)))]
    assert level == "major" and ev["kind"] == "shift" and ev["seen_s"] == 42 * 60 and ev["limit_s"] == 1800
    assert ev["shift_start"] == ev_iso(T0) and ev["shift_end"] == ev_iso(T0 + 8 * 60 * MIN)
    level, ev = by[("calibration_abuse", RETURN, iso(t(502)))]
    assert level == "major" and ev["kind"] == "neighbour_episode" and ev["neighbour"] == FACE
    assert ev["n_readings"] == 4 and ev["episode_start"] == ev_iso(t(500))
    level, ev = by[("implausible_pair", RETURN, iso(t(300)))]
    assert level == "warning" and ev["upstream"] == FACE and ev["downstream"] == RETURN
    assert ev["worst_difference"] == pytest.approx(0.5) and ev["n_times"] == 90 and ev["last_holding"] == ev_iso(t(389))
    level, ev = by[("power_off_failure", FACE, iso(t(500) + 60 * S))]
    assert level == "major" and ev["feed"] == RELAY and ev["trigger_at"] == ev_iso(t(500))
    assert ev["seen_feed_readings"] == 3 and ev["last_feed_value"] == 1.0 and ev["off_at"] == ev_iso(t(515))
    assert ev["poweroff_threshold"] == 1.5 and ev["window"] == [ev_iso(t(498)), ev_iso(t(504))]
    assert [r[1] for r in ev["readings"][RELAY]] == [1.0] * 7 and ev["readings"][FACE][2] == [ev_iso(t(500)), 1.6, 0]
    level, ev = by[("station_fault", STATION_2, iso(T0 + 200 * MIN))]
    assert level == "warning" and ev["reported_state"] == 1 and ev["source"] == "fzss" and ev["seen_s"] == 600
    assert ev["points"] == [HEADING, CO]


async def test_re_evaluating_the_same_windows_changes_nothing(integrity_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await integrity_db()
    clock = FrozenClock(NOW)
    await stream(dsn, readings(), states(), clock)
    conn = await asyncpg.connect(dsn)
    try:
        stamp = await conn.fetchval("SELECT max(updated_at) FROM findings")
        n = await conn.fetchval("SELECT count(*) FROM findings")
        mine = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
        for kind in ("readings", "station_states"):
            await conn.execute(
                "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts) VALUES ($1, $2, $3, $4)",
                mine,
                kind,
                from_ns(T0),
                from_ns(t(N - 1)),
            )
        again = await RuleWorker(dsn, PACK, clock=clock).run(burst=True)
        assert again.windows == 2 and again.changes() == 0, again
        tally = await backfill(dsn, PACK, since_ns=T0 - 60 * MIN, until_ns=t(N) + 60 * MIN, clock=clock)
        assert tally.changes() == 0, tally
        assert await conn.fetchval("SELECT count(*) FROM findings") == n
        assert await conn.fetchval("SELECT max(updated_at) FROM findings") == stamp
    finally:
        await conn.close()
    assert keyed(await findings(dsn)) == EXPECTED


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
async def test_streaming_in_random_small_chunks_equals_one_backfill(
    integrity_db: Callable[[], Awaitable[str]], seed: int
) -> None:
    """The same readings once as a back-fill, once in random small chunks (a fifth of them
    late by up to 30 chunks) through the worker: the same findings."""
    rng = random.Random(seed)
    clock = FrozenClock(NOW)
    rows, sts = readings(), states()
    whole = await integrity_db()
    conn = await asyncpg.connect(whole)
    try:
        await insert_readings(conn, rows)
        await insert_states(conn, sts)
        await conn.execute("DELETE FROM dirty_windows")
    finally:
        await conn.close()
    await backfill(whole, PACK, since_ns=T0 - 60 * MIN, until_ns=t(N) + 60 * MIN, clock=clock, chunk_ns=2 * 60 * MIN)
    assert keyed(await findings(whole)) == EXPECTED

    streamed = await integrity_db()
    chunks: list[list[Row]] = []
    k = 0
    while k < len(rows):
        size = rng.randint(1, 60)
        chunks.append(rows[k : k + size])
        k += size
    arrival: list[list[Row]] = [[] for _ in range(len(chunks) + 31)]
    for j, chunk in enumerate(chunks):
        for r in chunk:
            arrival[j + (rng.randint(1, 30) if rng.random() < 0.2 else 0)].append(r)
    state_at: dict[int, list[StateRow]] = {}
    for s_ in sts:
        state_at.setdefault(rng.randrange(len(arrival)), []).append(s_)
    conn = await asyncpg.connect(streamed)
    try:
        for j, batch in enumerate(arrival):
            clock.set(NOW)
            await insert_readings(conn, batch)
            await insert_states(conn, state_at.get(j, []))
            if rng.random() < 0.3 or j == len(arrival) - 1:
                await RuleWorker(streamed, PACK, clock=clock).run(burst=True)
    finally:
        await conn.close()
    a, b = await snapshot(whole), await snapshot(streamed)
    assert a["findings"] == b["findings"]
    assert keyed(await findings(streamed)) == EXPECTED
