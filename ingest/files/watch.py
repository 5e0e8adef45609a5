"""The drop directory the mines' upload files arrive in: poll, ingest complete files, archive or quarantine.

Only the directory's top level is watched, and only `*.txt` names (uploads in progress under
another name or hidden are left alone). A file without its `||` terminator is left alone
until it is complete; if it stays incomplete and unchanged for `incomplete_timeout_s` after
the watcher first saw it so, it is quarantined. The time is counted from what the watcher
saw, not from the file's mtime, which a copy may have preserved from the sender.
Ingested files go to `archive/YYYY/MM/DD/` (the date in the file name), refused ones to the
quarantine directory next to a `<name>.reason` file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from ingest.errors import IngestError
from ingest.files.container import TERMINATOR, is_complete
from ingest.files.ledger import FileIngester
from ingest.files.source import FileSourceSettings, FileSummary
from minewatch.clock import Clock

log = logging.getLogger(__name__)

# How much of a file's end is read to tell whether it is complete: the `||` terminator and
# the blanks or NUL padding after it. A longer padding falls back to reading everything.
_TAIL_BYTES: Final = 64 * 1024
_PADDING: Final = b" \t\r\n\x00"
# Registry files first, so that the data files of the same upload validate against them.
_KIND_ORDER: Final = {"FZDY": 0, "CDDY": 1}


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    since: datetime  # when the watcher first saw the file incomplete at this size and time


def file_order(name: str) -> tuple[str, int, str]:
    """Processing order: by the time in the name, definitions before data, then by name."""
    stem = name.rsplit(".", 1)[0]
    parts = stem.rsplit("_", 2)
    if len(parts) != 3:
        return ("", 0, name)
    return (parts[2], _KIND_ORDER.get(parts[1].upper(), 2), name)


def archive_dir(root: Path, name: str) -> Path:
    """`root/YYYY/MM/DD` from the date in the file name (the mine's local date, as written)."""
    stamp = name.rsplit(".", 1)[0].rsplit("_", 1)[-1]
    if len(stamp) >= 8 and stamp[:8].isdigit():
        return root / stamp[:4] / stamp[4:6] / stamp[6:8]
    return root / "undated"


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _move(src: Path, directory: Path, sha: str) -> Path:
    """Move `src` into `directory`; an identical file there already makes `src` redundant."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / src.name
    if target.exists():
        if _sha(target) == sha:
            src.unlink()
            return target
        target = directory / f"{src.stem}.{sha[:12]}{src.suffix}"
    shutil.move(src, target)
    return target


class DropWatcher:
    """Polls a drop directory and feeds complete files to a `FileIngester`, oldest first."""

    def __init__(self, store: FileIngester, drop: Path, *, archive: Path | None = None, quarantine: Path | None = None,
                 clock: Clock, settings: FileSourceSettings | None = None,
                 report: Callable[[FileSummary], None] | None = None) -> None:
        self.store = store
        self.drop = drop
        # Defaults inside the drop directory: only its top level is watched, so they are safe.
        self.archive = archive or drop / "archive"
        self.quarantine = quarantine or drop / "quarantine"
        self.clock = clock
        self.settings = settings or FileSourceSettings()
        self.report = report
        self._pending: dict[str, _Pending] = {}
        self._ignored: set[str] = set()
        self._stuck: dict[str, tuple[int, int]] = {}

    def candidates(self) -> list[Path]:
        """Top-level `*.txt` files; hidden files and other names (uploads in progress) are left alone."""
        out: list[Path] = []
        try:
            entries = list(self.drop.iterdir())
        except OSError as exc:
            raise IngestError(f"cannot list the drop directory {self.drop}: {exc}") from exc
        for p in entries:
            if p.name.startswith(".") or not p.is_file():
                continue
            if p.suffix.lower() != ".txt":
                if p.name not in self._ignored:
                    self._ignored.add(p.name)
                    log.info("ignoring %s: not a .txt upload file (a transfer in progress?)", p.name)
                continue
            out.append(p)
        out.sort(key=lambda p: file_order(p.name))
        return out

    async def scan(self) -> list[FileSummary]:
        """One pass over the directory; returns what became of each file handled."""
        done: list[FileSummary] = []
        seen: set[str] = set()
        for path in await asyncio.to_thread(self.candidates):
            seen.add(path.name)
            summary = await self._one(path)
            if summary is not None:
                done.append(summary)
                if self.report is not None:
                    self.report(summary)
        for name in list(self._pending):
            if name not in seen:
                del self._pending[name]  # renamed or removed by its writer
        return done

    async def _one(self, path: Path) -> FileSummary | None:
        now = self.clock.now()
        # File-system work happens in a thread: a big upload must not stall the loop.
        look = await asyncio.to_thread(self._look, path, now)
        if look is None:
            return None
        data, key, waited = look
        sha = hashlib.sha256(data).hexdigest()
        self._pending.pop(path.name, None)
        if waited is not None:
            summary = await self.store.quarantine_incomplete(path.name, data, waited=waited)
        else:
            summary = await self.store.ingest(path.name, data)
        await asyncio.to_thread(self._place, path, summary, sha, key, quarantine=summary.state == "rejected")
        return summary

    def _look(self, path: Path, now: datetime) -> tuple[bytes, tuple[int, int], timedelta | None] | None:
        """(bytes, (size, mtime), None) of a complete file; (..., waited) of one to quarantine; else None."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_size, st.st_mtime_ns)
        if self._stuck.get(path.name) == key:
            return None  # could not be moved last time; logged then
        pending = self._pending.get(path.name)
        if pending is not None and (pending.size, pending.mtime_ns) == key:
            waited = now - pending.since
            if waited < timedelta(seconds=self.settings.incomplete_timeout_s):
                return None  # unchanged and still incomplete: not even worth reading
            data = self._read(path)
            if data is None:
                return None
            return (data, key, None) if is_complete(data) else (data, key, waited)
        if self._looks_complete(path, st.st_size):
            data = self._read(path)
            if data is None:
                return None
            if is_complete(data):
                return data, key, None
        self._pending[path.name] = _Pending(st.st_size, st.st_mtime_ns, now)
        return None

    def _looks_complete(self, path: Path, size: int) -> bool:
        # Read only the end of the file: a big upload being written is checked each poll.
        try:
            with path.open("rb") as f:
                f.seek(max(0, size - _TAIL_BYTES))
                tail = f.read(_TAIL_BYTES)
        except OSError:
            return False
        stripped = tail.rstrip(_PADDING)
        if not stripped and size > len(tail):
            return True  # all padding: let the full read decide
        return stripped.endswith(TERMINATOR.encode())

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            return None

    def _place(self, path: Path, summary: FileSummary, sha: str, key: tuple[int, int], *, quarantine: bool) -> None:
        """Archive an ingested file, or quarantine a refused one next to a `.reason` file."""
        try:
            if quarantine:
                target = _move(path, self.quarantine, sha)
                reason = f"reason: {summary.reason}\ndetail: {summary.detail}\nat: {self.clock.now().isoformat()}\n"
                target.with_name(target.name + ".reason").write_text(reason, encoding="utf-8")
            else:
                target = _move(path, archive_dir(self.archive, path.name), sha)
            summary.moved_to = str(target)
        except OSError as exc:
            # Left in place: an archived file is only moved again (its ledger row says done);
            # a refused one is not retried until it changes, so it is not dead-lettered twice.
            self._stuck[path.name] = key
            log.error("cannot move %s out of the drop directory: %s", path, exc)

    async def run(self, *, once: bool = False, stop: asyncio.Event | None = None) -> None:
        """Scan every `poll_s` until `stop` is set; `once`: a single pass (errors are raised)."""
        stop = stop or asyncio.Event()
        delay = self.settings.poll_s
        while not stop.is_set():
            started = time.monotonic()
            try:
                await self.scan()
                delay = self.settings.poll_s
            except IngestError as exc:
                if once:
                    raise
                delay = min(max(delay * 2, 1.0), 30.0)
                log.warning("%s; retrying in %.0f s", exc, delay)
            if once:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, delay - (time.monotonic() - started)))
