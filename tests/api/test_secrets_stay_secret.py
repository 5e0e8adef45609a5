"""No secret lands in a table or a log: the API runs with known secret values, its error paths are
walked (wrong tokens, wrong reply secrets, the secrets themselves offered as credentials, database
refusals), then its log and every text, JSON and bytea column of the database are searched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from minewatch.db import ident
from tests.api.live import ApiProcess
from tests.api.scenario import M1, PEPPER, World

pytestmark = pytest.mark.integration

SMS_SECRET = "sms-inbound-secret-7f3a9c1e5b2d4f6a8c0e"
DB_PASSWORD = "db-password-2b4d6f8a0c1e3a5c7e9b"  # in the DSN; the test server trusts, so any works
GATEWAY_AUTH = "gateway-auth-9e8d7c6b5a4f3e2d1c0b"
HOOK_SECRET = "hook-secret-1a2b3c4d5e6f7a8b9c0d"
SECRETS = {"pepper": PEPPER, "sms": SMS_SECRET, "db password": DB_PASSWORD, "gateway": GATEWAY_AUTH,
           "hook": HOOK_SECRET}


def _with_password(dsn: str, password: str) -> str:
    scheme, rest = dsn.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return f"{scheme}://{userinfo.split(':')[0]}:{password}@{host}"


@pytest.fixture(scope="module")
def api(db: str, world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    log = tmp_path_factory.mktemp("secrets") / "api.log"
    env = {"MINEWATCH_SMS_INBOUND_SECRET": SMS_SECRET, "MINEWATCH_SMS_GATEWAY_AUTH": GATEWAY_AUTH,
           "MINEWATCH_HOOK_SECRET_OPS": HOOK_SECRET}
    with ApiProcess(_with_password(db, DB_PASSWORD), log, env=env, args=("--access-log",)) as proc:
        yield proc


def _walk_error_paths(api: ApiProcess, world: World) -> None:
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    with httpx.Client(base_url=api.url, timeout=30) as c:
        for secret in SECRETS.values():
            # a secret offered as a token, as a reply secret, in a path and a query
            for path in ("/v1/mines", f"/v1/mines/{M1}", "/v1/cases/1", "/v1/dead-letters"):
                r = c.get(path, headers={"Authorization": f"Bearer {secret}"})
                assert r.status_code == 401 and secret not in r.text
            r = c.post("/v1/alerting/sms/replies", json={"from": "13800000101", "text": "1 1"},
                       headers={"Authorization": f"Bearer {secret}x"})
            assert r.status_code == 401 and secret not in r.text
            r = c.get("/v1/cases", params={"cursor": "A" * 40}, headers=admin)
            assert r.status_code == 400 and secret not in r.text
        # the genuine reply secret, a reply that is refused (not registered / no such case)
        for text in ("1 999999", "1 99999999999999999999999", "hello"):
            r = c.post("/v1/alerting/sms/replies", json={"from": "13312345678", "text": text},
                       headers={"Authorization": f"Bearer {SMS_SECRET}"})
            assert r.status_code in (200, 404, 403) and SMS_SECRET not in r.text
        # validation, 404, 405, 413, a database error path (statement that fails on input)
        for r in (c.get("/v1/cases/0", headers=admin), c.get("/v1/nope", headers=admin),
                  c.delete("/v1/mines", headers=admin),
                  c.post("/v1/cases/1/actions", content=b"x" * 400_000, headers={**admin, "Content-Type": "application/json"}),
                  c.get(f"/v1/mines/{M1}/exceedances", params={"since": "9999-12-31T23:59:59Z"}, headers=admin),
                  c.get("/readyz"), c.get("/metrics")):
            assert r.status_code < 500 or r.status_code == 503
            assert not any(s in r.text for s in SECRETS.values()), r.text[:300]


async def _columns_holding(dsn: str, needles: dict[str, str]) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        cols = await conn.fetch(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "AND c.data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'ARRAY')")
        found = []
        for col in cols:
            table, column = col["table_name"], col["column_name"]
            expr = f"{ident(column)}::text" if col["data_type"] != "bytea" else f"encode({ident(column)}, 'escape')"
            for label, needle in needles.items():
                hit = await conn.fetchval(
                    f"SELECT EXISTS (SELECT 1 FROM {ident(table)} WHERE strpos({expr}, $1) > 0)", needle)
                if hit:
                    found.append(f"{table}.{column}: {label}")
        return found
    finally:
        await conn.close()


def test_secrets_are_in_no_log_and_no_column(api: ApiProcess, world: World, db: str) -> None:
    _walk_error_paths(api, world)
    api.stop()
    log = api.log.read_text(errors="replace")
    assert "GET /v1/mines" in log  # the access log was on: the search below read real lines
    for label, secret in SECRETS.items():
        assert secret not in log, f"{label} in the API log"
    # and the tokens the API was shown: stored only as HMACs
    needles = {**SECRETS, **{f"token {k}": v for k, v in world.tokens.items()}}
    assert asyncio.run(_columns_holding(db, needles)) == []


def test_the_search_finds_what_is_there(db: str, tmp_path: Path) -> None:
    """The column search is not vacuous: a planted value is found in text, jsonb and bytea columns."""
    async def go() -> list[str]:
        conn = await asyncpg.connect(db)
        try:
            await conn.execute("INSERT INTO dead_letters(received_at, source, reason, payload, payload_raw, detail) "
                               "VALUES (now(), 'mqtt', 'plant', 'x', $1, $2)", b"\xffplanted-raw", json.dumps("d"))
            found = await _columns_holding(db, {"raw": "planted-raw", "payload": "x"})
            await conn.execute("DELETE FROM dead_letters WHERE reason = 'plant'")
            return found
        finally:
            await conn.close()
    found = asyncio.run(go())
    assert "dead_letters.payload_raw: raw" in found and "dead_letters.payload: payload" in found
