"""Back-fill: the CLI as a real process, idempotent (a second run changes nothing), and a no-op after streaming."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from rules.backfill import backfill
from rules.packs import builtin_pack
from rules.worker import RuleWorker
from simulators.world import World
from tests.rules.db.helpers import Row, count, insert_readings, ns, run_rules_cli
from tests.rules.db.test_streaming import scenario

pytestmark = pytest.mark.integration
PACK = builtin_pack("default")
LAST_WRITE = "SELECT (extract(epoch FROM max(updated_at)) * 1000000)::bigint FROM findings"
SINCE, UNTIL = "2026-10-05T00:00:00+08:00", "2026-10-09T12:00:00+08:00"


def four_days() -> list[list[Row]]:
    """Readings of the scenario's first four and a half days (mine 1: three events and an order;
    mine 2: one event), time-ordered, in ingest-sized batches."""
    world, sc = scenario()
    short = World(world.registry, 5, datetime.fromisoformat(SINCE), datetime.fromisoformat(UNTIL), sc,
                  chunk_ms=3_600_000)
    batches = []
    for group in short.windows():
        rows: list[Row] = []
        for w in group:
            r = w.readings
            rows.extend((r.codes[p], t * 1_000_000, v, s) for p, t, v, s in zip(
                r.point.tolist(), r.ts_ms.tolist(), r.value.tolist(), r.status.tolist(), strict=True))
        batches.append(rows)
    return batches


async def fill(dsn: str, batches: list[list[Row]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for b in batches:
            await insert_readings(conn, b)
    finally:
        await conn.close()


def summary(out: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


async def test_backfill_cli_twice_changes_nothing_the_second_time(make_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await make_db()
    await fill(dsn, four_days())
    args = ["rules", "backfill", "--since", SINCE, "--until", UNTIL, "--json"]
    first = run_rules_cli(args, dsn)
    assert first.returncode == 0, first.stderr
    one = summary(first.stdout)
    assert one["findings"]["created"] >= 6 and one["orders"]["created"] == 1 and one["readings"] == 18 * 2880 * 9 // 2
    stamp = await count(dsn, LAST_WRITE)
    rows = await count(dsn, "SELECT count(*) FROM findings")

    second = run_rules_cli(args, dsn)
    assert second.returncode == 0, second.stderr
    two = summary(second.stdout)
    for kind in ("episodes", "events", "orders", "findings"):
        written = {k: v for k, v in two[kind].items() if k != "unchanged" and v}
        assert written == {}, f"second back-fill wrote {kind}: {written}"
    assert two["findings"]["unchanged"] == one["findings"]["created"]
    assert await count(dsn, "SELECT count(*) FROM findings") == rows
    assert await count(dsn, LAST_WRITE) == stamp, "no finding was rewritten (alerting's watermark did not move)"

    # The person-facing form, through the `minewatch` command: a progress bar on stderr, a
    # Chinese summary on stdout; one mine only, and still nothing to change.
    human = run_rules_cli(["rules", "backfill", "--since", SINCE, "--until", UNTIL, "--mine", "149900000002"], dsn,
                          module="launcher")
    assert human.returncode == 0, human.stderr
    assert "回算 149900000002 [########################] 100%" in human.stderr and "条/秒" in human.stderr
    assert human.stdout.startswith("完成") and "新增 0 / 更新 0 / 删除 0 / 被取代 0" in human.stdout, human.stdout
    assert "149900000001" not in human.stderr, "--mine limits the back-fill to that mine"
    bad = run_rules_cli(["rules", "backfill", "--since", SINCE, "--mine", "nope", "--lang", "en"], dsn)
    assert bad.returncode == 2 and "unknown mine code(s): nope" in bad.stderr


async def test_backfill_after_streaming_changes_nothing(make_db: Callable[[], Awaitable[str]]) -> None:
    dsn = await make_db()
    conn = await asyncpg.connect(dsn)
    try:
        batches = four_days()
        for k, b in enumerate(batches):
            await insert_readings(conn, b)
            if k % 6 == 5 or k == len(batches) - 1:  # the worker catches up every six hours of data
                await RuleWorker(dsn, PACK).run(burst=True)
    finally:
        await conn.close()
    assert await count(dsn, "SELECT count(*) FROM orders") == 1
    tally = await backfill(dsn, PACK, since_ns=ns(SINCE), until_ns=ns(UNTIL) + int(timedelta(hours=1).total_seconds() * 1e9))
    assert tally.changes() == 0, tally
    assert tally.findings["unchanged"] >= 6
