"""`minewatch rules ...`: the streaming worker and back-fill, with what they tell a person (zh / en)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime
from typing import Any, Literal

from minewatch.clock import SystemClock
from minewatch.commands import dispatch
from minewatch.errors import MinewatchError
from minewatch.settings import Settings
from minewatch.timeutil import to_ns
from minewatch.worker import serve
from rules.backfill import Progress, Tally, backfill
from rules.packs import parse_duration
from rules.worker import RulesSettings, RuleWorker, resolve_pack

Lang = Literal["zh", "en"]
_TEMPLATES: dict[str, dict[str, str]] = {
    "zh": {
        "progress": "回算 {mine} [{bar}] {pct:3.0f}%  读数 {readings:,}  {rate:,.0f} 条/秒",
        "summary": ("完成: 读数 {readings:,} ({rate:,.0f} 条/秒, {secs:.1f} 秒); 超限段 {episodes}; 超限事件 {events}; "
                    "停产整顿 {orders}; 发现 {findings}"),
        "worker": "规则引擎: 处理窗口 {windows:,} 个, 读数 {readings:,}; 发现 {findings}",
        "counts": "新增 {created} / 更新 {updated} / 删除 {deleted} / 被取代 {superseded} / 撤回 {withdrawn} / 未变 {unchanged}",
        "started": "规则引擎: 已启动",
        "error": "错误: {error}",
    },
    "en": {
        "progress": "backfill {mine} [{bar}] {pct:3.0f}%  readings {readings:,}  {rate:,.0f} readings/s",
        "summary": ("done: {readings:,} readings ({rate:,.0f} readings/s, {secs:.1f} s); episodes {episodes}; "
                    "events {events}; orders {orders}; findings {findings}"),
        "worker": "rules worker: {windows:,} windows, {readings:,} readings; findings {findings}",
        "counts": "created {created} / updated {updated} / deleted {deleted} / superseded {superseded} / "
                  "withdrawn {withdrawn} / unchanged {unchanged}",
        "started": "rules worker: started",
        "error": "error: {error}",
    },
}


def say(lang: Lang, name: str, **values: object) -> str:
    """The named message in ``lang``, filled with ``values``."""
    return _TEMPLATES[lang][name].format(**values)


_CHANGES = ("created", "updated", "deleted", "superseded", "withdrawn", "unchanged")


def _counts(lang: Lang, c: Any) -> str:
    return say(lang, "counts", **{k: c.get(k, 0) for k in _CHANGES})


def _aware(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time (e.g. 2026-10-05T00:00:00+08:00)") from exc
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs an offset (e.g. +08:00)")
    return when


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_commands(sub: Any) -> None:
    """Add `rules backfill` and `rules worker` to a subparsers object."""
    r = sub.add_parser("rules", help="rule engine: streaming worker and back-fill")
    rs = r.add_subparsers(dest="rules_cmd", required=True)
    b = rs.add_parser("backfill", help="re-evaluate history (idempotent: a second run changes nothing)")
    b.add_argument("--since", type=_aware, required=True, help="start, RFC 3339 with offset")
    b.add_argument("--until", type=_aware, default=None, help="end (exclusive); default now")
    b.add_argument("--mine", action="append", default=None, help="mine code (repeatable); default all mines")
    b.add_argument("--pack", default=None, help="rule pack name or file (default MINEWATCH_RULES_PACK or 'default')")
    b.add_argument("--chunk", type=_duration, default=parse_duration("1d"), help="chunk per transaction (default 1d)")
    b.add_argument("--lang", choices=("zh", "en"), default="zh")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_backfill)
    w = rs.add_parser("worker", help="the streaming worker: evaluate dirty windows as the ingest commits them")
    w.add_argument("--burst", action="store_true", help="exit once no dirty window is left")
    w.add_argument("--pack", default=None, help="rule pack name or file (default MINEWATCH_RULES_PACK or 'default')")
    w.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")
    w.add_argument("--lang", choices=("zh", "en"), default="zh")
    w.set_defaults(func=cmd_worker)


def _dsn(settings: Settings) -> str:
    if not settings.database_url:
        raise MinewatchError("DATABASE_URL is not set")
    return settings.database_url


def tally_json(t: Tally, seconds: float) -> dict[str, Any]:
    """A tally as plain JSON (the `--json` summary)."""
    return {"readings": t.readings, "windows": t.windows, "seconds": round(seconds, 3),
            "readings_per_s": round(t.readings / seconds) if seconds > 0 else None,
            **{k: dict(getattr(t, k)) for k in ("episodes", "events", "orders", "findings")}}


def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    """`rules backfill`: progress on stderr, the summary on stdout."""
    dsn = _dsn(settings)
    rs = RulesSettings()
    pack = resolve_pack(args.pack or rs.pack)
    until = args.until or SystemClock().now()
    lang: Lang = args.lang
    show = not args.quiet and not args.json

    def progress(p: Progress) -> None:
        if show:
            width = 24
            filled = round(width * p.chunks_done / max(p.chunks, 1))
            line = say(lang, "progress", mine=p.mine, bar="#" * filled + "." * (width - filled),
                       pct=100 * p.chunks_done / max(p.chunks, 1), readings=p.readings, rate=p.rate)
            print("\r" + line, end="", file=sys.stderr, flush=True)

    t0 = time.monotonic()
    tally = asyncio.run(backfill(dsn, pack, since_ns=to_ns(args.since), until_ns=to_ns(until), mines=args.mine,
                                 chunk_ns=args.chunk, progress=progress))
    secs = time.monotonic() - t0
    if show:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps(tally_json(tally, secs)))
    else:
        print(say(lang, "summary", readings=tally.readings, rate=tally.readings / secs if secs else 0.0, secs=secs,
                  **{k: _counts(lang, getattr(tally, k)) for k in ("episodes", "events", "orders", "findings")}))
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """`rules worker`: until SIGTERM / SIGINT (drains the evaluation in hand), or idle with --burst."""
    from prometheus_client import CollectorRegistry, start_http_server

    from rules.metrics import RulesMetrics

    dsn = _dsn(settings)
    rs = RulesSettings()
    registry = CollectorRegistry()
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    worker = RuleWorker(dsn, resolve_pack(args.pack or rs.pack), settings=rs, metrics=RulesMetrics(registry))
    lang: Lang = args.lang

    async def go() -> Tally:
        print(say(lang, "started"), flush=True)
        return await serve(worker, burst=args.burst)

    try:
        tally = asyncio.run(go())
    except asyncio.CancelledError:  # a second signal: stopped without waiting for the drain
        return 0
    print(say(lang, "worker", windows=tally.windows, readings=tally.readings, findings=_counts(lang, tally.findings)),
          flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rules.cli rules backfill|worker ...` (the same commands as `minewatch rules ...`)."""
    parser = argparse.ArgumentParser(prog="python -m rules.cli")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return dispatch(args, describe=lambda exc: say(getattr(args, "lang", "zh"), "error", error=exc))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
