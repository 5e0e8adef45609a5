"""Every reading the simulators publish at QoS 1 is stored exactly once, whatever is killed or restarted.

Real processes and servers: the ingest runs as `python -m launcher ingest`
and is SIGKILLed; PostgreSQL and the broker are private instances restarted
mid-stream. Each test publishes >= 50 000 readings and compares the exact
set (point, time, value) in the database with what was published.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest

from ingest.consumer import partition_of
from launcher.embedded import EmbeddedBroker, EmbeddedPostgres, mosquitto_binary
from minewatch.registry import load_registry
from simulators.run import RunOptions, render_history
from simulators.world import World
from tests.conftest import SAMPLE_REGISTRY, Killable, _create_db, spawn_minewatch
from tests.mqtt_helpers import publish_all

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.mqtt]

# The suite's broker is the embedded amqtt fallback (no MQTT_URL, no mosquitto binary). amqtt
# forgets a QoS 1 message it sent once the connection drops or 5 s pass without a PUBACK
# (amqtt/mqtt/protocol/handler.py), so it cannot redeliver what a killed consumer had received
# but not acknowledged; and it has no shared subscriptions ($share/...).
AMQTT = not os.environ.get("MQTT_URL") and mosquitto_binary() is None

Reading = tuple[str, int, float]
TARGET = 50_000


def simulated(prefix: str, *, items_per_message: int = 100, seed: int = 11) -> tuple[list[tuple[str, bytes]], set[Reading]]:
    """The simulator's history-mode messages for 3.5 h of the sample registry, and the exact readings they hold."""
    reg, _ = load_registry(SAMPLE_REGISTRY)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    world = World(reg, seed, end - timedelta(hours=3, minutes=30), end)
    options = RunOptions(topic_prefix=prefix, items_per_message=items_per_message, time_format="epoch_ms")
    messages: list[tuple[str, bytes]] = []
    expected: set[Reading] = set()
    for m in render_history(world, options):
        family = m.topic.rsplit("/", 1)[-1]
        if family in ("safety", "geotech"):
            items = msgspec.json.decode(m.payload)
            for it in items if isinstance(items, list) else [items]:
                expected.add((it["point"], it["ts"], float(it["value"])))
            messages.append((m.topic, m.payload))
    assert len(expected) >= TARGET, len(expected)
    return messages, expected


async def stored_set(dsn: str) -> set[Reading]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT p.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms, r.value "
            "FROM readings r JOIN points p ON p.id = r.point_id"
        )
        return {(r["code"], int(r["ms"]), r["value"]) for r in rows}
    finally:
        await conn.close()


async def count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM readings"))
    finally:
        await conn.close()


class Ingest(Killable):
    """The ingest as a real process we can kill."""

    def __init__(self, dsn: str, url: str, prefix: str, log: Path, extra: tuple[str, ...] = ()) -> None:
        self.env = {"DATABASE_URL": dsn, "MQTT_URL": url}
        self.args = ["ingest", "--topic-prefix", prefix, "--client-id", f"noloss-{prefix.strip('/')}-{log.stem}", *extra]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        before = self.log.read_text().count("connected to") if self.log.exists() else 0
        self.proc = spawn_minewatch(self.args, self.env, self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.log.exists() and self.log.read_text().count("connected to") > before:
                time.sleep(0.5)  # SUBACK
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"ingest did not connect: {self.log.read_text()[-2000:]}")



@pytest.fixture
def ingest_factory(tmp_path: Path) -> Iterator[Callable[..., Ingest]]:
    made: list[Ingest] = []

    def make(dsn: str, url: str, prefix: str, name: str = "ingest", extra: tuple[str, ...] = ()) -> Ingest:
        ing = Ingest(dsn, url, prefix, tmp_path / f"{name}.log", extra)
        made.append(ing)
        return ing

    yield make
    for ing in made:
        ing.stop()


def publish_in_background(
    url: str,
    messages: list[tuple[str, bytes]],
    at_fraction: float,
    interrupt: Callable[[], None],
    pace_s: float = 0.0,
) -> None:
    """Publish everything; call `interrupt` once `at_fraction` of the messages are out."""
    cut = int(len(messages) * at_fraction)
    publish_all(url, messages[:cut], max_inflight=200)
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _guard(errors, interrupt))
    t.start()
    for i in range(cut, len(messages), 50):
        publish_all(url, messages[i : i + 50], max_inflight=50)
        if pace_s:
            time.sleep(pace_s)
    t.join()
    if errors:
        raise errors[0]


def _guard(errors: list[BaseException], fn: Callable[[], None]) -> None:
    try:
        fn()
    except BaseException as exc:  # surfaced in the test thread
        errors.append(exc)


async def wait_for_count(dsn: str, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        got = await count(dsn)
        if got >= n:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"only {got} of {n} readings stored after {timeout} s")


@pytest.mark.skipif(AMQTT, reason="needs redelivery of unacknowledged messages (amqtt drops them on disconnect)")
async def test_ingest_sigkilled_mid_stream_loses_and_duplicates_nothing(
    fresh_db: str,
    mqtt_url: str,
    topic_prefix: str,
    ingest_factory: Callable[..., Ingest],
) -> None:
    messages, expected = simulated(topic_prefix)
    ing = ingest_factory(fresh_db, mqtt_url, topic_prefix)
    ing.start()

    def crash_and_restart() -> None:
        time.sleep(0.3)
        ing.kill()  # mid-batch: whatever it had uncommitted is not acked
        time.sleep(1.0)  # the broker queues for the persistent session meanwhile
        ing.start()

    await asyncio.to_thread(publish_in_background, mqtt_url, messages, 0.4, crash_and_restart)
    await wait_for_count(fresh_db, len(expected))
    await asyncio.sleep(1.0)  # anything extra would show up now
    assert await stored_set(fresh_db) == expected


@pytest.mark.skipif(mosquitto_binary() is None, reason="needs a mosquitto binary (amqtt keeps no sessions on disk)")
async def test_broker_restart_mid_stream(fresh_db: str, topic_prefix: str, tmp_path: Path,
                                         ingest_factory: Callable[..., Ingest]) -> None:
    broker = EmbeddedBroker(tmp_path / "broker")
    url = broker.start()
    try:
        messages, expected = simulated(topic_prefix)
        ing = ingest_factory(fresh_db, url, topic_prefix)
        ing.start()
        cut = len(messages) // 2
        await asyncio.to_thread(publish_all, url, messages[:cut], max_inflight=500)
        # The restart happens while the ingest still works through its backlog
        # (the broker holds queued and in-flight messages for its session).
        backlog = len(expected) // 2 - await count(fresh_db)
        await asyncio.to_thread(broker.restart)  # clean stop: mosquitto saves sessions and queues
        assert backlog > 0, "the broker must restart mid-stream, with messages still undelivered"
        await asyncio.to_thread(publish_all, url, messages[cut:], max_inflight=500)
        await wait_for_count(fresh_db, len(expected))
        await asyncio.sleep(1.0)
        assert await stored_set(fresh_db) == expected
        assert ing.log.read_text().count("session present: True") >= 1, "the session survived the restart"
    finally:
        broker.stop()


@pytest.mark.skipif(AMQTT, reason="needs redelivery of messages unacknowledged while the database is down "
                                  "(amqtt forgets a QoS 1 message after 5 s without an ack)")
async def test_postgres_restart_mid_stream(mqtt_url: str, topic_prefix: str, private_pg: EmbeddedPostgres,
                                           ingest_factory: Callable[..., Ingest]) -> None:
    pg = private_pg
    dsn = await _create_db(pg.dsn, registry=True)
    messages, expected = simulated(topic_prefix)
    ing = ingest_factory(dsn, mqtt_url, topic_prefix)
    ing.start()

    def restart_pg() -> None:
        pg.stop("immediate")  # like a crash: in-flight transactions are lost
        time.sleep(2.0)       # ingest keeps receiving, cannot commit, acks nothing
        pg.start()

    # The rest of the stream is spread over ~6 s, so messages keep arriving through the outage
    # however fast this machine is (unpaced, a loaded machine could finish it before the stop).
    pace = 6.0 / max(1, -(-(len(messages) - int(len(messages) * 0.4)) // 50))
    await asyncio.to_thread(publish_in_background, mqtt_url, messages, 0.4, restart_pg, pace)
    await wait_for_count(dsn, len(expected))
    await asyncio.sleep(1.0)
    assert await stored_set(dsn) == expected
    assert "retrying" in ing.log.read_text()


@pytest.mark.skipif(AMQTT, reason="needs shared subscriptions ($share/...), which amqtt does not have")
async def test_two_ingest_processes_share_one_subscription(
        fresh_db: str, mqtt_url: str, topic_prefix: str, ingest_factory: Callable[..., Ingest]) -> None:
    """Scale-out: $share/<group>/... splits the stream between processes; every reading is stored once."""
    messages, expected = simulated(topic_prefix)
    group = ("--share-group", f"g{topic_prefix.strip('/')}")
    a = ingest_factory(fresh_db, mqtt_url, topic_prefix, "a", group)
    b = ingest_factory(fresh_db, mqtt_url, topic_prefix, "b", group)
    a.start()
    b.start()
    await asyncio.to_thread(publish_all, mqtt_url, messages, max_inflight=500)
    await wait_for_count(fresh_db, len(expected))
    await asyncio.sleep(1.0)
    assert await stored_set(fresh_db) == expected
    a.stop()
    b.stop()
    for ing in (a, b):
        line = [ln for ln in ing.log.read_text().splitlines() if ln.startswith("ingest: ")][-1]
        assert int(line.split()[1]) > len(messages) // 10, f"{ing.log.stem} took too small a share: {line}"


@pytest.mark.skipif(mosquitto_binary() is None, reason="needs a mosquitto binary (amqtt keeps no sessions on disk)")
async def test_a_static_partition_survives_a_killed_ingest_and_a_broker_restart(
        fresh_db: str, topic_prefix: str, tmp_path: Path, ingest_factory: Callable[..., Ingest]) -> None:
    """Scale-out that Mosquitto 2.0 keeps across restarts ($share does not): two processes take
    the registry's mines by partition (0/2, 1/2), each on its own persistent session. The one
    with most of the traffic is SIGKILLed mid-stream, the broker restarted while it is down, the process started again:
    every reading is stored exactly once, and each process took only its own mines."""
    broker = EmbeddedBroker(tmp_path / "broker")
    url = broker.start()
    try:
        messages, expected = simulated(topic_prefix)
        a = ingest_factory(fresh_db, url, topic_prefix, "p0", ("--partition", "0/2"))
        b = ingest_factory(fresh_db, url, topic_prefix, "p1", ("--partition", "1/2"))
        a.start()
        b.start()
        third = len(messages) // 3
        await asyncio.to_thread(publish_all, url, messages[:third], max_inflight=500)
        b.kill()  # the sample's three coal mines: they queue in its session meanwhile
        await asyncio.to_thread(publish_all, url, messages[third:2 * third], max_inflight=500)
        await asyncio.to_thread(broker.restart)  # clean stop: sessions and their queues are saved
        b.start()
        await asyncio.to_thread(publish_all, url, messages[2 * third:], max_inflight=500)
        await wait_for_count(fresh_db, len(expected))
        await asyncio.sleep(1.0)
        assert await stored_set(fresh_db) == expected
        b.stop()
        a.stop()
        mine_of = [t.split("/")[-2] for t, _ in messages]
        for ing, k in ((a, 0), (b, 1)):
            log = ing.log.read_text()
            assert "session present: True" in log, f"{ing.log.stem}: the session survived the restart"
            owned = {m for m in mine_of if partition_of(m, 2) == k}
            assert owned and f"ingest partition {k}/2: {len(owned)} mines" in log
        # a ran throughout: it took its own mines' messages (the broker's restart may redeliver
        # some in flight), none of b's.
        own = sum(partition_of(m, 2) == 0 for m in mine_of)
        took = int([ln for ln in a.log.read_text().splitlines() if ln.startswith("ingest: ")][-1].split()[1])
        assert own <= took < own + (len(messages) - own) // 2, (took, own, len(messages))
    finally:
        broker.stop()
