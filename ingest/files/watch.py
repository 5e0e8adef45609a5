"""The drop directory the mines' upload files arrive in: poll, take complete files, ingest, archive or quarantine.

The drop directory is untrusted territory (see `dropfs`). Only its top level is watched and
only regular files are read: a link, FIFO, socket or hard link is refused with a dead letter
and removed (never opened), a subdirectory is reported once and left alone. `*.txt` names are
uploads; other names and hidden `.name` files are transfers in progress, reported once and
left alone; names starting with `..` are refused (`bad_file_name`).

A complete file (its `||` terminator present) is first renamed into a private processing
directory (`<drop>/.minewatch-processing/<token>/<name>`, same file system, mode 0700), then
read, ingested and archived or quarantined from there: the bytes ingested are the bytes
archived, whatever the uploader does to the name meanwhile, and a re-upload under the same
name is a new file. What a stopped run left in the processing directory is finished first by
the next pass (the ledger keeps that from storing or dead-lettering anything twice).

A file without `||` is left in the drop until it is complete; if it stays incomplete and
unchanged for `incomplete_timeout_s` after the watcher first saw it so, it is quarantined.
A file over `max_file_bytes` is quarantined unread (only hashed). Ingested files go to
`<archive>/YYYY/MM/DD/` (the date in the file name), refused ones to the quarantine
directory next to a `.reason` file; both directories must lie outside the drop tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from ingest.errors import IngestError
from ingest.files import dropfs
from ingest.files.container import TERMINATOR, is_complete
from ingest.files.dropfs import Dir, NotRegular
from ingest.files.ledger import FileIngester
from ingest.files.source import INCOMPLETE, NOT_REGULAR, FileSourceSettings, FileSummary, display_name
from ingest.validate import TOO_LARGE
from minewatch.clock import Clock
from minewatch.errors import ConfigError
from minewatch.text import log_safe

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# How much of a file's end is read to tell whether it is complete: the `||` terminator and
# the blanks or NUL padding after it. A longer padding falls back to reading everything.
_TAIL_BYTES: Final = 64 * 1024
_PADDING: Final = b" \t\r\n\x00"
# Registry files first, so that the data files of the same upload validate against them.
_KIND_ORDER: Final = {"FZDY": 0, "CDDY": 1}
# The watcher's own dot-directory in the drop; the only hidden name it does not report.
PROCESSING: Final = ".minewatch-processing"
# A whole-file dead letter of an oversized file keeps this much of it (the file is kept whole).
_HEAD_BYTES: Final = 64 * 1024
_REASON: Final = ".reason"


@dataclass
class _Pending:
    key: tuple[int, int, int]  # (inode, size, mtime_ns)
    since: datetime  # when the watcher first saw the file incomplete at this key


def file_order(name: str) -> tuple[str, int, str]:
    """Processing order: by the time in the name, definitions before data, then by name."""
    stem = name.rsplit(".", 1)[0]
    parts = stem.rsplit("_", 2)
    if len(parts) != 3:
        return ("", 0, name)
    return (parts[2], _KIND_ORDER.get(parts[1].upper(), 2), name)


def archive_parts(name: str) -> tuple[str, ...]:
    """`(YYYY, MM, DD)` from the date in the file name (the mine's local date, as written), else `("undated",)`."""
    stamp = name.rsplit(".", 1)[0].rsplit("_", 1)[-1]
    if len(stamp) >= 8 and stamp[:8].isascii() and stamp[:8].isdigit():
        return stamp[:4], stamp[4:6], stamp[6:8]
    return ("undated",)


def archive_dir(root: Path, name: str) -> Path:
    """`root/YYYY/MM/DD` for a file name (see `archive_parts`)."""
    return root.joinpath(*archive_parts(name))


def name_problem(name: str) -> str | None:
    """Why a file name is refused before its content is looked at, or None."""
    if name.startswith(".."):
        return "the name starts with `..`"
    shown = display_name(name)
    if shown != name:
        return "the name is not valid UTF-8"
    if not name.isprintable():
        return "the name holds control characters"
    if "\\" in name:
        return "the name holds a backslash (a path separator elsewhere)"
    return None


def default_dirs(drop: Path) -> tuple[Path, Path]:
    """Archive and quarantine next to the drop directory (`<drop>.archive`, `<drop>.quarantine`), outside its tree."""
    drop = Path(os.path.abspath(drop))
    return drop.with_name(drop.name + ".archive"), drop.with_name(drop.name + ".quarantine")


class DropWatcher:
    """Polls a drop directory and feeds complete files to a `FileIngester`, oldest first.

    The directories are checked and opened here: `ConfigError` when the archive or the
    quarantine is a symbolic link or lies inside the drop tree (or the drop inside them).
    """

    def __init__(self, store: FileIngester, drop: Path, *, archive: Path | None = None, quarantine: Path | None = None,
                 clock: Clock, settings: FileSourceSettings | None = None,
                 report: Callable[[FileSummary], None] | None = None) -> None:
        self.store = store
        self.drop = drop
        default_archive, default_quarantine = default_dirs(drop)
        self.archive = archive or default_archive
        self.quarantine = quarantine or default_quarantine
        self.clock = clock
        self.settings = settings or FileSourceSettings()
        self.report = report
        self._pending: dict[str, _Pending] = {}
        self._reported: set[str] = set()
        self._stuck: set[str] = set()  # processing tokens whose file could not be placed (logged once)
        self._tokens = itertools.count()
        self._stop = asyncio.Event()
        self._open()

    def _open(self) -> None:
        for what, path in (("archive", self.archive), ("quarantine", self.quarantine)):
            if path.is_symlink():
                raise ConfigError(f"--{what} {path}: a symbolic link; give the real directory")
            if dropfs.inside(path, self.drop) or dropfs.inside(self.drop, path):
                raise ConfigError(f"--{what} {path}: inside the drop directory {self.drop} (or holding it); "
                                  "it must lie outside the tree uploaders can write")
        if self.drop.is_symlink() or not self.drop.is_dir():
            raise ConfigError(f"--watch {self.drop}: not a directory (or a symbolic link)")
        try:
            self._drop = Dir.open(self.drop)
            self._work = self._drop.sub(PROCESSING)
            os.chmod(self._work.fd, 0o700)
            self._archive = Dir.open(self.archive, create=True)
            self._quarantine = Dir.open(self.quarantine, create=True)
        except (OSError, NotRegular) as exc:
            raise ConfigError(f"cannot open the drop, archive or quarantine directory: {exc}") from exc
        work = os.fstat(self._work.fd)
        if work.st_dev != os.fstat(self._drop.fd).st_dev:
            raise ConfigError(f"{self.drop / PROCESSING} is on another file system than {self.drop}")
        if work.st_uid != os.geteuid():
            # Made by someone else (an uploader who renamed ours away): they could swap what is in it.
            raise ConfigError(f"{self.drop / PROCESSING} is not owned by this user (uid {work.st_uid}); "
                              "remove it and set the sticky bit on the drop directory (chmod +t)")

    def close(self) -> None:
        """Release the directory descriptors."""
        for d in (self._drop, self._work, self._archive, self._quarantine):
            d.close()

    def _once(self, key: str, message: str, *args: object) -> None:
        if key not in self._reported:
            self._reported.add(key)
            log.info(message, *args)

    def entries(self) -> tuple[list[str], list[tuple[str, str]]]:
        """(upload names to look at, oldest first; non-regular entries to refuse as (name, what))."""
        try:
            names = self._drop.names()
        except OSError as exc:
            raise IngestError(f"cannot list the drop directory {self.drop}: {exc}") from exc
        files: list[str] = []
        refuse: list[tuple[str, str]] = []
        for name in names:
            if name == PROCESSING:
                continue
            shown = log_safe(display_name(name))
            try:
                mode = self._drop.lstat(name).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                self._once(name, "ignoring %s in the drop directory: a directory (only files are read)", shown)
            elif not stat.S_ISREG(mode):
                refuse.append((name, dropfs.kind_of(mode)))
            elif name.startswith(".."):
                files.append(name)  # refused by name_problem, with a dead letter
            elif name.startswith("."):
                self._once(name, "ignoring %s: a hidden file (a transfer in progress?)", shown)
            elif not name.lower().endswith(".txt"):
                self._once(name, "ignoring %s: not a .txt upload file (a transfer in progress?)", shown)
            else:
                files.append(name)
        present = set(names)
        self._reported = {k for k in self._reported if k.lstrip("\0") in present}  # forget what left
        files.sort(key=file_order)
        return files, refuse

    async def scan(self) -> list[FileSummary]:
        """One pass: what an earlier pass left in processing, refused entries, then the drop's files."""
        done: list[FileSummary] = []

        def keep(summary: FileSummary | None) -> None:
            if summary is not None:
                done.append(summary)
                if self.report is not None:
                    self.report(summary)

        for token in await asyncio.to_thread(self._work.names):
            keep(await self._safely(token, self._process(token, recovered=True)))
        files, refuse = await asyncio.to_thread(self.entries)
        for name, what in refuse:
            keep(await self._safely(name, self._refuse_entry(name, what)))
        for name in files:
            taken = await self._safely(name, asyncio.to_thread(self._take, name))
            if taken is not None:
                keep(await self._safely(taken, self._process(taken, recovered=False)))
        for name in list(self._pending):
            if name not in files and not name.startswith("\0"):
                del self._pending[name]  # renamed or removed by its writer
        return done

    async def _safely(self, what: str, work: Awaitable[_T]) -> _T | None:
        # One entry must not stop the watcher: a bug or an unexpected OS error costs that entry
        # (logged once, retried next pass). Only the database being down stops the pass.
        try:
            return await work
        except IngestError:
            raise
        except Exception:
            if what not in self._stuck:
                self._stuck.add(what)
                log.exception("cannot handle %s in the drop directory; it is left for the next pass",
                              log_safe(display_name(what)))
            return None

    async def _refuse_entry(self, name: str, what: str) -> FileSummary | None:
        """A link, FIFO, socket or device: removed unread (its target is never opened), then dead-lettered."""
        try:
            await asyncio.to_thread(self._drop.unlink, name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._once(f"\0{name}", "cannot remove %s (%s) from the drop directory: %s",
                       log_safe(display_name(name)), what, exc)
            return None
        log.warning("refused %s in the drop directory: %s, removed unread", log_safe(display_name(name)), what)
        return await self.store.refuse(name, b"", NOT_REGULAR, f"{what}: removed from the drop directory unread",
                                       ledger=False)

    def _take(self, name: str) -> str | None:
        """Rename a complete (or timed-out, or refused-by-name) file into processing; its token, or None."""
        if name_problem(name) is None:
            try:
                fd, st = dropfs.open_regular(self._drop, name)
            except FileNotFoundError:
                return None
            except (OSError, NotRegular):
                pass  # raced into something else: the processing step refuses it
            else:
                try:
                    key = (st.st_ino, st.st_size, st.st_mtime_ns)
                    if st.st_size <= self.settings.max_file_bytes and not self._looks_complete(fd, st.st_size):
                        pending = self._pending.get(name)
                        if pending is None or pending.key != key:
                            pending = self._pending[name] = _Pending(key, self.clock.now())
                        if self.clock.now() - pending.since < timedelta(seconds=self.settings.incomplete_timeout_s):
                            return None
                finally:
                    os.close(fd)
        token = f"{time.time_ns():x}-{os.getpid()}-{next(self._tokens)}"
        try:
            os.mkdir(token, 0o700, dir_fd=self._work.fd)
            target = self._work.sub(token)
            try:
                os.rename(name, name, src_dir_fd=self._drop.fd, dst_dir_fd=target.fd)
            finally:
                target.close()
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                self._work.rmdir(token)
            return None
        except OSError as exc:
            with contextlib.suppress(OSError):
                self._work.rmdir(token)
            self._once(f"\0{name}", "cannot take %s out of the drop directory: %s", log_safe(display_name(name)), exc)
            return None
        pending = self._pending.pop(name, None)
        if pending is not None:
            self._pending["\0" + token] = pending
        return token

    def _looks_complete(self, fd: int, size: int) -> bool:
        # Read only the end of the file: a big upload being written is checked each poll.
        tail = dropfs.read_tail(fd, size, _TAIL_BYTES)
        stripped = tail.rstrip(_PADDING)
        if not stripped and size > len(tail):
            return True  # all padding: let the full read decide
        return stripped.endswith(TERMINATOR.encode())

    async def _process(self, token: str, *, recovered: bool) -> FileSummary | None:
        """Read, ingest and place the one file of a processing token."""
        try:
            d = await asyncio.to_thread(self._work.sub, token)
        except (OSError, NotRegular):
            return None
        try:
            names = await asyncio.to_thread(d.names)
            if not names:
                await asyncio.to_thread(self._work.rmdir, token)
                return None
            name = names[0]
            summary = await self._ingest(d, token, name, recovered=recovered)
            if summary is None or summary.state == "incomplete":
                return None
            await asyncio.to_thread(self._place, d, token, name, summary)
            return summary
        finally:
            d.close()

    async def _ingest(self, d: Dir, token: str, name: str, *, recovered: bool) -> FileSummary | None:
        store = self.store
        problem = name_problem(name)
        try:
            fd, st = await asyncio.to_thread(dropfs.open_regular, d, name)
        except NotRegular as bad:
            await asyncio.to_thread(d.unlink, name)
            return await store.refuse(name, b"", NOT_REGULAR, f"{bad.what}: removed unread", ledger=False)
        except OSError as exc:
            self._stuck_once(token, f"cannot open {log_safe(display_name(name))} in processing: {exc}")
            return None
        try:
            cap = self.settings.max_file_bytes
            if st.st_size > cap:
                sha, size, head = await asyncio.to_thread(dropfs.digest, fd, _HEAD_BYTES)
                detail = f"{size} bytes, over the {cap}-byte limit (max_file_bytes): not read, kept whole"
                return await store.refuse(name, head, TOO_LARGE, detail, sha=sha, size=size, recovered=recovered)
            data = await asyncio.to_thread(dropfs.read_all, fd, cap)
        finally:
            os.close(fd)
        if len(data) > cap:
            return await store.refuse(name, data[:_HEAD_BYTES], TOO_LARGE, f"grew past the {cap}-byte limit while read",
                                      recovered=recovered)
        if problem is not None:
            return await store.refuse(name, data, "bad_file_name", problem, recovered=recovered)
        if is_complete(data):
            self._pending.pop("\0" + token, None)
            return await store.ingest(name, data, recovered=recovered)
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        now = self.clock.now()
        pending = self._pending.get("\0" + token)
        if pending is None or pending.key != key:
            pending = self._pending.setdefault("\0" + token, _Pending(key, now))
            pending.key = key
        waited = now - pending.since
        if waited < timedelta(seconds=self.settings.incomplete_timeout_s):
            return None  # still being written through a descriptor opened before the rename
        self._pending.pop("\0" + token, None)
        detail = f"no `||` terminator after {waited.total_seconds():.0f} s: cut off in transfer"
        return await store.refuse(name, data, INCOMPLETE, detail, recovered=recovered)

    def _stuck_once(self, token: str, message: str) -> None:
        if token not in self._stuck:
            self._stuck.add(token)
            log.error("%s", message)

    def _place(self, d: Dir, token: str, name: str, summary: FileSummary) -> None:
        """Archive an ingested file, or quarantine a refused one next to a `.reason` file; then drop the token."""
        if summary.state == "rejected" and summary.reason == NOT_REGULAR:
            with contextlib.suppress(OSError):
                self._work.rmdir(token)
            return
        sha = summary.sha256 or ""
        try:
            if summary.state == "rejected":
                # Named so that `.reason` always fits NAME_MAX (a 250-byte name is shortened + hashed).
                target = dropfs.place(d, name, self._quarantine, sha, reserve=len(_REASON))
                text = (f"name: {display_name(name)}\nreason: {summary.reason}\ndetail: {summary.detail}\n"
                        f"sha256: {sha}\nat: {self.clock.now().isoformat()}\n")
                dropfs.write_text(self._quarantine, target + _REASON, text)
                summary.moved_to = str(self.quarantine / display_name(target))
            else:
                day = self._archive
                opened = []
                for part in archive_parts(name):
                    day = day.sub(part)
                    opened.append(day)
                try:
                    target = dropfs.place(d, name, day, sha)
                finally:
                    for o in opened:
                        o.close()
                summary.moved_to = str(archive_dir(self.archive, display_name(name)) / display_name(target))
            self._work.rmdir(token)
        except (OSError, NotRegular) as exc:
            # Left in processing: the next pass finds it again, and the ledger keeps that from
            # storing or dead-lettering anything twice.
            self._stuck_once(token, f"cannot move {log_safe(display_name(name))} out of processing: {exc}")

    def stop(self) -> None:
        """Finish the file in hand (its chunk commits), scan no more, let `run` return."""
        self._stop.set()

    async def run(self, *, burst: bool = False) -> None:
        """Scan every `poll_s` until `stop()`; with `burst`, a single pass whose errors are
        raised (the one worker shape, minewatch/worker.py)."""
        delay = self.settings.poll_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await self.scan()
                delay = self.settings.poll_s
            except IngestError as exc:
                if burst:
                    raise
                delay = min(max(delay * 2, 1.0), 30.0)
                log.warning("%s; retrying in %.0f s", log_safe(str(exc), 1000), delay)
            if burst:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(0.0, delay - (time.monotonic() - started)))
