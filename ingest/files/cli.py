"""`minewatch ingest-files` (watch a drop directory) and `minewatch import FILE...` (one-off, with a progress bar)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from minewatch.commands import dispatch
from minewatch.errors import ConfigError, MinewatchError
from minewatch.settings import Settings
from minewatch.text import log_safe
from minewatch.validation import describe as describe_invalid
from minewatch.worker import install_stop_signals, serve

log = logging.getLogger(__name__)

Lang = Literal["zh", "en"]

# What a person reads: Simplified Chinese by default, English on request (house style).
_TEMPLATES: dict[str, dict[str, str]] = {
    "zh": {
        "done": "{name}: {kind} 记录 {records:,} 条, 入库 {stored:,}, 重复 {duplicates:,}, 拒收 {rejected}{extra}",
        "already_done": "{name}: 内容已入库, 未重复导入 ({detail})",
        "rejected": "{name}: 整个文件拒收, 原因 {reason}: {detail}",
        "incomplete": "{name}: 文件不完整 (没有结束符 ||), 已跳过",
        "moved": "  → {path}",
        "none": "无",
        "watching": "监视目录 {drop} (归档 {archive}, 隔离 {quarantine}), 每 {poll} 秒扫描",
        "totals": "文件: 共 {files} 个, 入库 {stored:,} 条, 重复 {duplicates:,}, 拒收 {rejected}, 整个文件拒收 {whole}",
        "progress": "{name} [{bar}] {pct:3.0f}% {done:,}/{total:,} 条",
        "missing": "{name}: 无法读取: {error}",
    },
    "en": {
        "done": "{name}: {kind} {records:,} records, stored {stored:,}, duplicates {duplicates:,}, rejected {rejected}{extra}",
        "already_done": "{name}: content already ingested, not imported again ({detail})",
        "rejected": "{name}: whole file refused, reason {reason}: {detail}",
        "incomplete": "{name}: incomplete (no || terminator), skipped",
        "moved": "  → {path}",
        "none": "none",
        "watching": "watching {drop} (archive {archive}, quarantine {quarantine}), scanning every {poll} s",
        "totals": ("files: {files}, stored {stored:,}, duplicates {duplicates:,}, rejected {rejected}, "
                   "whole files refused {whole}"),
        "progress": "{name} [{bar}] {pct:3.0f}% {done:,}/{total:,} records",
        "missing": "{name}: cannot read: {error}",
    },
}


def say(lang: Lang, key: str, **values: object) -> str:
    """The named message in `lang`, filled in."""
    return _TEMPLATES[lang][key].format(**values)


def _reasons(lang: Lang, counts: Counter[str] | dict[str, int]) -> str:
    items = [f"{reason} {n}" for reason, n in sorted(counts.items()) if n]
    return ", ".join(items) if items else say(lang, "none")


def describe(summary: Any, lang: Lang) -> str:
    """One line about what became of a file (a `source.FileSummary`)."""
    # Names and details come from uploaders: a newline in a file name must not forge a line.
    s = summary
    name = log_safe(s.name, 1000)
    if s.state == "done":
        extra = "".join(f", {k} {v}" for k, v in sorted(s.extra.items()) if v)
        text = say(lang, "done", name=name, kind=s.kind, records=s.records, stored=s.stored,
                   duplicates=s.duplicates, rejected=_reasons(lang, s.rejected), extra=extra)
    elif s.state == "rejected":
        text = say(lang, "rejected", name=name, reason=s.reason, detail=log_safe(str(s.detail), 1000))
    else:
        text = say(lang, s.state, name=name, detail=log_safe(str(s.detail), 1000))
    if s.moved_to:
        text += "\n" + say(lang, "moved", path=log_safe(s.moved_to, 1000))
    return text


class _Totals:
    def __init__(self) -> None:
        self.files = 0
        self.stored = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()
        self.whole: Counter[str] = Counter()

    def add(self, s: Any) -> None:
        self.files += 1
        self.stored += s.stored
        self.duplicates += s.duplicates
        self.rejected.update(s.rejected)
        if s.state == "rejected":
            self.whole[s.reason] += 1

    def line(self, lang: Lang) -> str:
        return say(lang, "totals", files=self.files, stored=self.stored, duplicates=self.duplicates,
                   rejected=_reasons(lang, self.rejected), whole=_reasons(lang, self.whole))


class _Bar:
    """A progress bar on stderr, redrawn at most ten times a second."""

    WIDTH = 30

    def __init__(self, name: str, lang: Lang) -> None:
        self.name, self.lang = name, lang
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        frac = done / total if total else 1.0
        fill = int(frac * self.WIDTH)
        bar = "#" * fill + "." * (self.WIDTH - fill)
        text = say(self.lang, "progress", name=self.name, bar=bar, pct=frac * 100, done=done, total=total)
        print("\r" + text, end="", file=sys.stderr, flush=True)
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            print(file=sys.stderr, flush=True)


def _file_settings(args: argparse.Namespace, settings: Settings | None = None) -> Any:
    from ingest.files.source import FileSourceSettings

    names = ("poll_s", "incomplete_timeout_s", "chunk_rows", "max_file_bytes", "max_record_errors")
    values: dict[str, Any] = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    retention = getattr(settings, "retention_days", None)
    if isinstance(retention, int):
        values["retention_days"] = retention
    try:
        return FileSourceSettings(**values)
    except ValidationError as exc:
        # The one renderer of validation errors (minewatch/validation.py), keys named as options.
        raise ConfigError(describe_invalid(exc, source="command line", what="option(s)", model=FileSourceSettings,
                                           locate=lambda loc: "--" + "-".join(str(p) for p in loc).replace("_", "-"))
                          ) from exc


def _dsn(settings: Settings) -> str:
    if not settings.database_url:
        raise MinewatchError("DATABASE_URL is not set")
    return settings.database_url


def _run(main: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    # SIGINT / SIGTERM ask for a stop: the file being stored finishes its chunk (each chunk is
    # a transaction of its own, so stopping anywhere would be safe too, only slower to resume).
    # The first signal stops between files, a second cancels (minewatch/worker.py).
    async def runner() -> int:
        stop = asyncio.Event()
        remove = install_stop_signals([stop.set])
        try:
            return await main(stop)
        finally:
            remove()

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        return 0


def cmd_ingest_files(args: argparse.Namespace, settings: Settings) -> int:
    """Watch a drop directory until stopped (or one pass with --once)."""
    from ingest.files.ledger import FileIngester
    from ingest.files.watch import DropWatcher
    from ingest.metrics import IngestMetrics
    from minewatch.clock import SystemClock

    dsn = _dsn(settings)
    lang: Lang = args.lang
    options = _file_settings(args, settings)
    drop: Path = args.watch
    if not drop.is_dir():
        raise MinewatchError(f"--watch {drop}: not a directory")
    metrics = None
    if args.metrics_port is not None:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        metrics = IngestMetrics(registry)
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    totals = _Totals()

    def report(summary: Any) -> None:
        totals.add(summary)
        print(describe(summary, lang), flush=True)

    async def main() -> int:
        ingester = FileIngester(dsn, clock=SystemClock(), settings=options, metrics=metrics)
        watcher = DropWatcher(ingester, drop, archive=args.archive, quarantine=args.quarantine, clock=SystemClock(),
                              settings=options, report=report)
        print(say(lang, "watching", drop=drop, archive=watcher.archive, quarantine=watcher.quarantine,
                  poll=options.poll_s), flush=True)
        try:
            await serve(watcher, burst=args.once)
        finally:
            watcher.close()
            await ingester.close()
            print(totals.line(lang), flush=True)  # also when stopped by a signal
        return 0

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:  # a second signal: stopped without waiting for the drain
        return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    """Ingest the named files once, where they are; exit 1 if any was refused or incomplete."""
    from ingest.files.ledger import FileIngester
    from minewatch.clock import SystemClock

    dsn = _dsn(settings)
    lang: Lang = args.lang
    options = _file_settings(args, settings)
    paths: list[Path] = args.files

    async def main(stop: asyncio.Event) -> int:
        ingester = FileIngester(dsn, clock=SystemClock(), settings=options)
        totals = _Totals()
        failed = False
        try:
            for path in paths:
                if stop.is_set():
                    break
                try:
                    data = await asyncio.to_thread(path.read_bytes)
                except OSError as exc:
                    print(say(lang, "missing", name=path, error=exc.strerror), file=sys.stderr, flush=True)
                    failed = True
                    continue
                bar = _Bar(path.name, lang)
                try:
                    summary = await ingester.ingest(path.name, data, progress=bar)
                finally:
                    bar.close()
                totals.add(summary)
                failed = failed or summary.state in ("rejected", "incomplete")
                print(describe(summary, lang), flush=True)
        finally:
            await ingester.close()
        print(totals.line(lang), flush=True)
        return 1 if failed else 0

    return _run(main)


_TYPES = "CDDY, CDSS, FZDY, FZSS, TJSJ, YCBJ"

_WATCH_EPILOG = """\
Takes the top-level files named {mine}_{TYPE}_{yyyyMMddHHmmss}.txt in the order of
the time in their names, definitions (FZDY, CDDY) first. A file without its closing ||
is left alone until it is complete, and quarantined as 'incomplete' if it stays so for
--incomplete-timeout-s. Other names (x.txt.part, hidden files) are left alone and
reported once. DIR is untrusted: only regular files are read; links, FIFOs and hard
links are removed unread with a dead letter (not_regular_file); names starting with ..
are refused; a file over --max-file-bytes is quarantined unread (too_large), one with
more than --max-record-errors bad records whole (too_many_errors, one dead letter).

A complete file is first moved into DIR/.minewatch-processing/ and read from there.
Ingested files move to ARCHIVE/YYYY/MM/DD/, refused ones to QUARANTINE/ next to a
NAME.reason file (move a file back into DIR to retry it). ARCHIVE and QUARANTINE
(default DIR.archive and DIR.quarantine, next to DIR) must lie outside DIR and not be
symbolic links. Rejected records go to dead
letters (GET /v1/dead-letters) with the file name, line and reason. Content already
ingested is never ingested twice; a stopped or killed run resumes where it left off.

Prints one line per file, and a total when stopped (SIGTERM, Ctrl-C).
Needs DATABASE_URL and a migrated database (minewatch migrate). See docs/files.md.
"""

_IMPORT_EPILOG = """\
Each FILE (named {mine}_{TYPE}_{yyyyMMddHHmmss}.txt) is ingested where it is: nothing
is moved. A progress bar on stderr, then one line per file: records, stored,
duplicates, rejected by reason. Content already ingested is reported and skipped.

Exit status: 0 every file ingested; 1 a file was refused, incomplete or unreadable;
2 a configuration error (DATABASE_URL not set, a bad option) or the database is down.
Needs DATABASE_URL and a migrated database (minewatch migrate). See docs/files.md.
"""


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--chunk-rows", type=int, default=None, metavar="N",
                        help="records stored per transaction (default 20000)")
    common.add_argument("--lang", choices=("zh", "en"), default="zh", help="language of the messages (default zh)")
    return common


def _add_watch(sub: Any, name: str) -> None:
    w = sub.add_parser(name, parents=[_common()],
                       help=f"watch a drop directory for national upload files ({_TYPES})",
                       description="Watch a drop directory (where the mines' uploads arrive) and ingest each "
                                   "complete upload file.",
                       epilog=_WATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("--watch", type=Path, required=True, metavar="DIR", help="the drop directory")
    w.add_argument("--archive", type=Path, default=None, metavar="ARCHIVE",
                   help="where ingested files go, outside DIR (default DIR.archive)")
    w.add_argument("--quarantine", type=Path, default=None, metavar="QUARANTINE",
                   help="where refused files go, outside DIR (default DIR.quarantine)")
    w.add_argument("--max-file-bytes", type=int, default=None, metavar="BYTES",
                   help="bigger files are quarantined unread (default 33554432 = 32 MiB)")
    w.add_argument("--max-record-errors", type=int, default=None, metavar="N",
                   help="a file with more bad records is quarantined whole (default 1000)")
    w.add_argument("--once", action="store_true", help="one pass over the directory, then exit")
    w.add_argument("--poll-s", type=float, default=None, metavar="SECONDS", help="seconds between scans (default 1)")
    w.add_argument("--incomplete-timeout-s", type=float, default=None, metavar="SECONDS",
                   help="quarantine a file still without || this long after it last changed (default 600)")
    w.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on 127.0.0.1:PORT")
    w.set_defaults(func=cmd_ingest_files)


def add_ingest_source(sources: Any) -> None:
    """Add `files` under `minewatch ingest` (`minewatch ingest files --watch DIR`)."""
    _add_watch(sources, "files")


def add_commands(sub: Any) -> None:
    """Add `ingest-files` (the same as `ingest files`) and `import` to the `minewatch` command line
    (each takes (args, settings))."""
    common = _common()
    _add_watch(sub, "ingest-files")

    i = sub.add_parser("import", parents=[common], help="ingest upload files once, in place, with a progress bar",
                       description="Ingest the named upload files once, where they are.",
                       epilog=_IMPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    i.add_argument("files", nargs="+", type=Path, metavar="FILE", help="upload files to ingest")
    i.set_defaults(func=cmd_import)


def main(argv: list[str] | None = None) -> int:
    """`python -m ingest.files.cli ingest-files|import ...`, the same commands outside `minewatch`."""
    parser = argparse.ArgumentParser(prog="python -m ingest.files.cli", description="National upload files.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
