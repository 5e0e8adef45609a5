"""A static partition of the mines over N ingest processes (MINEWATCH_INGEST_PARTITION=K/N):
its parsing, the mines each process takes, and the filters it subscribes to. The partition
through a real broker, a SIGKILL and a broker restart: tests/ingest/test_no_loss.py."""

from __future__ import annotations

import pytest

from ingest.consumer import MqttSource, parse_partition, partition_of
from ingest.errors import IngestError

MINES = [f"1401000{i:05d}" for i in range(200)]


@pytest.mark.parametrize("text", ["", "2", "2/2", "-1/2", "a/b", "1/0", "0/", "/2", "1 of 2"])
def test_a_malformed_partition_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(IngestError, match="expected K/N with 0 <= K < N"):
        parse_partition(text)


def test_the_partitions_take_every_mine_once() -> None:
    assert parse_partition("1/3") == (1, 3)
    owners = [partition_of(m, 3) for m in MINES]
    assert sorted(set(owners)) == [0, 1, 2] and all(owners.count(k) > 40 for k in range(3))
    # The same in every process and run: CRC-32, not Python's salted hash.
    assert partition_of("140100000001", 2) == 1 and partition_of("140100000901", 2) == 0


def test_a_partition_subscribes_to_its_mines_and_follows_the_registry() -> None:
    src = MqttSource("mqtt://127.0.0.1:1", client_id="p", topic_prefix="t/", partition=(0, 2), field_variant=True)
    assert src.topics() == ["t/spBv1.0/#"]  # before the registry: nothing of mines/
    src.set_mines(MINES)
    mine = sorted(m for m in MINES if partition_of(m, 2) == 0)
    assert src.topics() == [f"t/mines/{m}/#" for m in mine] + [f"t//{m}/+" for m in mine] + ["t/spBv1.0/#"]
    assert "t/mines/#" in src.stale_topics()  # a session that once took the whole tree drops it
    src.set_mines(MINES[:10])
    assert src.mines == {m for m in MINES[:10] if partition_of(m, 2) == 0}
    other = MqttSource("mqtt://127.0.0.1:1", client_id="q", topic_prefix="t/", partition=(1, 2))
    other.set_mines(MINES)
    assert not other.mines & src.mines and "t/spBv1.0/#" not in other.topics()


def test_a_partition_and_a_share_group_exclude_each_other() -> None:
    with pytest.raises(IngestError, match="exclude each other"):
        MqttSource("mqtt://127.0.0.1:1", client_id="p", partition=(0, 2), share_group="g")
