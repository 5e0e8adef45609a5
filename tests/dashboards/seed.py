"""A small, known state of one mine for the dashboard queries to find: readings, an open event, an order, cases, people."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from minewatch.db import timeseries

MINE = "140100000001"          # the sample registry's first coal mine (county 140121)
QUIET_MINE = "140100000002"    # same county, nothing happening
COUNTY = "140121"
PROVINCE = "140000"
# positions for mines the registry left without one (WGS-84 longitude, latitude); the province
# map draws every mine that has one
POSITIONS = {MINE: (112.3412, 37.5891), QUIET_MINE: (112.2905, 37.6203)}
HOT_POINT = "140100000001_01MN0001_T0003"    # upper corner of face F11301: in alarm
CALM_POINTS = ("140100000001_01MN0001_T0004", "140100000001_01MN0001_T0005")
SILENT_POINT = "140100000001_01MN0001_T0027"  # no readings at all; an intake airway (alarm 0.5)
RETURN_POINT = "140100000001_01MN0001_T0005"  # longwall return airway T2: alarm 1.0, power-off 1.0
MAIN_RETURN_POINT = "140100000001_01MN0001_T0029"  # main return: alarm 0.75, no power-off
RETHRESHOLDED_POINT = "140100000001_01MN0001_T0014"  # face T1 whose thresholds change 2 h ago
NEW_THRESHOLDS_AGO = timedelta(hours=2)
NEW_ALARM, NEW_POWER_OFF = 0.8, 1.2            # a stricter set a mine might adopt
CO_POINT = "140100000001_01MN0004_T0007"      # CO: 30 ppm (over its 24 ppm alarm) for the last 10 min
O2_POINT = "140100000001_01MN0012_T0008"      # O2: dips to 19.5 % (under its 20 % lower alarm) for a minute
CO2_POINT = "140100000001_01MN0013_T0034"     # CO2: 0.3 %, under its 0.5 % alarm
AREA_STATION = "140100000001S0002"           # area A01 (11301 face)
SHAFT_STATION = "140100000001S0001"          # area A00, the shaft
WORKINGS_STATION = "140100000001S0005"       # area A04
PEOPLE_IN_A01 = 3
RECENT = timedelta(hours=6)                  # readings every 30 s over the last 6 h
OLD_AT = timedelta(hours=50)                 # and an hour of readings 50 h ago (for the 1 h buckets)


@dataclass(frozen=True)
class Seeded:
    """What was written, for the assertions."""

    now: datetime
    open_event: int
    closed_event: int
    order: int
    overdue_case: int
    unacknowledged_case: int
    closed_case: int
    coordinates: dict[str, tuple[float, float]]  # mine code -> (longitude, latitude); empty without the columns


async def _ids(conn: asyncpg.Connection, table: str, codes: list[str]) -> dict[str, int]:
    rows = await conn.fetch(f"SELECT code, id FROM {table} WHERE code = ANY($1::text[])", codes)
    return {r["code"]: r["id"] for r in rows}


async def seed(conn: asyncpg.Connection, now: datetime) -> Seeded:
    """Write the state; `now` is the database's clock (the panels of current state use now())."""
    mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", MINE)
    points = await _ids(conn, "points", [HOT_POINT, *CALM_POINTS, CO_POINT, O2_POINT, CO2_POINT, RETHRESHOLDED_POINT])
    stations = await _ids(conn, "stations", [AREA_STATION, SHAFT_STATION, WORKINGS_STATION])
    keeper = timeseries.PartitionKeeper(await timeseries.current_backend(conn))
    for table in ("readings", "card_reads", "station_states"):
        await keeper.ensure_range(conn, table, now - OLD_AT - timedelta(hours=1), now + timedelta(minutes=5))

    rows: list[tuple[int, datetime, float, int]] = []
    steps = int(RECENT / timedelta(seconds=30))
    for i in range(steps):
        ts = now - RECENT + timedelta(seconds=30 * (i + 1))
        left = steps - 1 - i  # 0 for the newest reading
        rows.append((points[HOT_POINT], ts, 1.2 if left < 16 else 0.3, 0))  # above 1.0 for the last 8 min
        rows.append((points[CALM_POINTS[0]], ts, 0.4, 0))
        rows.append((points[CALM_POINTS[1]], ts, 0.6, 4 if left == 0 else 0))  # calibrating right now
        rows.append((points[CO_POINT], ts, 30.0 if left < 20 else 5.0, 0))
        rows.append((points[O2_POINT], ts, 19.5 if 100 <= left < 102 else 20.8, 0))
        rows.append((points[CO2_POINT], ts, 0.3, 0))
    for i in range(120):
        rows.append((points[HOT_POINT], now - OLD_AT + timedelta(seconds=30 * i), 2.1 if i < 20 else 0.2, 0))
    await conn.copy_records_to_table("readings", records=rows, columns=["point_id", "ts", "value", "status"])

    await conn.execute(
        "INSERT INTO point_thresholds(point_id, effective_from, alarm_hi, clear_hi, poweroff_hi, restore_hi, source) "
        "VALUES ($1, $2, $3, $3, $4, $3, 'seed')", points[RETHRESHOLDED_POINT], now - NEW_THRESHOLDS_AGO, NEW_ALARM,
        NEW_POWER_OFF)

    start = now - timedelta(minutes=8)
    order = await conn.fetchval(
        "INSERT INTO orders(mine_id, rule, pack, start_ts, min_end_ts) VALUES ($1, 'repeat_exceedance', 'default', "
        "$2, $3) RETURNING id", mine_id, now - OLD_AT, now - OLD_AT + timedelta(hours=72))
    closed_event = await conn.fetchval(
        "INSERT INTO exceedance_events(mine_id, gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, tier, "
        "order_id) VALUES ($1, 'methane', 'face', 'F11301', $2, $3, 2.1, $2, 'power_off', 'city', $4) RETURNING id",
        mine_id, now - OLD_AT, now - OLD_AT + timedelta(minutes=10), order)
    open_event = await conn.fetchval(
        "INSERT INTO exceedance_events(mine_id, gas, scope, scope_key, start_ts, peak, peak_ts, level, tier, order_id) "
        "VALUES ($1, 'methane', 'face', 'F11301', $2, 1.2, $2, 'alarm', 'county', $3) RETURNING id",
        mine_id, start, order)
    thresholds = json.dumps({"alarm_hi": 1.0, "clear_hi": 1.0, "poweroff_hi": 1.5, "restore_hi": 1.0})
    for event, (s, e, peak, level) in ((closed_event, (now - OLD_AT, now - OLD_AT + timedelta(minutes=10), 2.1,
                                                       "power_off")),
                                       (open_event, (start, None, 1.2, "alarm"))):
        await conn.execute(
            "INSERT INTO episodes(mine_id, point_id, start_ts, end_ts, end_reason, peak, peak_ts, level, thresholds, "
            "threshold_from, event_id) VALUES ($1, $2, $3, $4, $5, $6, $3, $7, $8::jsonb, 'epoch', $9)",
            mine_id, points[HOT_POINT], s, e, "cleared" if e else None, peak, level, thresholds, event)
    await conn.executemany("INSERT INTO order_events(order_id, event_id, role) VALUES ($1, $2, $3)",
                           [(order, closed_event, "trigger"), (order, open_event, "attached")])

    async def case(identity: str, **cols: object) -> int:
        base: dict[str, object] = {"mine_id": mine_id, "rule": "methane_exceedance", "level": "county",
                                   "title": identity, "identity": identity}
        base.update(cols)
        names = ", ".join(base)
        marks = ", ".join(f"${i}" for i in range(1, len(base) + 1))
        value: int = await conn.fetchval(f"INSERT INTO cases({names}) VALUES ({marks}) RETURNING id",
                                         *base.values())
        return value

    unacknowledged = await case("open-unacked", state="open", opened_at=now - timedelta(hours=2),
                                level_since=now - timedelta(hours=1))
    overdue = await case("rectifying-late", state="rectifying", severity="red", level="city",
                         opened_at=now - OLD_AT, level_since=now - OLD_AT, acknowledged_at=now - OLD_AT,
                         deadline=now - timedelta(hours=1), order_id=order)
    closed = await case("closed", state="closed", opened_at=now - OLD_AT, level_since=now - OLD_AT,
                        closed_at=now - timedelta(hours=20))

    # two workers and a leader in A01, then two more workers (one leaves, one just went in)
    workers = [r["id"] for r in await conn.fetch(
        "SELECT id FROM cards WHERE mine_id = $1 AND role = 'worker' ORDER BY code LIMIT 4", mine_id)]
    leader = await conn.fetchval("SELECT id FROM cards WHERE mine_id = $1 AND role = 'leader' ORDER BY code", mine_id)
    cards = [workers[0], workers[1], leader, workers[2], workers[3]]
    reads = [(c, now - timedelta(minutes=5), stations[AREA_STATION], mine_id) for c in cards[:PEOPLE_IN_A01]]
    # one card came up from the workings and left through the shaft: not underground
    reads += [(cards[3], now - timedelta(minutes=6), stations[WORKINGS_STATION], mine_id),
              (cards[3], now - timedelta(minutes=1), stations[SHAFT_STATION], mine_id)]
    # one card has just gone in at the shaft: underground, in the shaft area
    reads += [(cards[4], now - timedelta(minutes=2), stations[SHAFT_STATION], mine_id)]
    await conn.copy_records_to_table("card_reads", records=reads, columns=["card_id", "ts", "station_id", "mine_id"])
    await conn.copy_records_to_table(
        "station_states", columns=["station_id", "ts", "state", "power"],
        records=[(stations[SHAFT_STATION], now - timedelta(minutes=1), 0, 1),
                 (stations[AREA_STATION], now - timedelta(minutes=2), 1, 1)])

    await conn.executemany(
        "INSERT INTO dead_letters(received_at, source, topic, mine_code, reason, detail, payload) "
        "VALUES ($1, 'mqtt', $2, $3, $4, '', $5)",
        [(now - timedelta(minutes=10), f"mines/{MINE}/safety", MINE, "unknown_point", '{"point": "X"}'),
         (now - timedelta(minutes=9), f"mines/{MINE}/safety", MINE, "naive_time", '{"ts": "2026-01-01T00:00"}')])
    await conn.execute(
        "INSERT INTO dirty_windows(mine_id, kind, min_ts, max_ts, n_rows, created_at) "
        "VALUES ($1, 'readings', $2, $3, 10, $3)", mine_id, now - timedelta(minutes=1), now - timedelta(seconds=30))

    coordinates: dict[str, tuple[float, float]] = {}
    if await conn.fetchval("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                           "AND table_name = 'mines' AND column_name IN ('longitude', 'latitude')") == 2:
        for code, (lon, lat) in POSITIONS.items():
            await conn.execute("UPDATE mines SET longitude = COALESCE(longitude, $2), latitude = COALESCE(latitude, $3) "
                               "WHERE code = $1", code, lon, lat)
        coordinates = {r["code"]: (r["longitude"], r["latitude"]) for r in await conn.fetch(
            "SELECT code, longitude, latitude FROM mines WHERE active AND province = $1 "
            "AND longitude IS NOT NULL AND latitude IS NOT NULL", PROVINCE)}

    if keeper.backend == "timescale":  # continuous aggregates see new rows only when refreshed
        await timeseries.refresh_aggregates(conn)
    return Seeded(now=now, open_event=open_event, closed_event=closed_event, order=order, overdue_case=overdue,
                  unacknowledged_case=unacknowledged, closed_case=closed,
                  coordinates=coordinates)
