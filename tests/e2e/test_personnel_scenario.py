"""Acceptance, end to end: a shift of card reads and a face's methane through MQTT, the real
ingest and the real rules worker, with 5 % of the messages late and out of order.

The shift is `tests.rules.db.test_personnel_worker.shift_day` (mine 149900000021 of
tests/rules/db/data/registry_personnel.yaml): ten workers at face F1, two more for 30 min
(12 against a limit of 10), a visit to the restricted old working, a card that goes silent and
never comes up, a leader who leaves at 13:00, and F1's methane at its power-off level at 12:00
with two workers still at the face 30 min later. It is moved to 08:00 local two days ago and
published as JSON items on `mines/<mine>/personnel` and `mines/<mine>/safety`, in messages of
1-40 items, a twentieth of them held back and sent later. The rules worker's clock stands at
20:00 local that day; the findings must be exactly the hand-written ones of that test module.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from launcher.embedded import stop_process
from minewatch.clock import FrozenClock
from minewatch.timeutil import from_ns, to_ns
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.conftest import _create_db, _drop_db, start_ingest
from tests.mqtt_helpers import publish_all
from tests.polling import wait_for
from tests.rules.db.helpers import DATA, load_test_registry
from tests.rules.db.test_personnel_worker import EXPECTED, MINE, PERSONNEL, T0, shift_day

pytestmark = [pytest.mark.integration]

REGISTRY = DATA / "registry_personnel.yaml"
H = 3_600 * 1_000_000_000


@pytest.fixture
def personnel_db(pg_dsn: str) -> Iterator[str]:
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    asyncio.run(load_test_registry(dsn, REGISTRY))
    try:
        yield dsn
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))




def rfc3339(ns: int) -> str:
    return from_ns(ns).isoformat()


async def test_a_shift_of_card_reads_through_mqtt_with_late_messages_gives_the_hand_written_findings(
    personnel_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    start = datetime.combine(datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=2),
                             datetime.min.time().replace(hour=8), tzinfo=ZoneInfo("Asia/Shanghai"))
    shift = to_ns(start) - T0  # whole days: the local shifts stay where they were
    cards, methane = shift_day()
    items = [(t + shift, "personnel", {"card": c, "ts": rfc3339(t + shift), "station": s}) for c, t, s in cards]
    items += [(t + shift, "safety", {"point": p, "ts": rfc3339(t + shift), "value": v, "status": st})
              for p, t, v, st in methane]
    items.sort(key=lambda x: x[0])
    rng = random.Random(13)
    messages: list[tuple[str, bytes]] = []
    held: list[tuple[int, tuple[str, bytes]]] = []
    j = 0
    while j < len(items):
        size = rng.randint(1, 40)
        chunk = items[j:j + size]
        for family in ("personnel", "safety"):
            part = [x[2] for x in chunk if x[1] == family]
            if part:
                msg = (f"{topic_prefix}mines/{MINE}/{family}", json.dumps(part).encode())
                if rng.random() < 0.05:  # late: sent some messages later, out of order
                    held.append((len(messages) + rng.randint(5, 60), msg))
                else:
                    messages.append(msg)
        for k, msg in [x for x in held if x[0] <= len(messages)]:
            messages.append(msg)
            held.remove((k, msg))
        j += size
    messages += [m for _, m in held]
    n_cards, n_readings = len(cards), len(methane)
    clock = FrozenClock(from_ns(T0 + shift + 12 * H))
    conn = await asyncpg.connect(personnel_db)
    ingest = start_ingest(personnel_db, mqtt_url, topic_prefix, tmp_path / "ingest.log",
                          client_id=f"e2e-pers-{topic_prefix.strip('/')}", suback_s=0.3)
    rules = RuleWorker(personnel_db, builtin_pack("default"), clock=clock, settings=RulesSettings(poll_s=0.2))
    running = asyncio.create_task(rules.run())
    expected = {(rule, subject, None if a is None else from_ns(to_ns(datetime.fromisoformat(a)) + shift),
                 None if b is None else from_ns(to_ns(datetime.fromisoformat(b)) + shift), level)
                for rule, subject, a, b, level in EXPECTED}
    try:
        await asyncio.to_thread(publish_all, mqtt_url, messages)

        async def stored() -> bool:
            return (await conn.fetchval("SELECT count(*) FROM card_reads") == n_cards
                    and await conn.fetchval("SELECT count(*) FROM readings") == n_readings)

        await wait_for("every card read and reading stored", stored)

        async def found() -> set[tuple[object, ...]]:
            return {(r["rule"], r["subject"], r["start_ts"], r["end_ts"], r["level"]) for r in await conn.fetch(
                "SELECT rule, subject, start_ts, end_ts, level FROM findings WHERE state <> 'superseded' "
                "AND rule = ANY($1::text[])", list(PERSONNEL))}

        async def evaluated() -> bool:
            return not await conn.fetchval("SELECT count(*) FROM dirty_windows") and await found() == expected

        try:
            await wait_for("exactly the hand-written personnel findings", evaluated)
        except AssertionError:
            assert await found() == expected
            raise
        assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
    finally:
        rules.stop()
        await running
        stop_process(ingest)
        await conn.close()
