"""Shared pieces of the rules DB tests: databases with the test registry, ingest-like inserts, snapshots."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from minewatch.db.registry_store import sync_registry
from minewatch.db.timeseries import PartitionKeeper, current_backend
from minewatch.registry import load_registry
from minewatch.timeutil import from_ns, to_ns
from rules.load import copy_binary
from tests.conftest import ROOT, _create_db

DATA = Path(__file__).resolve().parent / "data"
REGISTRY = DATA / "registry.yaml"
SCENARIO = DATA / "scenario_two_weeks.yaml"
MINES = ("149900000001", "149900000002", "149900000003")
S = 1_000_000_000
MIN = 60 * S

Row = tuple[str, int, float, int]  # (point code, ts ns, value, status)


async def new_db(pg_dsn: str, registry: Path = REGISTRY) -> str:
    """A fresh, migrated database with the test registry loaded."""
    dsn = await _create_db(pg_dsn, registry=False)
    await load_test_registry(dsn, registry)
    return dsn


async def load_test_registry(dsn: str, registry: Path = REGISTRY) -> None:
    """Load (or reload) a registry file, as `minewatch registry load` does."""
    reg, checksum = load_registry(registry)
    conn = await asyncpg.connect(dsn)
    try:
        await sync_registry(conn, reg, checksum=checksum, source=str(registry), now=datetime.now(UTC))
    finally:
        await conn.close()


async def insert_readings(conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
    """Store readings as the ingest does: one transaction with a dirty window per mine and a NOTIFY."""
    if not rows:
        return
    ids = {r["code"]: (r["id"], r["mine_id"]) for r in await conn.fetch("SELECT code, id, mine_id FROM points")}
    lo, hi = min(r[1] for r in rows), max(r[1] for r in rows)
    keeper = PartitionKeeper(await current_backend(conn))
    await keeper.ensure_range(conn, "readings", from_ns(lo), from_ns(hi))
    windows: dict[int, list[int]] = {}
    for code, ts, _, _ in rows:
        w = windows.setdefault(ids[code][1], [ts, ts, 0])
        w[0], w[1], w[2] = min(w[0], ts), max(w[1], ts), w[2] + 1
    async with conn.transaction():
        await conn.copy_records_to_table("readings", columns=["point_id", "ts", "value", "status"], records=[
            (ids[code][0], from_ns(ts), value, status) for code, ts, value, status in rows])
        await conn.executemany(
            "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) VALUES ($1, 'readings', $2, $3, $4)",
            [(m, from_ns(a), from_ns(b), n) for m, (a, b, n) in windows.items()])
        await conn.execute("SELECT pg_notify('minewatch_dirty', '')")


def series(code: str, start: int, values: Iterable[float], *, period: int = 30 * S, status: int = 0) -> list[Row]:
    """Readings of one point every `period` from `start`."""
    return [(code, start + k * period, float(v), status) for k, v in enumerate(values)]


async def copy_readings(src: str, dst: str) -> int:
    """Copy every reading from one database to another (same registry, same point ids)."""
    a, b = await asyncpg.connect(src), await asyncpg.connect(dst)
    try:
        ids_a = {r["code"]: r["id"] for r in await a.fetch("SELECT code, id FROM points")}
        ids_b = {r["code"]: r["id"] for r in await b.fetch("SELECT code, id FROM points")}
        assert ids_a == ids_b, "both databases must have loaded the same registry the same way"
        lo, hi = await a.fetchval("SELECT min(ts) FROM readings"), await a.fetchval("SELECT max(ts) FROM readings")
        await PartitionKeeper(await current_backend(b)).ensure_range(b, "readings", lo, hi)
        raw = await copy_binary(a, "SELECT point_id, ts, value, status FROM readings")
        await b.copy_to_table("readings", source=io.BytesIO(raw), columns=["point_id", "ts", "value", "status"],
                              format="binary")
        return int(await b.fetchval("SELECT count(*) FROM readings"))
    finally:
        await a.close()
        await b.close()


async def copy_station_states(src: str, dst: str) -> int:
    """Copy every station state from one database to another (same registry, same station ids)."""
    a, b = await asyncpg.connect(src), await asyncpg.connect(dst)
    try:
        rows = await a.fetch("SELECT station_id, ts, state, power FROM station_states ORDER BY station_id, ts")
        if rows:
            await PartitionKeeper(await current_backend(b)).ensure_range(
                b, "station_states", min(r["ts"] for r in rows), max(r["ts"] for r in rows))
            await b.copy_records_to_table("station_states", columns=["station_id", "ts", "state", "power"],
                                          records=[tuple(r) for r in rows])
        return len(rows)
    finally:
        await a.close()
        await b.close()


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


def _strip_ids(value: Any) -> Any:
    """Evidence without database ids (they differ between two databases of the same data)."""
    if isinstance(value, dict):
        return {k: _strip_ids(v) for k, v in value.items() if not (k.endswith("_id") or k.endswith("_ids"))}
    return value


async def snapshot(dsn: str) -> dict[str, set[tuple[Any, ...]]]:
    """Everything the rules decided, by identity and codes (no ids): comparable across databases.

    Superseded findings and withdrawn orders are left out: they record the path the data
    took to arrive, not what the data says.
    """
    conn = await asyncpg.connect(dsn)
    try:
        episodes = {(r["code"], _iso(r["start_ts"]), _iso(r["end_ts"]), r["end_reason"], r["peak"], _iso(r["peak_ts"]),
                     r["level"], _iso(r["threshold_from"]), r["thresholds"], r["event_key"]) for r in await conn.fetch(
            "SELECT p.code, e.start_ts, e.end_ts, e.end_reason, e.peak, e.peak_ts, e.level, e.threshold_from, "
            "e.thresholds::text, ev.scope_key || '@' || ev.start_ts::text AS event_key FROM episodes e "
            "JOIN points p ON p.id = e.point_id LEFT JOIN exceedance_events ev ON ev.id = e.event_id")}
        events = {(r["mine"], r["gas"], r["scope"], r["scope_key"], _iso(r["start_ts"]), _iso(r["end_ts"]), r["peak"],
                   _iso(r["peak_ts"]), r["level"], r["tier"], r["order_rule"], _iso(r["order_start"]))
                  for r in await conn.fetch(
            "SELECT m.code AS mine, e.*, o.rule AS order_rule, o.start_ts AS order_start FROM exceedance_events e "
            "JOIN mines m ON m.id = e.mine_id LEFT JOIN orders o ON o.id = e.order_id")}
        orders = {(r["mine"], r["rule"], _iso(r["start_ts"]), _iso(r["min_end_ts"]), r["ladder_step"],
                   tuple(r["triggers"]), tuple(r["attached"])) for r in await conn.fetch(
            "SELECT m.code AS mine, o.rule, o.start_ts, o.min_end_ts, o.ladder_step, "
            "array(SELECT ev.scope_key || '@' || ev.start_ts::text FROM order_events x JOIN exceedance_events ev "
            "ON ev.id = x.event_id WHERE x.order_id = o.id AND x.role = 'trigger' ORDER BY 1) AS triggers, "
            "array(SELECT ev.scope_key || '@' || ev.start_ts::text FROM order_events x JOIN exceedance_events ev "
            "ON ev.id = x.event_id WHERE x.order_id = o.id AND x.role = 'attached' ORDER BY 1) AS attached "
            "FROM orders o JOIN mines m ON m.id = o.mine_id WHERE o.withdrawn_at IS NULL")}
        findings = {(r["rule"], r["mine"], r["subject"], _iso(r["start_ts"]), _iso(r["end_ts"]), r["level"], r["tier"],
                     r["state"], r["ref_table"], r["ref_key"], json.dumps(_strip_ids(json.loads(r["evidence"])), sort_keys=True))
                    for r in await conn.fetch(
            "SELECT f.*, m.code AS mine, coalesce(ev.scope_key || '@' || ev.start_ts::text, "
            "o.rule || '@' || o.start_ts::text) AS ref_key FROM findings f JOIN mines m ON m.id = f.mine_id "
            "LEFT JOIN exceedance_events ev ON f.ref_table = 'exceedance_events' AND ev.id = f.ref_id "
            "LEFT JOIN orders o ON f.ref_table = 'orders' AND o.id = f.ref_id WHERE f.state <> 'superseded'")}
        return {"episodes": episodes, "events": events, "orders": orders, "findings": findings}
    finally:
        await conn.close()


async def count(dsn: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


def run_rules_cli(args: list[str], dsn: str, *, timeout: float = 120,
                  module: str = "rules.cli") -> subprocess.CompletedProcess[str]:
    """`python -m rules.cli ...` (or ``module="launcher"``: the `minewatch` command) as a real process."""
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


def ns(text: str) -> int:
    """An RFC 3339 time as ns."""
    return to_ns(datetime.fromisoformat(text))
