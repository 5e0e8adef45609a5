"""GET /v1/mines/{mine}/personnel: who counts as underground, counts by area against limits."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest
import pytest_asyncio

from api.pagination import CursorCodec
from api.personnel.service import underground
from rules.packs import PersonnelSettings
from tests.api.conftest import NOW, auth
from tests.api.scenario import M1, M2, World

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MIN = timedelta(minutes=1)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def crew(db: str, world: World) -> dict[str, str]:
    """Card reads of mine 2 for each case of the definition; returns label -> card code."""
    conn = await asyncpg.connect(db)
    try:
        mine_id = world.mine_ids[M2]
        cards = await conn.fetch("SELECT id, code FROM cards WHERE mine_id = $1 ORDER BY code LIMIT 11", mine_id)
        st = {r["code"][-5:]: r["id"] for r in await conn.fetch("SELECT id, code FROM stations WHERE mine_id = $1",
                                                                  mine_id)}
        shaft, a01, a02, a05 = st["S0001"], st["S0002"], st["S0003"], st["S0006"]
        labels = ["in_a01", "entering", "leaving", "stale", "r1", "r2", "r3", "r4", "r5", "reentered", "gone"]
        rows: list[tuple[int, object, int, int]] = []

        def reads(card: int, station: int, start: timedelta, end: timedelta) -> None:
            t = start
            while t >= end:
                rows.append((card, NOW - t, station, mine_id))
                t -= MIN

        c = {label: cards[i]["id"] for i, label in enumerate(labels)}
        reads(c["in_a01"], shaft, 120 * MIN, 116 * MIN)
        reads(c["in_a01"], a01, 115 * MIN, 1 * MIN)
        reads(c["entering"], shaft, 3 * MIN, 1 * MIN)
        reads(c["leaving"], a02, 60 * MIN, 10 * MIN)
        reads(c["leaving"], shaft, 8 * MIN, 6 * MIN)
        reads(c["stale"], a01, 14 * 60 * MIN, 13 * 60 * MIN)
        for r in ("r1", "r2", "r3", "r4", "r5"):
            reads(c[r], a05, 30 * MIN, 2 * MIN)
        reads(c["reentered"], a01, 10 * 60 * MIN, 9 * 60 * MIN)
        reads(c["reentered"], shaft, 9 * 60 * MIN - MIN, 9 * 60 * MIN - 3 * MIN)  # out yesterday evening
        reads(c["reentered"], shaft, 2 * MIN, 1 * MIN)  # and in again now
        reads(c["gone"], a01, 200 * MIN, 30 * MIN)
        reads(c["gone"], shaft, 29 * MIN, 27 * MIN)  # left half an hour ago
        await conn.copy_records_to_table("card_reads", records=rows, columns=["card_id", "ts", "station_id", "mine_id"])
        return {label: cards[i]["code"] for i, label in enumerate(labels)}
    finally:
        await conn.close()


async def test_who_is_underground(client: httpx.AsyncClient, world: World, crew: dict[str, str]) -> None:
    r = await client.get(f"/v1/mines/{M2}/personnel", headers=auth(world, "mine2"))
    assert r.status_code == 200, r.text
    body = r.json()
    # rules.md §7: the latest read decides. "entering" was read only at the shaft (not below yet);
    # "reentered" left yesterday and was read at the shaft again (a shaft read above ground changes
    # nothing); "stale" was last read in A01 13 h ago: silent, still underground (a person to look
    # for); "gone" left through the shaft.
    inside = {"in_a01", "stale", "r1", "r2", "r3", "r4", "r5"}
    assert {p["card"] for p in body["items"]} == {crew[x] for x in inside}
    assert body["underground"] == len(inside) and body["approved"] == 450 and body["over"] is False
    assert body["limit"] == 450
    areas = {a["area"]: a for a in body["areas"]}
    assert {k: a["count"] for k, a in areas.items()} == {"A00": 0, "A01": 2, "A02": 0, "A03": 0, "A04": 0, "A05": 5}
    assert areas["A05"]["over"] is True and areas["A05"]["restricted"] is True and areas["A05"]["approved"] == 4
    assert areas["A01"]["over"] is False and areas["A00"]["shaft"] is True
    by_card = {p["card"]: p for p in body["items"]}
    assert by_card[crew["in_a01"]]["area"] == "A01"
    assert by_card[crew["in_a01"]]["last_seen"] == (NOW - MIN).isoformat().replace("+00:00", "Z")
    assert by_card[crew["stale"]]["last_seen"] == (NOW - 13 * 60 * MIN).isoformat().replace("+00:00", "Z")
    assert "window_hours" not in body and body["unassigned"] == 0


@pytest.mark.parametrize(("approved", "severe", "national", "limit"), [
    (450, False, 450, 450),   # the approved count, within the bound
    (600, False, 450, 450),   # capped by the national bound (rules.md §7)
    (600, True, 450, 600),    # a disaster-severe mine: bounded by 850, the approved count holds
    (900, True, 450, 850),
    (None, False, 450, 450),  # no approved count: the bound
    (450, False, 6, 6),       # a pack's lower bound: 7 underground is over it, as over_capacity judges
])
async def test_the_mine_limit_is_the_one_over_capacity_judges_by(
        pool: asyncpg.Pool, world: World, crew: dict[str, str], approved: int | None, severe: bool, national: int,
        limit: int) -> None:
    mine_id = world.mine_ids[M2]
    async with pool.acquire() as conn:
        old = await conn.fetchrow("SELECT approved_underground, disaster_severe FROM mines WHERE id = $1", mine_id)
        await conn.execute("UPDATE mines SET approved_underground = $2, disaster_severe = $3 WHERE id = $1",
                           mine_id, approved, severe)
    try:
        out = await underground(pool=pool, codec=CursorCodec(b"k"), mine_id=mine_id, mine=M2, now=NOW, limit=1,
                                cursor=None, rules=PersonnelSettings(national_limit=national))
    finally:
        async with pool.acquire() as conn:
            await conn.execute("UPDATE mines SET approved_underground = $2, disaster_severe = $3 WHERE id = $1",
                               mine_id, old["approved_underground"], old["disaster_severe"])
    assert (out.approved, out.limit, out.underground) == (approved, limit, 7)
    assert out.over is (limit < 7)


async def test_pages_list_people_once_and_keep_totals(client: httpx.AsyncClient, world: World,
                                                      crew: dict[str, str]) -> None:
    cards: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get(f"/v1/mines/{M2}/personnel", params=params, headers=auth(world, "admin"))).json()
        assert body["underground"] == 7
        cards += [p["card"] for p in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert cards == sorted(cards) and len(cards) == len(set(cards)) == 7


async def test_other_mines_see_nothing(client: httpx.AsyncClient, world: World, crew: dict[str, str]) -> None:
    assert (await client.get(f"/v1/mines/{M2}/personnel", headers=auth(world, "mine1"))).status_code == 404
    empty = (await client.get("/v1/mines/140100000003/personnel", headers=auth(world, "admin"))).json()
    assert (empty["leader_underground"], empty["leaders"], empty["overtime"]) == (False, [], [])
    assert (await client.get(f"/v1/mines/{M2}/personnel", headers=auth(world, "county_gj"))).status_code == 404
    empty = (await client.get("/v1/mines/140100000003/personnel", headers=auth(world, "admin"))).json()
    assert empty["underground"] == 0 and empty["items"] == []


def z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def test_since_when_leaders_and_cards_in_overtime(client: httpx.AsyncClient, world: World, db: str,
                                                        crew: dict[str, str]) -> None:
    """Each person's area run and entry, whether a leader is underground, and the open overtime
    findings of the rules worker (rules.md §7) — of this mine only."""
    conn = await asyncpg.connect(db)
    try:
        await conn.execute("UPDATE cards SET role = 'leader' WHERE code = $1", crew["r1"])
        entry = NOW - 10 * 60 * MIN - 5 * MIN
        fid = await conn.fetchval(
            "INSERT INTO findings (rule, mine_id, subject, start_ts, level, evidence) VALUES ('overtime', $1, $2, $3, "
            "'warning', $4::jsonb) RETURNING id", world.mine_ids[M2], crew["in_a01"], NOW - 5 * MIN,
            json.dumps({"card": crew["in_a01"], "entry": z(entry)}))
        # Ended, and another mine's: neither is listed.
        await conn.execute(
            "INSERT INTO findings (rule, mine_id, subject, start_ts, end_ts, level, state) VALUES "
            "('overtime', $1, $2, $3, $4, 'warning', 'closed'), ('overtime', $5, 'C-OTHER', $3, NULL, 'warning', 'open')",
            world.mine_ids[M2], crew["gone"], NOW - 60 * MIN, NOW - 30 * MIN, world.mine_ids[M1])
    finally:
        await conn.close()
    body = (await client.get(f"/v1/mines/{M2}/personnel", headers=auth(world, "mine2"))).json()
    assert body["leader_underground"] is True and crew["r1"] in body["leaders"]
    assert body["leaders"] == sorted(p["card"] for p in body["items"] if p["role"] == "leader")
    assert body["overtime"] == [{"card": crew["in_a01"], "entry": z(entry), "since": z(NOW - 5 * MIN), "finding": fid}]
    by_card = {p["card"]: p for p in body["items"]}
    # In A01 since its first read there (115 min ago, after 5 min at the shaft), underground since then.
    assert (by_card[crew["in_a01"]]["since"], by_card[crew["in_a01"]]["entered"]) == (z(NOW - 115 * MIN),) * 2
    # Silent for 13 h in A01 since 14 h ago, with no shaft read before: in since its first read.
    assert (by_card[crew["stale"]]["since"], by_card[crew["stale"]]["entered"]) == (z(NOW - 14 * 60 * MIN),) * 2
    assert (by_card[crew["r2"]]["since"], by_card[crew["r2"]]["entered"]) == (z(NOW - 30 * MIN),) * 2
    # A mine token sees its own mine's people and overtime, never another mine's.
    mine1 = await client.get(f"/v1/mines/{M1}/personnel", headers=auth(world, "mine1"))
    assert mine1.status_code == 200
    assert [o["card"] for o in mine1.json()["overtime"]] == ["C-OTHER"]
    assert (await client.get(f"/v1/mines/{M2}/personnel", headers=auth(world, "mine1"))).status_code == 404
    empty = (await client.get("/v1/mines/140100000003/personnel", headers=auth(world, "admin"))).json()
    assert (empty["leader_underground"], empty["leaders"], empty["overtime"]) == (False, [], [])
