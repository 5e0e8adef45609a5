"""The simulator command line: `live` and `history` runs to MQTT, JSON lines or nowhere."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from minewatch.clock import SystemClock
from minewatch.errors import MinewatchError
from minewatch.registry import load_registry
from minewatch.settings import packaged
from minewatch.timeutil import from_ms, local
from simulators.errors import SimulatorError
from simulators.messages import Lang, say
from simulators.publish import JsonlSink, MqttSink
from simulators.render import TIME_FORMATS
from simulators.run import MemorySink, RunOptions, RunStats, Sink, run_history, run_live
from simulators.scenario import load_scenario
from simulators.world import World

PROGRESS_EVERY_S = 3.0


def _aware(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from exc
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset, e.g. 2026-11-23T08:00:00+08:00")
    return when


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `minewatch simulate` (also usable on its own)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", type=Path, default=None, help="registry YAML (default: the sample)")
    common.add_argument("--seed", type=int, default=1, help="same seed, same data (default 1)")
    common.add_argument("--scenario", type=Path, default=None, help="scenario YAML with scripted events")
    common.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883", help="mqtt://[user:pw@]host:port")
    common.add_argument("--client-id", default=None, help="MQTT client id (default: random)")
    common.add_argument("--topic-prefix", default="", help="e.g. 't123/' to isolate a test")
    common.add_argument("--items-per-message", type=int, default=100, help="1 sends bare objects")
    common.add_argument("--time-format", choices=TIME_FORMATS, default="rfc3339")
    common.add_argument("--late-fraction", type=float, default=0.0, help="share of messages delivered late")
    common.add_argument("--max-inflight", type=int, default=1000, help="unacknowledged QoS 1 messages")
    common.add_argument("--start", type=_aware, default=None, help="RFC 3339 with offset")
    common.add_argument("--days", type=float, default=None)
    common.add_argument("--hours", type=float, default=None)
    common.add_argument("--lang", choices=("zh", "en"), default="zh")
    common.add_argument("--quiet", action="store_true", help="no progress lines")
    parser = argparse.ArgumentParser(prog="minewatch simulate", description="Seeded fake mines over MQTT.")
    sub = parser.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("history", parents=[common], help="generate a span as fast as possible")
    out = h.add_mutually_exclusive_group()
    out.add_argument("--out-dir", type=Path, default=None, help="write JSON lines here instead of MQTT")
    out.add_argument("--dry-run", action="store_true", help="generate and render only")
    lv = sub.add_parser("live", parents=[common], help="publish each item when its time comes")
    lv.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    lv.add_argument(
        "--allow-future",
        action="store_true",
        help="let simulated time run ahead of the clock (the ingest rejects > 5 min ahead)",
    )
    return parser


def _span(args: argparse.Namespace) -> timedelta | None:
    if args.days is None and args.hours is None:
        return None
    return timedelta(days=args.days or 0.0, hours=args.hours or 0.0)


def main(argv: list[str] | None = None) -> int:
    """Run `history` or `live`; returns the exit code (0 ok, 2 bad input or broker, 130 stopped)."""
    args = build_parser().parse_args(argv)
    lang: Lang = args.lang
    try:
        return _run(args, lang)
    except (SimulatorError, MinewatchError) as exc:
        print(say(lang, "error", error=exc), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, lang: Lang) -> int:
    registry, _ = load_registry(args.registry or packaged("sample_registry.yaml"))
    scenario = load_scenario(args.scenario, registry) if args.scenario else None
    try:
        options = RunOptions(
            topic_prefix=args.topic_prefix,
            items_per_message=args.items_per_message,
            time_format=args.time_format,
            late_fraction=args.late_fraction,
        )
    except ValueError as exc:
        raise SimulatorError(f"invalid option: {exc}") from exc
    if args.mode == "live" and not args.speed > 0:
        raise SimulatorError(f"--speed {args.speed}: must be greater than 0")
    clock = SystemClock()
    now = clock.now().replace(microsecond=0)
    span = _span(args)
    if args.mode == "history":
        span = span or timedelta(days=1)
        start = args.start or (now - span).replace(second=0)
        end: datetime | None = start + span
    else:
        start = args.start or now
        end = start + span if span is not None else None
    world = World(registry, args.seed, start, end, scenario)
    sink: Sink
    if args.mode == "history" and args.out_dir is not None:
        sink, target = JsonlSink(args.out_dir), str(args.out_dir)
    elif args.mode == "history" and args.dry_run:
        sink, target = _NullSink(), "-"
    else:
        # history pumps paho's loop itself (faster); live sleeps, so a thread keeps the link up
        sink = MqttSink(
            args.mqtt_url,
            client_id=args.client_id,
            max_inflight=args.max_inflight,
            threaded=args.mode == "live",
        )
        sink.connect()
        target = f"{args.mqtt_url} {args.topic_prefix}mines/+/+"
    tz = registry.mines[0].timezone if registry.mines else "Asia/Shanghai"
    _err(
        args,
        say(
            lang,
            "start",
            mines=len(registry.mines),
            seed=args.seed,
            start=local(start, tz).isoformat(),
            end=local(end, tz).isoformat() if end else say(lang, "forever"),
            target=target,
        ),
    )
    report = _Reporter(args, lang, tz)
    try:
        if args.mode == "history":
            stats = run_history(world, sink, options, report)
        else:
            stats = run_live(
                world,
                sink,
                options,
                clock=clock,
                sleep=time.sleep,
                speed=args.speed,
                allow_future=args.allow_future,
                progress=report,
            )
    except KeyboardInterrupt:
        _err(args, say(lang, "stopped"), force=True)
        sink.close()
        return 130
    report.summary(stats)
    if isinstance(sink, MqttSink):
        _err(args, say(lang, "acked", published=sink.published, acked=sink.acked), force=True)
    return 0


class _NullSink(MemorySink):
    def send(self, topic: str, payload: bytes) -> None:
        return None


class _Reporter:
    """Progress lines every few seconds and the final summary, on stderr."""

    def __init__(self, args: argparse.Namespace, lang: Lang, tz: str) -> None:
        self.args, self.lang, self.tz = args, lang, tz
        self.t0 = time.monotonic()
        self.last = self.t0

    def __call__(self, stats: RunStats) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        sim = local(from_ms(stats.sim_ms), self.tz).strftime("%Y-%m-%d %H:%M:%S")
        done = stats.readings + stats.card_reads + stats.station_states
        _err(
            self.args,
            say(
                self.lang,
                "progress",
                sim=sim,
                readings=stats.readings,
                cards=stats.card_reads,
                stations=stats.station_states,
                messages=stats.messages,
                rate=done / max(now - self.t0, 1e-9),
            ),
        )

    def summary(self, stats: RunStats) -> None:
        secs = max(time.monotonic() - self.t0, 1e-9)
        _err(
            self.args,
            say(
                self.lang,
                "summary",
                readings=stats.readings,
                cards=stats.card_reads,
                stations=stats.station_states,
                messages=stats.messages,
                items=stats.items,
                mb=stats.bytes / 1e6,
                late=stats.held_late,
                secs=secs,
                rate=stats.items / secs,
            ),
            force=True,
        )


def _err(args: argparse.Namespace, text: str, force: bool = False) -> None:
    if force or not args.quiet:
        print(text, file=sys.stderr, flush=True)
