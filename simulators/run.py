"""Driving a simulated world out to a sink: at full speed (history) or paced by a clock (live)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from minewatch.clock import Clock
from minewatch.timeutil import to_ns
from simulators.late import LateShuffler
from simulators.render import (
    MAX_ITEMS_PER_MESSAGE,
    Layout,
    Message,
    TimeFormat,
    TopicRows,
    merge_by_time,
    window_rows,
)
from simulators.world import MineWindow, World


class Sink(Protocol):
    """Where rendered messages go (MQTT, memory, a directory of JSON lines)."""

    def send(self, topic: str, payload: bytes) -> None: ...

    def close(self) -> None: ...


class RunOptions(BaseModel):
    """How a run renders and delivers its messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic_prefix: str = ""
    items_per_message: int = Field(default=100, ge=1, le=MAX_ITEMS_PER_MESSAGE)
    time_format: TimeFormat = "rfc3339"
    late_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    late_min_ms: int = Field(default=60_000, ge=0)
    late_max_ms: int = Field(default=600_000, ge=0)


@dataclass
class RunStats:
    """What a run produced; `sim_ms` is how far simulated time got."""

    readings: int = 0
    card_reads: int = 0
    station_states: int = 0
    messages: int = 0
    items: int = 0
    bytes: int = 0
    held_late: int = 0
    sim_ms: int = 0
    by_topic_kind: dict[str, int] = field(default_factory=dict)

    def count(self, w: MineWindow) -> None:
        self.readings += len(w.readings)
        self.card_reads += len(w.cards)
        self.station_states += len(w.stations)

    def sent(self, m: Message) -> None:
        self.messages += 1
        self.items += m.items
        self.bytes += len(m.payload)
        kind = m.topic.rsplit("/", 1)[-1]
        self.by_topic_kind[kind] = self.by_topic_kind.get(kind, 0) + m.items


Progress = Callable[[RunStats], None]


def render_history(world: World, options: RunOptions, stats: RunStats | None = None) -> Iterator[Message]:
    """Every message of the run in publish order (late ones held back and shuffled as asked)."""
    stats = stats if stats is not None else RunStats()
    layout = Layout(world.registry, options.topic_prefix)
    late = LateShuffler(options.late_fraction, world.seed, options.late_min_ms, options.late_max_ms)
    for group in world.windows():
        batch: list[Message] = []
        for w in group:
            stats.count(w)
            for rows in window_rows(w, layout, options.time_format, world.seed):
                batch.extend(rows.messages(0, len(rows.items), options.items_per_message))
        now = group[0].end_ms if group else 0
        stats.sim_ms = now
        yield from late.push(merge_by_time(batch), now)
        stats.held_late = late.held_total
    yield from late.flush()


def run_history(world: World, sink: Sink, options: RunOptions, progress: Progress | None = None) -> RunStats:
    """Publish the whole run as fast as the sink takes it; the sink is closed (drained) last."""
    stats = RunStats()
    last_sim = -1
    for m in render_history(world, options, stats):
        sink.send(m.topic, m.payload)
        stats.sent(m)
        if progress is not None and stats.sim_ms != last_sim:
            last_sim = stats.sim_ms
            progress(stats)
    sink.close()
    return stats


def run_live(
    world: World,
    sink: Sink,
    options: RunOptions,
    *,
    clock: Clock,
    sleep: Callable[[float], None],
    speed: float = 1.0,
    allow_future: bool = False,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> RunStats:
    """Publish each item when its simulated time comes; simulated time runs `speed` × the clock.

    Unless `allow_future`, simulated time never runs ahead of the clock (the
    ingest rejects times more than 5 min ahead): an accelerated run from the
    past catches up with now and then goes on in real time.
    """
    stats = RunStats()
    layout = Layout(world.registry, options.topic_prefix)
    late = LateShuffler(options.late_fraction, world.seed, options.late_min_ms, options.late_max_ms)
    wall0 = _ms(clock)
    stop = stop or threading.Event()
    for group in world.windows():
        rows: list[TopicRows] = []
        for w in group:
            stats.count(w)
            rows.extend(window_rows(w, layout, options.time_format, world.seed))
        cursor = [0] * len(rows)
        while not stop.is_set():
            wall = _ms(clock)
            sim_now = world.start_ms + int((wall - wall0) * speed)
            rate = speed
            if not allow_future and sim_now > wall:
                sim_now, rate = wall, 1.0  # caught up with the clock: real time from here
            due: list[Message] = []
            for i, r in enumerate(rows):
                hi = int(np.searchsorted(r.ts_ms, sim_now, side="right"))
                if hi > cursor[i]:
                    due.extend(r.messages(cursor[i], hi, options.items_per_message))
                    cursor[i] = hi
            for m in late.push(merge_by_time(due), sim_now):
                sink.send(m.topic, m.payload)
                stats.sent(m)
            stats.sim_ms, stats.held_late = sim_now, late.held_total
            if progress is not None:
                progress(stats)
            pending = [int(r.ts_ms[cursor[i]]) for i, r in enumerate(rows) if cursor[i] < len(r.items)]
            if not pending:
                break
            # sleep until the next item is due, but wake often enough to notice a stop
            sleep(min(max((min(pending) - sim_now) / rate / 1000.0, 0.005), 0.25))
        if stop.is_set():
            break
    for m in late.flush():
        sink.send(m.topic, m.payload)
        stats.sent(m)
    sink.close()
    return stats


def _ms(clock: Clock) -> int:
    return to_ns(clock.now()) // 1_000_000


class MemorySink:
    """Keeps every (topic, payload) in a list, so a benchmark can time the ingest alone."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    def send(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))

    def close(self) -> None:
        return None
