"""File-system work in an untrusted drop directory: directory fds, no link followed, no file replaced.

The drop directory belongs to whoever uploads into it: any entry may be a symbolic link (to
`/proc/self/environ`, `/etc/passwd`), a FIFO that blocks a reader, a hard link, or be swapped
for one of those between two system calls. Everything here therefore works relative to
directory file descriptors opened once (a directory renamed or replaced by a link later does
not move what the watcher holds), opens with `O_NOFOLLOW | O_NONBLOCK` and checks the opened
descriptor with `fstat`, and places files with link-then-unlink so that nothing is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# POSIX NAME_MAX of the file systems a drop directory lives on (ext4, xfs, btrfs): bytes.
NAME_MAX: Final = 255
_READ: Final = 1 << 20
_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NotRegular(Exception):
    """An entry that is not a regular file with a single link: never read."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def kind_of(mode: int) -> str:
    """What a non-regular entry is, in words (for a dead letter and a log line)."""
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"


@dataclass
class Dir:
    """An open directory: every name below is resolved against `fd`, never against `path`."""

    path: Path  # for messages only
    fd: int

    @classmethod
    def open(cls, path: Path, *, create: bool = False) -> Dir:
        """Open (or create, mode 0750) a directory that must not be a symbolic link itself."""
        if create:
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=0o750, parents=True)
        if path.is_symlink():
            raise NotRegular("a symbolic link")
        return cls(path, os.open(path, _DIR_FLAGS))

    def sub(self, name: str) -> Dir:
        """The subdirectory `name`, created if missing; a link or file there is refused."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o750, dir_fd=self.fd)
        try:
            return Dir(self.path / name, os.open(name, _DIR_FLAGS, dir_fd=self.fd))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise NotRegular(kind_of(os.lstat(name, dir_fd=self.fd).st_mode)) from exc
            raise

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def names(self) -> list[str]:
        """The entries' names (str; bytes that are not UTF-8 come back as surrogate escapes)."""
        return os.listdir(self.fd)

    def lstat(self, name: str) -> os.stat_result:
        return os.lstat(name, dir_fd=self.fd)

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def rmdir(self, name: str) -> None:
        os.rmdir(name, dir_fd=self.fd)


def open_regular(d: Dir, name: str) -> tuple[int, os.stat_result]:
    """A read descriptor of `name` in `d` and its fstat; `NotRegular` for anything but a plain file.

    `O_NOFOLLOW` refuses a link, `O_NONBLOCK` keeps a FIFO from blocking the open, and the
    descriptor's own fstat (not a name lookup that could be raced) decides. A file with more
    than one link is refused too: a hard link to a file the watcher may read but the uploader
    may not would otherwise be read and dead-lettered.
    """
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=d.fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular("a symbolic link") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(kind_of(st.st_mode))
        if st.st_nlink != 1:
            raise NotRegular(f"a file with {st.st_nlink} hard links")
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def read_tail(fd: int, size: int, n: int) -> bytes:
    """The last `n` bytes of an open file of `size` bytes."""
    return os.pread(fd, n, max(0, size - n))


def read_all(fd: int, limit: int) -> bytes:
    """The file's bytes, at most `limit` + 1 of them (one more says it grew past the cap)."""
    parts: list[bytes] = []
    left = limit + 1
    while left > 0:
        block = os.read(fd, min(_READ, left))
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def digest(fd: int, head: int) -> tuple[str, int, bytes]:
    """(sha256, size, first `head` bytes) of an open file, read in 1 MiB blocks (memory stays flat)."""
    h = hashlib.sha256()
    size = 0
    first = bytearray()
    os.lseek(fd, 0, os.SEEK_SET)
    while block := os.read(fd, _READ):
        h.update(block)
        if len(first) < head:
            first += block[: head - len(first)]
        size += len(block)
    return h.hexdigest(), size, bytes(first)


def fit(name: str, suffix: str = "", *, tag: str = "", limit: int = NAME_MAX) -> str:
    """`name` (+ `.tag`) + `suffix`, or a shortened `name` + a hash of it (+ `.tag`) + `suffix`, within `limit` bytes.

    A name near NAME_MAX leaves no room for `.reason` or a content tag; cutting it and adding
    a hash of the whole name keeps different long names apart and the result always fits.
    """
    whole = name + (f".{tag}" if tag else "") + suffix
    if len(os.fsencode(whole)) <= limit:
        return whole
    mark = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    tail = f"~{mark}" + (f".{tag}" if tag else "") + suffix
    room = limit - len(os.fsencode(tail))
    raw = os.fsencode(name)[:room]
    # Cut at a character boundary (and leave no half surrogate escape behind).
    while raw and (raw[-1] & 0xC0) == 0x80:
        raw = raw[:-1]
    if raw and raw[-1] >= 0xC0:
        raw = raw[:-1]
    return os.fsdecode(raw) + tail


def _copy(src: Dir, name: str, dst: Dir, target: str) -> None:
    # Across file systems: copy through descriptors (no link followed, no file replaced).
    fd_in, _ = open_regular(src, name)
    try:
        fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640,
                         dir_fd=dst.fd)
        try:
            while block := os.read(fd_in, _READ):
                os.write(fd_out, block)
            os.fsync(fd_out)
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    src.unlink(name)


def _same(d: Dir, name: str, sha: str) -> bool:
    try:
        fd, _ = open_regular(d, name)
    except (OSError, NotRegular):
        return False
    try:
        return digest(fd, 0)[0] == sha
    finally:
        os.close(fd)


def place(src: Dir, name: str, dst: Dir, sha: str, *, reserve: int = 0) -> str:
    """Move `src/name` into `dst` without replacing anything; returns the name it got there.

    The name is kept, shortened if needed so that `reserve` more bytes still fit NAME_MAX (a
    `.reason` next to it). A different file already there makes it the name with a content
    tag; an identical one (same sha256) makes the source redundant, and it is removed.
    """
    limit = NAME_MAX - reserve
    target = fit(name, limit=limit)
    stem, dot, ext = name.rpartition(".")
    tagged = fit(stem, f".{ext}", tag=sha[:12], limit=limit) if dot and stem else fit(name, tag=sha[:12], limit=limit)
    for candidate in (target, tagged):
        try:
            os.link(name, candidate, src_dir_fd=src.fd, dst_dir_fd=dst.fd, follow_symlinks=False)
        except FileExistsError:
            if _same(dst, candidate, sha):
                src.unlink(name)
                return candidate
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            try:
                _copy(src, name, dst, candidate)
            except FileExistsError:
                if _same(dst, candidate, sha):
                    src.unlink(name)
                    return candidate
                continue
            return candidate
        src.unlink(name)
        return candidate
    raise FileExistsError(errno.EEXIST, f"{target} and {tagged} are taken by other files", str(dst.path))


def write_text(d: Dir, name: str, text: str) -> None:
    """Create or overwrite `d/name` (a link there is refused, not followed)."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640, dir_fd=d.fd)
    try:
        os.write(fd, text.encode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)


def inside(path: Path, root: Path) -> bool:
    """Whether `path` is `root` or lies below it, links resolved."""
    p, r = os.path.realpath(path), os.path.realpath(root)
    return p == r or p.startswith(r.rstrip(os.sep) + os.sep)
