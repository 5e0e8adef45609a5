"""The Grafana reader role (deploy/postgres/grafana_reader.sql) reads what the dashboards query and
nothing else: no dead-letter payloads, tokens, console users or sessions, outbox or case comments.
(That every dashboard query runs as the role is test_dashboards.py's
test_every_query_runs_as_the_documented_read_only_role.)"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from minewatch.db import ident
from tests.dashboards.test_dashboards import _reader_statements, run

pytestmark = pytest.mark.integration

READABLE = {"mines", "regions", "points", "point_thresholds", "stations", "areas", "area_stations", "cards",
            "readings", "readings_1m", "readings_1h", "station_states_named", "card_reads", "exceedance_events",
            "episodes", "orders", "order_events", "cases", "dirty_windows", "meta"}
DEAD_LETTER_COLUMNS = {"received_at", "source", "reason", "mine_code", "reprocessed_at"}


def test_the_reader_sees_only_what_dashboards_need(db: str) -> None:
    role = f"mw_grafana_{uuid.uuid4().hex[:8]}"

    async def go() -> None:
        conn = await asyncpg.connect(db)
        try:
            statements = _reader_statements(role, db.rsplit("/", 1)[-1].split("?")[0])
            try:
                await conn.execute(statements[0])
            except asyncpg.InsufficientPrivilegeError:
                pytest.skip("the test database user may not create roles")
            try:
                for statement in statements[1:]:
                    await conn.execute(statement)
                rows = await conn.fetch(
                    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'p') AND NOT c.relispartition "
                    "AND has_table_privilege($1, c.oid, 'SELECT')", role)
                assert {r["relname"] for r in rows} == READABLE
                columns = await conn.fetch(
                    "SELECT attname FROM pg_attribute WHERE attrelid = 'dead_letters'::regclass AND attnum > 0 "
                    "AND NOT attisdropped AND has_column_privilege($1, 'dead_letters'::regclass, attnum, 'SELECT')",
                    role)
                assert {r["attname"] for r in columns} == DEAD_LETTER_COLUMNS
                await conn.execute(f'SET ROLE "{role}"')
                await conn.fetch("SELECT reason, count(*) FROM dead_letters GROUP BY 1")
                for denied in ("SELECT payload FROM dead_letters", "SELECT * FROM dead_letters",
                               "SELECT token_hash FROM api_tokens", "SELECT * FROM console_users",
                               "SELECT * FROM console_sessions", "SELECT target FROM notifications",
                               "SELECT comment FROM case_history", "SELECT * FROM findings"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.fetch(denied)
            finally:  # roles are cluster-wide: never leave one behind
                await conn.execute("RESET ROLE")
                await conn.execute(f"DROP OWNED BY {ident(role)}")
                await conn.execute(f"DROP ROLE {ident(role)}")
        finally:
            await conn.close()
    run(go())
