"""Streaming = back-fill = the hand-computed expectations, over two weeks of three mines through MQTT.

The simulator publishes the scenario (scripted exceedances; 5 % of the readings late and
out of order, among them the opening readings of two orders' triggers) to the broker in
accelerated real time: each message when its simulated time comes, two weeks in about 8 s
of sleeps plus the publishing itself. The real ingest process stores it and the worker
evaluates the dirty windows while data keeps arriving. The same readings are then copied
into a second database and back-filled. Both must agree on every episode, event, order
and live finding, and both must match the `expect:` block of the scenario.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from launcher.embedded import stop_process
from minewatch.clock import FrozenClock
from minewatch.registry import load_registry
from minewatch.timeutil import to_ns
from rules.backfill import backfill
from rules.packs import builtin_pack, parse_duration
from rules.worker import RulesSettings, RuleWorker
from simulators.publish import MqttSink
from simulators.run import RunOptions, run_live
from simulators.scenario import Scenario, load_scenario
from simulators.world import World
from tests.conftest import start_ingest
from tests.polling import wait_for as poll
from tests.rules.db.helpers import REGISTRY, SCENARIO, copy_readings, copy_station_states, count, snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PACK = builtin_pack("default")
# Small ingest batches: many dirty windows, late data in separate windows from its neighbours.
BATCHES = {"MINEWATCH_INGEST_BATCH_MAX_ITEMS": "1000"}
# Two weeks in about 8 s of sleeps: the stream arrives over time, interleaved with the
# worker's evaluations, as it would live. (The speed also decides which messages the seeded
# shuffler holds late; the assertion on them below names what this one gives.)
SPEED = 150_000


wait_until = functools.partial(poll, timeout=120)


def check_expectations(snap: dict[str, set[tuple[Any, ...]]], expect: dict[str, Any]) -> None:
    """The snapshot against the scenario's hand-computed `expect:` block."""
    tolerance = parse_duration(expect["tolerance"])

    def near(actual: str | None, expected: str) -> bool:
        return actual is not None and 0 <= to_ns(datetime.fromisoformat(actual)) - to_ns(
            datetime.fromisoformat(expected)) <= tolerance

    got: dict[str, dict[str, int]] = {}
    for e in snap["events"]:
        got.setdefault(e[0], {}).setdefault(e[1], 0)
        got[e[0]][e[1]] += 1
    assert got == expect["events"]
    opened: dict[str, int] = {}
    for e in snap["events"]:
        if e[5] is None:
            opened[e[0]] = opened.get(e[0], 0) + 1
    assert opened == expect["open_events"]
    orders = sorted(snap["orders"])
    assert len(orders) == len(expect["orders"]), orders
    for want in expect["orders"]:
        match = [o for o in orders if o[0] == want["mine"] and o[1] == want["rule"] and near(o[2], want["start"])]
        assert len(match) == 1, (want, orders)
        o = match[0]
        assert to_ns(datetime.fromisoformat(o[3])) - to_ns(datetime.fromisoformat(o[2])) == parse_duration("72h")
        assert near(o[3], want["min_end"])
        assert (len(o[5]), len(o[6])) == (want["triggers"], want["attached"]), o
    flags = sorted(f for f in snap["findings"] if f[0] in ("frequent_exceedance", "high_value_exceedance"))
    assert len(flags) == len(expect["flags"]), flags
    for want in expect["flags"]:
        match = [f for f in flags if f[0] == want["rule"] and f[1] == want["mine"] and near(f[3], want["start"])]
        assert len(match) == 1, (want, flags)
        assert match[0][6] == want.get("tier")
    order_findings = [f for f in snap["findings"] if f[0] == "shutdown_order"]
    assert len(order_findings) == len(expect["orders"])


def scenario() -> tuple[World, Scenario]:
    reg, _ = load_registry(REGISTRY)
    sc = load_scenario(SCENARIO, reg)
    start, end = (datetime.fromisoformat(sc.expect[k]) for k in ("start", "end"))
    return World(reg, 5, start, end, sc), sc


class Delivery:
    """A sink that passes messages on and notes, per safety topic, which readings arrived out of
    order (a message all of whose readings are older than one already sent on its topic)."""

    def __init__(self, sink: MqttSink) -> None:
        self.sink = sink
        self.newest: dict[str, int] = {}
        self.readings = self.late = 0
        self.late_exceeding: list[tuple[str, int]] = []  # (point, ts ms) of late readings >= alarm

    def send(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/safety"):
            items = msgspec.json.decode(payload)
            newest = max(it["ts"] for it in items)
            self.readings += len(items)
            if newest < self.newest.get(topic, newest):
                self.late += len(items)
                self.late_exceeding += [(it["point"], it["ts"]) for it in items  # methane, not calibrating
                                        if "MN0001" in it["point"] and it["value"] >= 1.0 and not it["status"] & 4]
            self.newest[topic] = max(newest, self.newest.get(topic, newest))
        self.sink.send(topic, payload)

    def close(self) -> None:
        self.sink.close()


async def test_streaming_through_mqtt_equals_backfill_and_expectations(
        make_db: Callable[[], Awaitable[str]], mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    world, sc = scenario()
    streamed = await make_db()
    ingest = start_ingest(streamed, mqtt_url, topic_prefix, tmp_path / "ingest.log",
                          client_id=f"rules-{topic_prefix.strip('/')}", env=BATCHES)
    worker = RuleWorker(streamed, PACK, settings=RulesSettings(poll_s=0.5))
    running = asyncio.create_task(worker.run())
    try:
        options = RunOptions(topic_prefix=topic_prefix, items_per_message=50, late_fraction=0.05,
                             time_format="epoch_ms")
        delivery = Delivery(MqttSink(mqtt_url, max_inflight=2000, threaded=False))  # pumped by send; sleeps < 0.25 s
        # Real time, accelerated: each reading is published when its simulated time comes, the
        # two weeks running SPEED x the wall clock; late ones 1-10 simulated minutes after that.
        # The simulator's clock moves by exactly what it sleeps (and it really sleeps): the ticks,
        # hence which messages are held late, do not depend on the machine's speed.
        clock = FrozenClock(datetime.now(UTC))

        def sleep(seconds: float) -> None:
            time.sleep(seconds)
            clock.advance(timedelta(seconds=seconds))

        began = time.monotonic()
        stats = await asyncio.to_thread(run_live, world, delivery, options, clock=clock, sleep=sleep,
                                        speed=SPEED, allow_future=True)
        assert time.monotonic() - began >= 0.8 * ((world.end_ms or 0) - world.start_ms) / 1000 / SPEED, "paced"
        assert delivery.readings == stats.readings
        assert 0.04 <= delivery.late / delivery.readings <= 0.065, (delivery.late, delivery.readings)
        # Late data that moves findings (seed 5, SPEED, deterministic ticks): the opening readings
        # of the events that complete mine 1's second order (15 Oct 16:00, 3.5 %CH4: high value,
        # province tier) and mine 3's order (its first trigger, 12 Oct 10:00) arrive
        # after later readings of their mine.
        late_points = {(p, datetime.fromtimestamp(ts / 1000, UTC).strftime("%m-%d %H")) for p, ts in
                       delivery.late_exceeding}
        assert late_points == {("149900000001_01MN0001_T0001", "10-15 08"), ("149900000003_01MN0001_T0001", "10-12 02")}

        async def stored() -> bool:
            return await count(streamed, "SELECT count(*) FROM readings") >= stats.readings

        async def drained() -> bool:  # every kind: station-state windows are evaluated too (station_fault)
            return await count(streamed, "SELECT count(*) FROM dirty_windows") == 0

        await wait_until("every reading stored", stored)
        await wait_until("every dirty window evaluated", drained)
        assert worker.tally.windows > 50, "the worker evaluated the stream as it arrived, window by window"
        assert await count(streamed, "SELECT count(*) FROM station_states") > 0 and worker.tally.cleared == 0, \
            "the station-state windows were evaluated (the integrity rules read them), not cleared"
    finally:
        worker.stop()
        await running
        stop_process(ingest)
    assert await count(streamed, "SELECT count(*) FROM readings") == stats.readings

    filled = await make_db()
    assert await copy_readings(streamed, filled) == stats.readings
    await copy_station_states(streamed, filled)  # station_fault reads them (rules.md §6)
    start, end = world.start_ms * 1_000_000, (world.end_ms or 0) * 1_000_000
    tally = await backfill(filled, PACK, since_ns=start - to_ns_hours(1), until_ns=end + to_ns_hours(1))
    assert tally.readings >= stats.readings - 1  # every reading of the evaluated points, once or more

    a, b = await snapshot(streamed), await snapshot(filled)
    for kind in ("episodes", "events", "orders", "findings"):
        assert a[kind] == b[kind], f"{kind}: streaming-only {a[kind] - b[kind]}, back-fill-only {b[kind] - a[kind]}"
    check_expectations(a, sc.expect)


def to_ns_hours(h: int) -> int:
    return int(timedelta(hours=h).total_seconds()) * 1_000_000_000
