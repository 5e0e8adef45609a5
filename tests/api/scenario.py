"""A known world for API tests: events, orders, cases, readings, card reads and tokens, written directly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from alerting.actions import checklist_to_json
from alerting.checklist import Checklist
from api.auth.tokens import create_token
from minewatch.db.timeseries import PartitionKeeper, current_backend

# Strong enough for require_strong_pepper (minewatch/settings.py): tests start `minewatch api` with it.
PEPPER = "test-pepper-0123456789abcdef0123456789abcdef"
M1, M2, M3, TAILINGS, PIT = "140100000001", "140100000002", "140100000003", "140100000901", "140100000902"
ALL_MINES = {M1, M2, M3, TAILINGS, PIT}
COUNTY_QX = "140121"  # 清徐县: M1, M2, TAILINGS
COUNTY_GJ = "140181"  # 古交市: M3, PIT
CITY = "140100"
PROVINCE = "140000"
COUNTY_QX_MINES = {M1, M2, TAILINGS}
COUNTY_GJ_MINES = {M3, PIT}
T0_POINT = f"{M1}_01MN0001_T0003"  # methane, upper corner of face F11301
T1_POINT = f"{M1}_01MN0001_T0004"


@dataclass
class World:
    """Ids of what `seed` wrote, and a token per role."""

    now: datetime
    mine_ids: dict[str, int]
    events: dict[str, list[int]] = field(default_factory=dict)  # mine -> event ids, newest first
    orders: dict[str, list[int]] = field(default_factory=dict)
    cases: dict[str, int] = field(default_factory=dict)  # label -> case id
    tokens: dict[str, str] = field(default_factory=dict)  # label -> bearer token
    token_ids: dict[str, int] = field(default_factory=dict)
    readings_from: datetime | None = None
    readings: list[tuple[datetime, float]] = field(default_factory=list)


async def point_id(conn: asyncpg.Connection, code: str) -> int:
    value = await conn.fetchval("SELECT id FROM points WHERE code = $1", code)
    assert value is not None, code
    return int(value)


async def add_event(conn: asyncpg.Connection, mine_id: int, *, start: datetime, end: datetime | None,
                    peak: float, level: str, points: list[int], gas: str = "methane", scope: str = "face",
                    scope_key: str = "F11301") -> int:
    """An exceedance event with one episode per point (each spanning the event)."""
    eid: int = await conn.fetchval(
        "INSERT INTO exceedance_events(mine_id, gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, tier) "
        "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'county') RETURNING id",
        mine_id, gas, scope, scope_key, start, end, peak, start + timedelta(minutes=1), level)
    for i, pid in enumerate(points):
        await conn.execute(
            "INSERT INTO episodes(mine_id, point_id, start_ts, end_ts, end_reason, peak, peak_ts, level, thresholds, "
            "threshold_from, event_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9::jsonb,$10,$11)",
            mine_id, pid, start + timedelta(seconds=30 * i), end, "cleared" if end else None, peak - 0.1 * i,
            start + timedelta(minutes=1), level, json.dumps({"alarm_hi": 1.0, "poweroff_hi": 1.5}),
            datetime(1970, 1, 1, tzinfo=start.tzinfo), eid)
    return eid


async def add_case(conn: asyncpg.Connection, mine_id: int, *, rule: str, level: str, state: str,
                   opened_at: datetime, methane: bool = False, order_id: int | None = None,
                   severity: str = "normal") -> int:
    checklist = json.dumps(checklist_to_json(Checklist.new())) if methane else "[]"
    cid: int = await conn.fetchval(
        "INSERT INTO cases(mine_id, rule, level, severity, state, title, opened_at, level_since, checklist, "
        "identity, order_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$7,$8::jsonb,$9,$10) RETURNING id",
        mine_id, rule, level, severity, state, f"{rule} at {mine_id}", opened_at, checklist,
        f"{rule}:{mine_id}:{opened_at.isoformat()}", order_id)
    return cid


async def seed(dsn: str, now: datetime) -> World:
    """Write the world into a migrated database that holds the sample registry."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = {r["code"]: r["id"] for r in await conn.fetch("SELECT id, code FROM mines")}
        w = World(now=now, mine_ids=ids)
        t0, t1 = await point_id(conn, T0_POINT), await point_id(conn, T1_POINT)
        m2_point = await point_id(conn, f"{M2}_01MN0001_T0003")
        m3_point = await point_id(conn, f"{M3}_01MN0001_T0003")
        day = timedelta(days=1)
        # M1: three methane events (the newest still open) and a CO event; an active order.
        e_old = await add_event(conn, ids[M1], start=now - 6 * day, end=now - 6 * day + timedelta(minutes=20),
                                peak=1.2, level="alarm", points=[t0])
        e_mid = await add_event(conn, ids[M1], start=now - 2 * day, end=now - 2 * day + timedelta(minutes=40),
                                peak=1.8, level="power_off", points=[t0, t1])
        e_co = await add_event(conn, ids[M1], start=now - 1 * day, end=now - 1 * day + timedelta(minutes=5),
                               peak=40.0, level="alarm", points=[await point_id(conn, f"{M1}_01MN0004_T0007")],
                               gas="co", scope="point", scope_key=f"{M1}_01MN0004_T0007")
        e_open = await add_event(conn, ids[M1], start=now - timedelta(hours=1), end=None, peak=1.1,
                                 level="alarm", points=[t1])
        w.events[M1] = [e_open, e_co, e_mid, e_old]
        w.events[M2] = [await add_event(conn, ids[M2], start=now - 3 * day, end=now - 3 * day + timedelta(hours=1),
                                        peak=1.3, level="alarm", points=[m2_point])]
        w.events[M3] = [await add_event(conn, ids[M3], start=now - 20 * day, end=now - 20 * day + timedelta(hours=1),
                                        peak=1.6, level="power_off", points=[m3_point])]
        o1: int = await conn.fetchval(
            "INSERT INTO orders(mine_id, rule, pack, start_ts, min_end_ts, state) "
            "VALUES ($1,'methane_repeat_week','shanxi',$2,$3,'active') RETURNING id",
            ids[M1], now - 2 * day, now + day)
        await conn.executemany("INSERT INTO order_events(order_id, event_id, role) VALUES ($1,$2,$3)",
                               [(o1, e_old, "trigger"), (o1, e_mid, "trigger"), (o1, e_open, "attached")])
        o3: int = await conn.fetchval(
            "INSERT INTO orders(mine_id, rule, pack, start_ts, min_end_ts, state, lifted_at) "
            "VALUES ($1,'methane_repeat_week','shanxi',$2,$3,'lifted',$4) RETURNING id",
            ids[M3], now - 30 * day, now - 27 * day, now - 26 * day)
        w.orders = {M1: [o1], M3: [o3]}
        # Cases: M1 open methane case at county level (with a finding and a notification),
        # M2 rectified case at city level and a closed one, M3 open case at county level.
        w.cases["m1_open"] = await add_case(conn, ids[M1], rule="methane_exceedance", level="county", state="open",
                                            opened_at=now - timedelta(hours=1), methane=True)
        w.cases["m1_order"] = await add_case(conn, ids[M1], rule="methane_repeat_week", level="county",
                                             state="rectifying", opened_at=now - 2 * day, order_id=o1)
        w.cases["m2_rectified"] = await add_case(conn, ids[M2], rule="stuck", level="city", state="rectified",
                                                 opened_at=now - 3 * day)
        w.cases["m2_closed"] = await add_case(conn, ids[M2], rule="offline", level="county", state="closed",
                                              opened_at=now - 10 * day)
        w.cases["m3_open"] = await add_case(conn, ids[M3], rule="methane_exceedance", level="county", state="open",
                                            opened_at=now - 20 * day, methane=True)
        fid: int = await conn.fetchval(
            "INSERT INTO findings(rule, mine_id, subject, start_ts, level, tier, ref_table, ref_id, evidence) "
            "VALUES ('methane_exceedance', $1, 'F11301', $2, 'alarm', 'county', 'exceedance_events', $3, $4::jsonb) "
            "RETURNING id", ids[M1], now - timedelta(hours=1), e_open, json.dumps({"peak": 1.1}))
        await conn.execute("INSERT INTO case_findings(case_id, finding_id) VALUES ($1, $2)", w.cases["m1_open"], fid)
        await conn.execute(
            "INSERT INTO notifications(id, case_id, mine_id, reason, level, receiver, channel, target, dedup_key, "
            "body, next_attempt_at, expires_at, created_at, state, attempts, delivered_at) VALUES "
            "('6f1c1d1e-0000-4000-8000-000000000001', $1, $2, 'raised', 'county', 'qx-duty', 'sms', '13800000001', "
            "'k1', '{}'::jsonb, $3, $4, $3, 'delivered', 1, $3)",
            w.cases["m1_open"], ids[M1], now - timedelta(minutes=59), now + day)
        # Dead letters: one per mine M1 and M3, one that names no mine.
        for mine, reason in ((M1, "unknown_point"), (M3, "bad_type"), (None, "bad_json")):
            await conn.execute(
                "INSERT INTO dead_letters(received_at, source, topic, mine_code, reason, payload) "
                "VALUES ($1, 'mqtt', $2, $3, $4, '{\"x\": 1}')",
                now - timedelta(minutes=5), f"mines/{mine or 'x'}/safety", mine, reason)
        # Readings of T0_POINT: two hours at 30 s, ending at now.
        backend = await current_backend(conn)
        keeper = PartitionKeeper(backend)
        start = now - timedelta(hours=2)
        await keeper.ensure_range(conn, "readings", start - day, now + day)
        await keeper.ensure_range(conn, "card_reads", now - 2 * day, now + day)
        w.readings_from = start
        w.readings = [(start + timedelta(seconds=30 * i), round(0.2 + 0.01 * (i % 37), 3)) for i in range(240)]
        await conn.copy_records_to_table(
            "readings", records=[(t0, ts, v, 0) for ts, v in w.readings], columns=["point_id", "ts", "value", "status"])
        for label, role, scope in (("admin", "admin", []), ("mine1", "mine", [M1]), ("mine2", "mine", [M2]),
                                   ("county_qx", "county", [COUNTY_QX]), ("county_gj", "county", [COUNTY_GJ]),
                                   ("city", "city", [CITY]), ("province", "province", [PROVINCE])):
            tid, token = await create_token(conn, name=f"{label}-user", role=role, scope=scope, pepper=PEPPER,
                                            now=now - day)
            w.tokens[label], w.token_ids[label] = token, tid
        return w
    finally:
        await conn.close()
