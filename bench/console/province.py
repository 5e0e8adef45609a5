"""Grow the API benchmark's database into a province: mines up to 900 in province 140000, each with
coordinates, cases (overdue, in progress, closed), findings, some orders and offline findings;
and console users per role. Idempotent (a `meta` key)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from api.console.users import create_user

PROVINCE = "140000"
PASSWORD = "bench console password"
COUNTIES = 30  # 30 counties of 30 mines: a county's page is a tenth of the province's


def extra_code(i: int) -> str:
    return f"1498{i:08d}"


async def grow(dsn: str, *, total: int, end: datetime) -> int:
    """Add mines until the province holds `total`; returns how many were added."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM meta WHERE key = 'bench_console_province'"):
            return 0
        have: int = await conn.fetchval("SELECT count(*) FROM mines WHERE province = $1", PROVINCE)
        add = max(0, total - have)
        await conn.executemany(
            "INSERT INTO regions(code, name, level, parent) VALUES ($1, $2, 'county', '149900') ON CONFLICT DO NOTHING",
            [(f"1498{c:02d}", f"bench county {c}") for c in range(COUNTIES)])
        # coordinates over Shanxi (110.2-114.5 E, 34.6-40.7 N), as a grid with jitter
        await conn.execute(
            "INSERT INTO mines(code, name, kind, county, city, province, gas_class, approved_underground, "
            "longitude, latitude) SELECT '1498' || lpad(g::text, 8, '0'), 'bench province mine ' || g, 'coal', "
            "'1498' || lpad((g % $2)::text, 2, '0'), '149900', $3, 'high', 300, "
            "110.2 + (g % 30) * 0.14 + random() * 0.05, 34.6 + (g / 30) * 0.2 + random() * 0.05 "
            "FROM generate_series(0, $1 - 1) g ON CONFLICT (code) DO NOTHING", add, COUNTIES, PROVINCE)
        await conn.execute(
            "UPDATE mines SET longitude = 112 + random(), latitude = 37 + random() WHERE longitude IS NULL")
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM mines WHERE code LIKE '1498%' ORDER BY id")]
        cases = []
        for k, mid in enumerate(ids):
            # an open case past its deadline, one in rectification, two closed
            cases += [(mid, "offline", "county", "acknowledged", end - timedelta(days=9), end - timedelta(days=2)),
                      (mid, "stuck", "city" if k % 7 == 0 else "county", "rectifying", end - timedelta(days=3),
                       end + timedelta(days=4)),
                      (mid, "methane_exceedance", "county", "closed", end - timedelta(days=40), None),
                      (mid, "offline", "county", "closed", end - timedelta(days=80), None)]
        await conn.executemany(
            "INSERT INTO cases(mine_id, rule, level, state, opened_at, level_since, deadline, identity) "
            "VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
            [(*c, f"bench-province:{c[0]}:{c[1]}:{c[3]}:{c[4].isoformat()}") for c in cases])
        await conn.execute(
            "INSERT INTO findings(rule, mine_id, subject, start_ts, end_ts, level, tier, evidence) "
            "SELECT c.rule, c.mine_id, 'case-' || c.id, c.opened_at, "
            "CASE WHEN c.state = 'closed' THEN c.opened_at + interval '1 hour' END, 'warning', 'county', '{}'::jsonb "
            "FROM cases c JOIN mines m ON m.id = c.mine_id WHERE m.code LIKE '1498%'")
        await conn.execute(
            "INSERT INTO case_findings(case_id, finding_id) SELECT c.id, f.id FROM cases c "
            "JOIN findings f ON f.mine_id = c.mine_id AND f.subject = 'case-' || c.id "
            "JOIN mines m ON m.id = c.mine_id WHERE m.code LIKE '1498%'")
        # 3 % of the mines offline now (an open offline finding), 5 % under an order
        await conn.execute(
            "INSERT INTO findings(rule, mine_id, subject, start_ts, level, tier, evidence) "
            "SELECT 'offline', id, 'mine', $1::timestamptz - interval '2 hours', 'warning', 'county', '{}'::jsonb "
            "FROM mines WHERE code LIKE '1498%' AND id % 33 = 0", end)
        await conn.execute(
            "INSERT INTO orders(mine_id, rule, pack, start_ts, min_end_ts, state) "
            "SELECT id, 'methane_repeat_week', 'bench', $1::timestamptz - interval '1 day', "
            "$1::timestamptz + interval '2 days', 'active' FROM mines WHERE code LIKE '1498%' AND id % 20 = 0", end)
        # the 50 reading mines: a methane case each, open, whose finding is one of the mine's last events
        await conn.execute(
            "WITH e AS (SELECT DISTINCT ON (mine_id) id, mine_id, start_ts FROM exceedance_events "
            "WHERE start_ts < $1 ORDER BY mine_id, start_ts DESC), "
            "f AS (INSERT INTO findings(rule, mine_id, subject, start_ts, level, tier, ref_table, ref_id, evidence) "
            "SELECT 'methane_exceedance', e.mine_id, 'F1', e.start_ts, 'alarm', 'county', 'exceedance_events', e.id, "
            "'{\"peak\": 1.2}'::jsonb FROM e RETURNING id, mine_id, start_ts), "
            "c AS (INSERT INTO cases(mine_id, rule, level, state, opened_at, level_since, identity, checklist) "
            "SELECT f.mine_id, 'methane_exceedance', 'county', 'open', f.start_ts, f.start_ts, "
            "'bench-console:' || f.id, $2::jsonb FROM f RETURNING id, mine_id, opened_at) "
            "INSERT INTO case_findings(case_id, finding_id) SELECT c.id, f.id FROM c JOIN f ON f.mine_id = c.mine_id",
            end, '[{"measure": "power_off_evacuate", "recorded": false}, {"measure": "analyse_cause", "recorded": false}, '
                 '{"measure": "stop_rectify", "recorded": false}, {"measure": "hold_accountable", "recorded": false}]')
        await conn.execute("INSERT INTO meta(key, value) VALUES ('bench_console_province', $1)", str(add))
        await conn.execute("VACUUM ANALYZE")
        return add
    finally:
        await conn.close()


async def users(dsn: str, *, now: datetime) -> None:
    """A console user per role the benchmark signs in as (created once)."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, role, scope in (("bench-province", "province", [PROVINCE]), ("bench-county", "county", ["149901"]),
                                  ("bench-mine", "mine", ["149900000001"])):
            if not await conn.fetchval("SELECT 1 FROM console_users WHERE username = $1", name):
                await create_user(conn, username=name, password=PASSWORD, role=role, scope=scope, now=now)
    finally:
        await conn.close()
