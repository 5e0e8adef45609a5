"""Background load for the alerting benchmarks: the simulator's data of a registry, pre-rendered, published at a set rate.

    python -m bench.alerting.replay --mqtt-url URL --topic-prefix P/ --family cards|readings --rate R
                                    --seconds S [--present] [--registry FILE] [--seed N]

Why not the simulator's live mode: its items carry its simulated clock, so their rate is its
speed times what the registry makes per simulated second (beside 20 000 readings/s the sample
registry's crews make ~11 000 card reads/s, more at a shift change), and an accelerated run
replays the past: every item is hours old when it arrives, so the rules worker's clock-driven
passes, which judge the present, see every point silent and every card underground for hours
(`offline` and `overtime` findings opened and withdrawn again by the next batch), which a
platform receiving its mines' data as it happens does not do.

This process renders, before it publishes anything, the latest items of the registry's mines up
to a minute ago (`simulators.world.World`, seed `--seed`: the simulator's own values, crews,
shifts and messages of up to 100 epoch-ms items) until it holds `--rate` × `--seconds` of the
family's items: `cards` is the card reads (`mines/<mine>/personnel`) of the mines that have
cards, `readings` the safety, geotech and station-state messages of the registry without its
cards (`--rate` counts the readings; station states come along in their proportion). It
connects, prints `READY <items> items in <messages> messages`, then publishes them in order at
QoS 1 (at most 1 000 unacknowledged, `simulators.publish.MqttSink`) to `<prefix>mines/...`,
paced so that the family's items follow `--rate` per second, and prints `DONE <items> items in
<s> s: <rate>/s` when it has sent them all.

`--present` restamps every item as it goes out: the k-th item's time is the start of
publishing + k / rate (strictly after the previous item of the same point, card or station),
so the data is current when it arrives, in the simulator's order, with its values and its
crews' moves compressed in time (an 8-hour stay of 480 reads lasts seconds). Without it the
items keep the simulated times they were rendered with.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import yaml

from minewatch.registry import load_registry
from minewatch.settings import packaged
from simulators.publish import MqttSink
from simulators.render import Message
from simulators.run import RunOptions, render_history
from simulators.world import World

SIM_HOURS = 6  # rendered first; then as many more as the items in them say are needed
# family -> (the topic kinds it publishes, the kinds its rate counts)
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cards": (("personnel",), ("personnel",)),
    "readings": (("safety", "geotech", "stations"), ("safety", "geotech")),
}


def without_cards(src: Path, dst: Path) -> None:
    """`src` with no cards: the registry whose simulator publishes readings and station states only."""
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    for m in data["mines"]:
        m.pop("cards", None)
    dst.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def only_cards(src: Path, dst: Path) -> None:
    """The mines of `src` that have cards, with their stations, areas and cards and nothing else
    (no points: their readings would only be rendered to be thrown away)."""
    data = yaml.safe_load(src.read_text(encoding="utf-8"))
    mines = []
    for m in data["mines"]:
        if not m.get("cards"):
            continue
        keep: dict[str, Any] = {k: v for k, v in m.items() if k not in ("points", "pairs", "faces")}
        # An area's face must be a face of the mine's points; with no points, it names none.
        keep["areas"] = [{k: v for k, v in a.items() if k != "face"} for a in m.get("areas", [])]
        mines.append(keep)
    data["mines"] = mines
    dst.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def kind_of(topic: str) -> str:
    return topic.rsplit("/", 1)[-1]


def render(registry: Path, family: str, *, items: int, prefix: str, seed: int, end: datetime) -> list[Message]:
    """The messages of the family holding the latest `items` counted items before `end` (at
    least; whole messages), in publishing order."""
    reg, _ = load_registry(registry)
    kinds, counted = FAMILIES[family]
    options = RunOptions(topic_prefix=prefix, items_per_message=100, time_format="epoch_ms")
    hours: float = SIM_HOURS
    while True:
        msgs = [m for m in render_history(World(reg, seed, end - timedelta(hours=hours), end), options)
                if kind_of(m.topic) in kinds]
        have = sum(m.items for m in msgs if kind_of(m.topic) in counted)
        if have >= items or hours >= 24 * 30:
            break
        # As many hours as the items seen so far say are needed, a fifth more (shifts vary).
        hours = min(24 * 30, max(2 * hours, hours * items / max(have, 1) * 1.2))
    out: list[Message] = []
    n = 0
    for m in reversed(msgs):
        if n >= items:
            break
        out.append(m)
        n += m.items if kind_of(m.topic) in counted else 0
    return out[::-1]


class Restamp:
    """Item times of the present: the k-th item sent at `t0_ms` + k × `step_ms`, each strictly
    after the previous item of its point, card or station (two items of one point must not
    share a millisecond: the second would be a duplicate)."""

    def __init__(self, t0_ms: int, step_ms: float) -> None:
        self.t0_ms = t0_ms
        self.step_ms = step_ms
        self.k = 0
        self.last: dict[str, int] = {}

    def payload(self, payload: bytes) -> bytes:
        items: list[dict[str, Any]] = msgspec.json.decode(payload)
        for it in items:
            key = str(it.get("point") or it.get("card") or it.get("station"))
            ts = max(self.t0_ms + int(self.k * self.step_ms), self.last.get(key, 0) + 1)
            it["ts"] = self.last[key] = ts
            self.k += 1
        return msgspec.json.encode(items)


def publish(msgs: list[Message], sink: MqttSink, *, family: str, rate: float, present: bool) -> tuple[int, float]:
    """Send `msgs` in order, the family's counted items paced to `rate` per second (restamped to
    the present with `present`); (counted items sent, seconds taken)."""
    counted = FAMILIES[family][1]
    total = sum(m.items for m in msgs)
    share = sum(m.items for m in msgs if kind_of(m.topic) in counted) / max(total, 1)
    item_rate = rate / max(share, 1e-9)  # every item, counted or not
    t0 = time.monotonic()
    stamp = Restamp(int(time.time() * 1000), 1000 / item_rate) if present else None
    sent = counted_sent = 0
    for m in msgs:
        delay = t0 + sent / item_rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sink.send(m.topic, stamp.payload(m.payload) if stamp else m.payload)
        sent += m.items
        counted_sent += m.items if kind_of(m.topic) in counted else 0
    return counted_sent, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mqtt-url", required=True)
    ap.add_argument("--topic-prefix", default="")
    ap.add_argument("--family", choices=tuple(FAMILIES), required=True)
    ap.add_argument("--rate", type=float, required=True, help="the family's items per second (readings, card reads)")
    ap.add_argument("--seconds", type=float, required=True, help="how long to publish")
    ap.add_argument("--present", action="store_true", help="restamp the items to the present as they go out")
    ap.add_argument("--registry", type=Path, default=None, help="registry YAML (default: the sample)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="minewatch-replay-") as tmp:
        registry = Path(tmp) / "registry.yaml"
        (only_cards if args.family == "cards" else without_cards)(args.registry or packaged("sample_registry.yaml"),
                                                                   registry)
        msgs = render(registry, args.family, items=int(args.rate * args.seconds), prefix=args.topic_prefix,
                      seed=args.seed, end=datetime.now(UTC) - timedelta(minutes=1))
    sink = MqttSink(args.mqtt_url, max_inflight=1000, threaded=True)
    sink.connect()
    print(f"READY {sum(m.items for m in msgs)} items in {len(msgs)} messages", flush=True)
    sent, took = publish(msgs, sink, family=args.family, rate=args.rate, present=args.present)
    sink.close()
    print(f"DONE {sent} items in {took:.1f} s: {sent / took:,.0f}/s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
