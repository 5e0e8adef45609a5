"""Rendering and delivery: contract payloads, topics, batches, late messages, JSON lines."""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np

from minewatch.clock import FrozenClock
from minewatch.registry import Registry
from simulators.late import LateShuffler
from simulators.publish import JsonlSink, read_jsonl
from simulators.render import Message, decode_items
from simulators.run import MemorySink, RunOptions, render_history, run_history, run_live
from simulators.world import World
from tests.simulators.conftest import COAL, START, TAILINGS, ms

RFC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$")


def _run(reg: Registry, hours: float = 1.0, **opts: object) -> tuple[list[tuple[str, bytes]], int]:
    world = World(reg, 5, START, START + timedelta(hours=hours))
    sink = MemorySink()
    stats = run_history(world, sink, RunOptions.model_validate(opts))
    total = stats.readings + stats.card_reads + stats.station_states
    assert stats.items == total and stats.messages == len(sink.messages)
    return sink.messages, total


def test_payloads_follow_the_contract(registry: Registry) -> None:
    messages, total = _run(registry, items_per_message=100, topic_prefix="t42")
    topics = Counter(t for t, _ in messages)
    assert {t.split("/", 1)[0] for t in topics} == {"t42"}
    assert f"t42/mines/{COAL}/safety" in topics and f"t42/mines/{TAILINGS}/geotech" in topics
    assert f"t42/mines/{COAL}/personnel" in topics and f"t42/mines/{COAL}/stations" in topics
    assert f"t42/mines/{TAILINGS}/safety" not in topics  # every tailings point is geotech
    seen = 0
    for topic, payload in messages:
        assert payload.startswith(b"[")
        items = decode_items(payload)
        assert 1 <= len(items) <= 100
        seen += len(items)
        kind, mine = topic.split("/")[-1], topic.split("/")[-2]
        for it in items:
            assert isinstance(it["ts"], str) and RFC.match(it["ts"])
            if kind in ("safety", "geotech"):
                assert set(it) == {"point", "ts", "value", "status"}
                assert str(it["point"]).startswith(mine)
            elif kind == "personnel":
                assert set(it) == {"card", "ts", "station"}
                assert str(it["station"]).startswith(mine)
            else:
                assert set(it) == {"station", "ts", "state"} and it["state"] == 0
    assert seen == total


def test_times_parse_back_to_the_generated_instants(coal: Registry) -> None:
    world = World(coal, 5, START, START + timedelta(minutes=10))
    w = next(world.windows())[0]
    rfc = [m for m in render_history(World(coal, 5, START, START + timedelta(minutes=10)), RFC_OPTS)]
    got = sorted(int(datetime.fromisoformat(str(it["ts"])).timestamp() * 1000) for m in rfc for it in decode_items(m.payload))
    want = sorted(np.concatenate([w.readings.ts_ms, w.cards.ts_ms, w.stations.ts_ms]).tolist())
    assert got == want


RFC_OPTS = RunOptions(items_per_message=1000)


def test_one_item_per_message_is_a_bare_object_and_times_can_be_epoch_or_mixed(
    coal: Registry,
) -> None:
    single, total = _run(coal, hours=0.1, items_per_message=1, time_format="epoch_ms")
    assert len(single) == total
    first = msgspec.json.decode(single[0][1])
    assert isinstance(first, dict) and isinstance(first["ts"], int)
    mixed, _ = _run(coal, hours=0.1, items_per_message=500, time_format="mixed")
    kinds = Counter(type(it["ts"]).__name__ for _, p in mixed for it in decode_items(p))
    assert kinds["int"] > 0.3 * kinds.total() and kinds["str"] > 0.3 * kinds.total()


def test_late_messages_arrive_later_and_shuffled_but_all_arrive(coal: Registry) -> None:
    on_time, _ = _run(coal, hours=2, items_per_message=20)
    late, _ = _run(coal, hours=2, items_per_message=20, late_fraction=0.05)
    assert Counter(on_time) == Counter(late)
    assert late != on_time
    positions = {m: i for i, m in enumerate(on_time)}
    moved = [positions[m] - i for i, m in enumerate(late)]
    assert sum(1 for d in moved if d < -10) > 0.02 * len(late)  # held back well past their turn


def test_shuffler_holds_the_asked_fraction() -> None:
    shuffler = LateShuffler(0.1, seed=1, min_delay_ms=60_000, max_delay_ms=120_000)
    msgs = [Message("t", str(i).encode(), 1, i * 1000) for i in range(5000)]
    out = shuffler.push(msgs, now_ms=5_000_000)
    assert 400 < shuffler.held_total < 600
    pending = shuffler.pending
    rest = shuffler.flush()
    assert pending == len(rest) > 0 and shuffler.pending == 0
    assert sorted(m.ts_ms for m in out + rest) == [m.ts_ms for m in msgs]
    tail = [m.ts_ms for m in out[5000 - shuffler.held_total :]]  # the held ones, released
    assert tail and tail != sorted(tail)  # shuffled among themselves
    assert min(tail) < out[4999 - shuffler.held_total].ts_ms  # and behind newer messages


def test_jsonl_directory_round_trips_payload_bytes(tmp_path: Path, coal: Registry) -> None:
    world = World(coal, 5, START, START + timedelta(hours=1))
    sink = JsonlSink(tmp_path / "out", lines_per_file=50)
    run_history(world, sink, RunOptions(items_per_message=100))
    mem = MemorySink()
    run_history(World(coal, 5, START, START + timedelta(hours=1)), mem, RunOptions(items_per_message=100))
    assert list(read_jsonl(tmp_path / "out")) == mem.messages
    assert len(sink.files) > 1


class _ClockedSink(MemorySink):
    def __init__(self, clock: FrozenClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent_at: list[int] = []

    def send(self, topic: str, payload: bytes) -> None:
        super().send(topic, payload)
        self.sent_at.append(ms(self.clock.now()))


def test_live_publishes_each_item_once_its_time_has_come(coal: Registry) -> None:
    clock = FrozenClock(START + timedelta(minutes=50))  # the run started 50 min ago

    def sleep(seconds: float) -> None:
        clock.advance(timedelta(seconds=seconds))

    sink = _ClockedSink(clock)
    world = World(coal, 5, START, START + timedelta(minutes=60))
    stats = run_live(world, sink, RunOptions(items_per_message=10), clock=clock, sleep=sleep, speed=120.0)
    _, total = _run(coal, hours=1.0)
    assert stats.items == total
    newest = [max(_ms(it["ts"]) for it in decode_items(p)) for _, p in sink.messages]
    pairs = list(zip(newest, sink.sent_at, strict=True))
    # never ahead of the clock: the ingest rejects times in the future
    assert all(n <= s for n, s in pairs)
    # 120× catches up with the clock in ~25 s, then items go out as their time comes
    caught_up = ms(START + timedelta(minutes=51))
    following = [s - n for n, s in pairs if s > caught_up]
    assert len(following) > 100 and max(following) < 1_000
    assert sink.sent_at[-1] >= ms(START + timedelta(minutes=60)) - 1_000
    assert sink.sent_at[0] < ms(START + timedelta(minutes=50, seconds=1))


def _ms(ts: object) -> int:
    if isinstance(ts, int):
        return ts
    return int(datetime.fromisoformat(str(ts)).timestamp() * 1000)
