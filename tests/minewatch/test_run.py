"""`minewatch run`, the README's first command, as a real process: servers given by URL, the
simulators publishing, a scripted methane rise becoming an event, a finding and a case, the
API answering, and a clean stop at the end."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from launcher.embedded import free_port
from tests.conftest import spawn_minewatch

pytestmark = pytest.mark.integration

SCENARIO = """
name: quick
description: one methane rise at mine 140100000001, face 11301, right away
events:
  - {at: "+5s", point: 140100000001_01MN0001_T0003, kind: methane_rise, to: 1.4, duration: 90s, ramp: 1s}
"""


async def _poll(dsn: str, deadline: float) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM readings) AS readings, (SELECT count(*) FROM card_reads) AS cards, "
                "(SELECT count(*) FROM findings WHERE rule = 'methane_exceedance') AS findings, "
                "(SELECT count(*) FROM cases WHERE rule = 'methane_exceedance') AS cases")
            assert row is not None
            got = dict(row)
            if got["cases"] >= 1 or time.monotonic() > deadline:
                return got
            await asyncio.sleep(1)
    finally:
        await conn.close()


def test_run_brings_up_the_chain_and_stops_cleanly(fresh_db: str, mqtt_url: str, topic_prefix: str,
                                                   tmp_path: Path) -> None:
    scenario = tmp_path / "quick.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    port = free_port()
    env = {"DATABASE_URL": fresh_db, "MQTT_URL": mqtt_url, "MINEWATCH_INGEST_TOPIC_PREFIX": topic_prefix,
           "MINEWATCH_API_PORT": str(port), "MINEWATCH_DATA_DIR": str(tmp_path / "data")}
    log = tmp_path / "run.log"
    proc = spawn_minewatch(["run", "--seconds", "150", "--scenario", str(scenario)], env, log)
    try:
        got = asyncio.run(_poll(fresh_db, time.monotonic() + 120))
        assert got["readings"] > 0 and got["cards"] > 0, (got, log.read_text())
        assert got["findings"] == 1 and got["cases"] == 1, (got, log.read_text())
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        # the API is up and refuses an anonymous caller
        assert httpx.get(f"http://127.0.0.1:{port}/v1/mines", timeout=5).status_code == 401
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    text = log.read_text()
    assert rc == 0, text
    assert "Minewatch is running" in text and f"http://127.0.0.1:{port}" in text
    assert "[minewatch] stopped" in text
    assert "Traceback" not in text, text
