"""The provincial MQTT variant (`/{mine}/{system}`) end to end through a real broker and the MQTT ingest;
its unknown points are re-processed when the mine's CDDY arrives."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from minewatch.clock import FrozenClock
from tests.conftest import start_ingest
from tests.ingest.files_db.helpers import MINE, P_FEED, P_T0, P_T1, body, fetch, ingest, name, new_mine, readings
from tests.ingest.harness import ingest_published
from tests.mqtt_helpers import publish_all

pytestmark = pytest.mark.integration


def variant(ts_ms: int, values: list[dict[str, object]], system: str = "01") -> bytes:
    return json.dumps({"timestamp": ts_ms, "systemcode": system, "values": values}).encode()


async def run_ingest(dsn: str, url: str, prefix: str, messages: list[tuple[str, bytes]]) -> None:
    await ingest_published(dsn, url, prefix, f"variant-{uuid.uuid4().hex[:8]}", messages, field_variant=True)


async def test_field_variant_through_the_broker(db: str, mqtt_url: str, topic_prefix: str) -> None:
    ts = (int(time.time()) - 120) * 1000 + 250
    when = datetime.fromtimestamp(ts / 1000, tz=UTC)
    new = "610821004401"
    await new_mine(db, new)
    later = f"{new}01MN0001T0101"
    topic = f"{topic_prefix}/{MINE}/01"
    await run_ingest(db, mqtt_url, topic_prefix, [
        (topic, variant(ts, [{"code": P_T0, "v": 0.42}, {"code": P_FEED, "v": True}, {"code": P_T1, "v": "0.5"},
                             {"code": f"{MINE}_01MN0001_T9999", "v": 0.1}, {"code": P_T1, "v": "high"}])),
        (topic, b"{not json"),
        (topic, variant(ts, [{"code": P_T0, "v": 0.5}], system="02")),  # topic says 01
        (f"{topic_prefix}/{new}/01", variant(ts, [{"code": later, "v": 0.33}])),  # not defined yet
        (f"{topic_prefix}/{MINE}/safety", variant(ts, [])),  # two levels but not the variant: unknown topic
    ])
    assert await readings(db, [P_T0, P_FEED, P_T1]) >= {(P_T0, when, 0.42, 0), (P_FEED, when, 1.0, 0), (P_T1, when, 0.5, 0)}
    rows = await fetch(db, "SELECT topic, mine_code, reason, payload FROM dead_letters WHERE topic LIKE $1 || '%' "
                           "ORDER BY reason", topic_prefix)
    got = sorted((r["reason"], r["topic"], r["mine_code"] or "") for r in rows)
    assert got == sorted([
        ("bad_type", topic, MINE),
        ("malformed_json", topic, MINE),
        ("systemcode_mismatch", topic, MINE),
        ("unknown_point", f"{topic_prefix}/{new}/01", new),
        ("unknown_point", topic, MINE),
        ("unknown_topic", f"{topic_prefix}/{MINE}/safety", ""),
    ])
    # The unknown point's dead letter holds the canonical item, so it can be validated again ...
    [letter] = [r for r in rows if r["mine_code"] == new]
    item = json.loads(letter["payload"])
    assert item == {"point": later, "ts": ts, "value": 0.33, "status": 0}
    # ... and is, as soon as the mine's CDDY defines the point.
    station = f"{new}00101"
    summary = await ingest(db, name("CDDY", mine=new), body(
        f"{later};01;{station};0001;MN;%CH4;4.00;0.00;1.00;0.90;;;1.50;1.00;;;;;回风巷;;;;;2024-05-14 13:30:00", mine=new),
        clock=FrozenClock(datetime.now(UTC)))
    assert summary.extra["reprocessed"] == 1
    assert await readings(db, [later]) == {(later, when, 0.33, 0)}


@pytest.mark.parametrize("switch", ["flag", "env"])
def test_minewatch_ingest_turns_the_variant_on_by_flag_or_setting(db: str, mqtt_url: str, topic_prefix: str,
                                                                 tmp_path: Path, switch: str) -> None:
    """`minewatch ingest --field-variant` (or MINEWATCH_INGEST_FIELD_VARIANT=true) as a real
    process; without either, the ingest does not subscribe to the variant's topics at all."""
    base = (int(time.time()) - 60) * 1000 + (500 if switch == "flag" else 750)
    topic = f"{topic_prefix}/{MINE}/01"
    client_id = f"variant-cli-{uuid.uuid4().hex[:8]}"

    def run_once(ts: int, extra_args: list[str], extra_env: dict[str, str]) -> None:
        log = tmp_path / f"ingest-{ts}.log"
        proc = start_ingest(db, mqtt_url, topic_prefix, log, client_id=client_id, args=("--burst", "3", *extra_args),
                            env=extra_env)
        publish_all(mqtt_url, [(topic, variant(ts, [{"code": P_T0, "v": 0.61}]))])
        assert proc.wait(60) == 0, log.read_text()

    def stored(ts: int) -> bool:
        when = datetime.fromtimestamp(ts / 1000, tz=UTC)
        return (P_T0, when, 0.61, 0) in asyncio.run(readings(db, [P_T0]))

    on = (["--field-variant"], {}) if switch == "flag" else ([], {"MINEWATCH_INGEST_FIELD_VARIANT": "true"})
    run_once(base, *on)
    assert stored(base)
    run_once(base + 30_000, [], {})  # the default: the variant's topic is not subscribed
    assert not stored(base + 30_000)
    assert asyncio.run(fetch(db, "SELECT reason FROM dead_letters WHERE topic = $1", topic)) == []
