"""`minewatch run` against a configured database leaves the operator's registry alone: the sample
registry belongs to the embedded demo, and loading it would retire every point of theirs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from launcher.embedded import free_port
from launcher.runall import loads_registry
from minewatch.db.registry_store import sync_registry
from minewatch.registry import load_registry
from minewatch.settings import Settings
from tests.conftest import SAMPLE_REGISTRY, _create_db, _drop_db, spawn_minewatch


def test_only_the_embedded_demo_or_an_operators_file_is_loaded(tmp_path: Path) -> None:
    sample = Settings(registry_path=SAMPLE_REGISTRY)
    assert loads_registry(sample, embedded=True)
    assert not loads_registry(sample, embedded=False)
    own = tmp_path / "own.yaml"
    own.write_text(SAMPLE_REGISTRY.read_text(encoding="utf-8"), encoding="utf-8")
    assert loads_registry(Settings(registry_path=own), embedded=False)


def _operator_registry(tmp_path: Path) -> Path:
    """One mine of the operator's own, under a code the sample does not use."""
    data: dict[str, Any] = yaml.safe_load(SAMPLE_REGISTRY.read_text(encoding="utf-8"))
    text = yaml.safe_dump({"regions": data.get("regions", []), "mines": data["mines"][:1]}, allow_unicode=True)
    path = tmp_path / "operator.yaml"
    path.write_text(text.replace("140100000001", "149800000077"), encoding="utf-8")
    return path


@pytest.mark.integration
def test_run_on_a_configured_database_keeps_the_operators_points_active(
        pg_dsn: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    async def prepare() -> tuple[str, int]:
        dsn = await _create_db(pg_dsn, registry=False)
        reg, checksum = load_registry(_operator_registry(tmp_path))
        conn = await asyncpg.connect(dsn)
        try:
            s = await sync_registry(conn, reg, checksum=checksum, source="operator", now=datetime.now(UTC))
        finally:
            await conn.close()
        return dsn, s.points

    async def state(dsn: str) -> asyncpg.Record:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM mines) AS mines, (SELECT count(*) FROM points WHERE active) AS active, "
                "(SELECT count(*) FROM points) AS points, (SELECT count(*) FROM registry_loads) AS loads")
            assert row is not None
            return row
        finally:
            await conn.close()

    dsn, n_points = asyncio.run(prepare())
    try:
        env = {"DATABASE_URL": dsn, "MQTT_URL": mqtt_url, "MINEWATCH_INGEST_TOPIC_PREFIX": topic_prefix,
               "MINEWATCH_API_PORT": str(free_port()), "MINEWATCH_DATA_DIR": str(tmp_path / "data")}
        log = tmp_path / "run.log"
        proc = spawn_minewatch(["run", "--seconds", "3", "--no-simulators"], env, log)
        rc = proc.wait(120)
        text = log.read_text()
        assert rc == 0, text
        assert "registry left as it is" in text, text
        got = asyncio.run(state(dsn))
        assert n_points > 0
        assert (got["mines"], got["points"], got["active"], got["loads"]) == (1, n_points, n_points, 1), text
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))
