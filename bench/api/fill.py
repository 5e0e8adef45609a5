"""Fill a database for the API benchmark: M mines x 40 points at 30 s for D days, plus events.

Readings go in by direct binary COPY (numpy-built rows, time-major like real ingest:
every point at t, then every point at t + 30 s), not through MQTT and the ingest: the
benchmark is about reading them back. Events, episodes, orders and cases are inserted
directly too.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from minewatch.db.migrate import migrate
from minewatch.db.registry_store import sync_registry
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.registry import Registry

POINTS_PER_MINE = 40
PERIOD_S = 30
EVENTS_PER_DAY = 3
CARDS_PER_MINE = 150
CASES_PER_MINE = 300  # two years of cases
HISTORY_DAYS = 730  # events before the readings window: regulators look back two years
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("pid", ">i4"), ("l2", ">i4"), ("ts", ">i8"), ("l3", ">i4"),
                 ("v", ">f8"), ("l4", ">i4"), ("st", ">i2")])
_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
_LOCATIONS = ("T0", "T1", "T2", "intake", "return_middle", "heading", "heading_return", "main_return")


def mine_code(i: int) -> str:
    return f"1499{i:08d}"


def bench_registry(mines: int) -> Registry:
    """M coal mines in two counties, each with 6 stations and 40 points (32 methane, 4 CO, 4 O2)."""
    out = []
    for i in range(mines):
        code = mine_code(i)
        stations = [{"code": f"{code}S{s:04d}", "location": f"station {s}"} for s in range(1, 7)]
        points = []
        for p in range(1, POINTS_PER_MINE + 1):
            sensor = "0001" if p <= 32 else ("0004" if p <= 36 else "0012")
            points.append({"code": f"{code}_01MN{sensor}_T{p:04d}", "station": stations[p % 6]["code"],
                           "sensor_type": sensor, "location_type": _LOCATIONS[p % len(_LOCATIONS)],
                           "location": f"point {p}", "face": f"F{p % 4}",
                           "unit": {"0001": "%CH4", "0004": "ppm", "0012": "%O2"}[sensor]})
        areas = [{"code": "A00", "name": "shaft", "stations": [stations[0]["code"]], "shaft": True}] + [
            {"code": f"A{s:02d}", "name": f"area {s}", "stations": [stations[s]["code"]], "approved": 40}
            for s in range(1, 6)]
        cards = [{"code": f"C{i:05d}{c:03d}", "role": "leader" if c < 5 else "worker"} for c in range(CARDS_PER_MINE)]
        out.append({"code": code, "name": f"bench mine {i}", "county": "149901" if i % 2 else "149902",
                    "city": "149900", "province": "140000", "stations": stations, "points": points,
                    "areas": areas, "cards": cards, "approved_underground": 450})
    return Registry.model_validate({
        "regions": [{"code": "149900", "name": "bench city", "level": "city", "parent": "140000"},
                    {"code": "149901", "name": "bench county 1", "level": "county", "parent": "149900"},
                    {"code": "149902", "name": "bench county 2", "level": "county", "parent": "149900"}],
        "mines": out})


@dataclass(frozen=True)
class FillResult:
    """What was written and how fast the readings went in."""

    readings: int
    seconds: float
    events: int

    @property
    def rows_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


def _hour_block(point_ids: np.ndarray, start: datetime, rng: np.random.Generator) -> bytes:
    ticks = 3600 // PERIOD_S
    n = ticks * point_ids.size
    rows = np.empty(n, dtype=_ROW)
    rows["n"], rows["l1"], rows["l2"], rows["l3"], rows["l4"] = 4, 4, 8, 8, 2
    base_us = int((start - _PG_EPOCH).total_seconds()) * 1_000_000
    rows["ts"] = np.repeat(base_us + np.arange(ticks, dtype=np.int64) * PERIOD_S * 1_000_000, point_ids.size)
    rows["pid"] = np.tile(point_ids, ticks)
    rows["v"] = np.round(0.3 + 0.1 * rng.standard_normal(n), 3)
    rows["st"] = 0
    return rows.tobytes()


async def fill(dsn: str, *, mines: int, days: int, end: datetime, seed: int = 7,
               progress: bool = True) -> FillResult:
    """Migrate, load the bench registry, COPY readings for [end - days, end), add events."""
    rng = np.random.default_rng(seed)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, backend="auto")
        await sync_registry(conn, bench_registry(mines), checksum="bench", source="bench", now=end)
        mine_ids = {r["code"]: r["id"] for r in await conn.fetch("SELECT id, code FROM mines")}
        point_ids = np.array([r["id"] for r in await conn.fetch(
            "SELECT p.id FROM points p JOIN mines m ON m.id = p.mine_id WHERE m.code LIKE '1499%' ORDER BY p.id")],
            dtype=np.int32)
        start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
        keeper = PartitionKeeper(await current_backend(conn))
        await keeper.ensure_range(conn, "readings", start, end)
        t0, written, hour = time.perf_counter(), 0, start
        while hour < end:
            block = _hour_block(point_ids, hour, rng)
            await conn.copy_to_table("readings", source=io.BytesIO(_HEADER + block + _TRAILER), format="binary",
                                     columns=["point_id", "ts", "value", "status"])
            written += len(block) // _ROW.itemsize
            hour += timedelta(hours=1)
            if progress and hour.hour == 0:
                rate = written / (time.perf_counter() - t0)
                print(f"  {hour:%Y-%m-%d}: {written / 1e6:.1f} M readings, {rate / 1e3:.0f} k rows/s", flush=True)
        seconds = time.perf_counter() - t0
        events = await _events(conn, mine_ids, start, end, rng)
        await conn.execute("VACUUM ANALYZE")
        return FillResult(written, seconds, events)
    finally:
        await conn.close()


async def _events(conn: asyncpg.Connection, mine_ids: dict[str, int], start: datetime, end: datetime,
                  rng: np.random.Generator) -> int:
    """EVENTS_PER_DAY methane events per mine, each with 1-3 episodes on its face's points."""
    points = await conn.fetch("SELECT id, mine_id FROM points WHERE gas = 'methane' ORDER BY id")
    by_mine: dict[int, list[int]] = {}
    for p in points:
        by_mine.setdefault(p["mine_id"], []).append(p["id"])
    span = (end - start).total_seconds()
    n_events = 0
    thresholds = json.dumps({"alarm_hi": 1.0, "clear_hi": 1.0, "poweroff_hi": 1.5, "restore_hi": 1.0})
    for code, mine_id in mine_ids.items():
        if not code.startswith("1499"):
            continue
        count = int(span / 86400 * EVENTS_PER_DAY)
        starts = sorted(start + timedelta(seconds=float(s)) for s in rng.uniform(0, span - 3600, count))
        for k, t in enumerate(starts):
            level = "power_off" if k % 5 == 0 else "alarm"
            eid = await conn.fetchval(
                "INSERT INTO exceedance_events(mine_id, gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, "
                "tier) VALUES ($1, 'methane', 'face', $2, $3, $4, $5, $3, $6, 'county') RETURNING id",
                mine_id, f"F{k % 4}", t, t + timedelta(minutes=20), 1.6 if level == "power_off" else 1.2, level)
            pts = rng.choice(by_mine[mine_id], size=1 + k % 3, replace=False)
            await conn.executemany(
                "INSERT INTO episodes(mine_id, point_id, start_ts, end_ts, end_reason, peak, peak_ts, level, thresholds, "
                "threshold_from, event_id) VALUES ($1, $2, $3, $4, 'cleared', $5, $3, $6, $7::jsonb, $8, $9)",
                [(mine_id, int(p), t + timedelta(seconds=30 * j), t + timedelta(minutes=20), 1.2, level, thresholds,
                  datetime(1970, 1, 1, tzinfo=UTC), eid) for j, p in enumerate(pts)])
            n_events += 1
        await conn.execute(
            "INSERT INTO cases(mine_id, rule, level, state, opened_at, level_since, identity) "
            "VALUES ($1, 'methane_exceedance', 'county', 'open', $2, $2, $3)", mine_id, end, f"bench:{code}")
    return n_events


async def extras(dsn: str, *, mines: int, end: datetime, seed: int = 11) -> bool:
    """What the query plans need besides readings and events (once; False if already there):
    two years of older events (3 a day per mine, one episode each), areas and cards, 12 h of
    card reads at 60 s for 100 cards per mine, orders on some events, CASES_PER_MINE cases
    per mine with a history line each, and 2000 dead letters per mine."""
    rng = np.random.default_rng(seed)
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM meta WHERE key = 'bench_api_extras'"):
            return await _case_extras(conn, end)
        await sync_registry(conn, bench_registry(mines), checksum="bench+", source="bench", now=end)
        oldest = await conn.fetchval("SELECT min(start_ts) FROM exceedance_events")
        await conn.execute(
            "INSERT INTO exceedance_events(mine_id, gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, tier) "
            "SELECT m.id, 'methane', 'face', 'F' || (g % 4), t, t + interval '20 minutes', 1.2, t, "
            "CASE WHEN g % 5 = 0 THEN 'power_off' ELSE 'alarm' END, 'county' FROM mines m "
            "CROSS JOIN generate_series(1, $2::int) g "
            "CROSS JOIN LATERAL (SELECT $1::timestamptz - g * interval '8 hours' - random() * interval '4 hours' AS t) x "
            "WHERE m.code LIKE '1499%' ON CONFLICT DO NOTHING", oldest, HISTORY_DAYS * EVENTS_PER_DAY)
        await conn.execute(
            "INSERT INTO episodes(mine_id, point_id, start_ts, end_ts, end_reason, peak, peak_ts, level, thresholds, "
            "threshold_from, event_id) SELECT e.mine_id, (SELECT p.id FROM points p WHERE p.mine_id = e.mine_id "
            "AND p.gas = 'methane' ORDER BY p.id OFFSET e.id % 32 LIMIT 1), e.start_ts, e.end_ts, 'cleared', e.peak, "
            "e.start_ts, e.level, '{\"alarm_hi\": 1.0}'::jsonb, '1970-01-01', e.id FROM exceedance_events e "
            "WHERE e.start_ts < $1 ON CONFLICT DO NOTHING", oldest)
        keeper = PartitionKeeper(await current_backend(conn))
        await keeper.ensure_range(conn, "card_reads", end - timedelta(hours=12), end)
        for m in await conn.fetch("SELECT id, code FROM mines WHERE code LIKE '1499%' ORDER BY id"):
            cards = [r["id"] for r in await conn.fetch(
                "SELECT id FROM cards WHERE mine_id = $1 ORDER BY code LIMIT 100", m["id"])]
            stations = [r["id"] for r in await conn.fetch(
                "SELECT id FROM stations WHERE mine_id = $1 ORDER BY code", m["id"])]
            rows = [(c, end - timedelta(minutes=k), stations[1 + (c + k // 90) % 5], m["id"])
                    for c in cards for k in range(1, 12 * 60)]
            await conn.copy_records_to_table("card_reads", records=rows,
                                             columns=["card_id", "ts", "station_id", "mine_id"])
            events = [r["id"] for r in await conn.fetch(
                "SELECT id FROM exceedance_events WHERE mine_id = $1 ORDER BY start_ts", m["id"])]
            for k in range(0, len(events) - 1, 30):
                oid = await conn.fetchval(
                    "INSERT INTO orders(mine_id, rule, pack, start_ts, min_end_ts, state) SELECT $1, "
                    "'methane_repeat_week', 'bench', start_ts, start_ts + interval '3 days', "
                    "CASE WHEN $3 THEN 'active' ELSE 'lifted' END FROM exceedance_events WHERE id = $2 RETURNING id",
                    m["id"], events[k + 1], k + 30 >= len(events) - 1)
                await conn.executemany("INSERT INTO order_events(order_id, event_id, role) VALUES ($1, $2, 'trigger')",
                                       [(oid, events[k]), (oid, events[k + 1])])
            for k in range(CASES_PER_MINE):
                opened = end - timedelta(hours=float(rng.uniform(1, 24 * HISTORY_DAYS)))
                state = "closed" if k % 4 else "acknowledged"
                cid = await conn.fetchval(
                    "INSERT INTO cases(mine_id, rule, level, state, opened_at, level_since, identity) "
                    "VALUES ($1, $2, 'county', $3, $4, $4, $5) RETURNING id",
                    m["id"], ("stuck", "offline", "methane_exceedance")[k % 3], state, opened, f"bench:{m['code']}:{k}")
                await conn.execute(
                    "INSERT INTO case_history(case_id, at, actor, role, action, from_state, to_state, effects_done_at) "
                    "VALUES ($1, $2, 'duty', 'mine', 'acknowledge', 'open', 'acknowledged', $2)",
                    cid, opened + timedelta(minutes=10))
            await conn.executemany(
                "INSERT INTO dead_letters(received_at, source, topic, mine_code, reason, payload) "
                "VALUES ($1, 'mqtt', $2, $3, 'unknown_point', '{}')",
                [(end - timedelta(minutes=float(rng.uniform(0, 43200))), f"mines/{m['code']}/safety", m["code"])
                 for _ in range(2000)])
        await conn.execute("INSERT INTO meta(key, value) VALUES ('bench_api_extras', 'done')")
        await _case_extras(conn, end)
        return True
    finally:
        await conn.close()


async def _case_extras(conn: asyncpg.Connection, end: datetime) -> bool:
    """A finding and two notifications per case (what the rules and alerting workers would have
    written); idempotent. False when there was nothing to add."""
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM case_findings)"):
        return False
    await conn.execute(
        "INSERT INTO findings(rule, mine_id, subject, start_ts, level, tier, evidence) "
        "SELECT c.rule, c.mine_id, 'case-' || c.id, c.opened_at, 'alarm', 'county', '{}'::jsonb FROM cases c")
    await conn.execute(
        "INSERT INTO case_findings(case_id, finding_id) SELECT c.id, f.id FROM cases c "
        "JOIN findings f ON f.mine_id = c.mine_id AND f.subject = 'case-' || c.id")
    await conn.execute(
        "INSERT INTO notifications(id, case_id, mine_id, reason, level, receiver, channel, target, dedup_key, body, "
        "state, attempts, next_attempt_at, expires_at, created_at, delivered_at) "
        "SELECT gen_random_uuid(), c.id, c.mine_id, 'raised', lv, 'duty-' || lv, 'sms', '13800000000', "
        "c.id || ':' || lv, '{}'::jsonb, 'delivered', 1, c.opened_at, c.opened_at + interval '1 day', c.opened_at, "
        "c.opened_at FROM cases c CROSS JOIN unnest(ARRAY['mine', 'county']) lv")
    await conn.execute("VACUUM ANALYZE")
    return True
