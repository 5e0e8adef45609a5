"""Soak of the drop-directory watcher: N minutes of a mixed hostile / valid stream of files, RSS sampled.

    python -m bench.files --soak 10 [--soak-baseline 2]

The watcher runs as a real process (`ingest-files`, no --once) on a fresh database. A producer
keeps its drop directory topped up (a backlog of `_BACKLOG` valid files, so the figure is the
watcher's capacity, not the producer's pace) with valid CDSS uploads of one mine (10 snapshots
of its 43 points each) and, in the hostile phase, one hostile item next to every valid file:
random bytes, valid files with hostile records between the good ones, 20 000 broken records,
files over the size cap, links to /etc/passwd, FIFOs, names with newlines / bad UTF-8 / `..`,
files that never get their `||`. First a baseline phase with valid files only (same run,
same database, same machine load) gives the ceiling the soak figure is read against.
Reported: valid rows stored per second in each phase, the watcher's RSS (every
`_SAMPLE_S` s: first, median, last, max), and how often the process died (restarted at once).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from ingest.files import CdssRecord, Header, write_file
from minewatch.registry import load_registry
from minewatch.settings import packaged
from minewatch.timeutil import zone

MINE = "140100000001"
ROOT = Path(__file__).resolve().parents[2]
_BACKLOG = 40  # valid files kept waiting in the drop: the watcher never idles for want of input
_SAMPLE_S = 5.0  # RSS sampling period
_MAX_FILE_BYTES = 1 << 20  # a small cap for the soak, so oversized files are cheap to write
_HOSTILE_KINDS = ("bytes", "records", "errors", "big", "link", "fifo", "newline", "rawname", "dotdot", "incomplete")


@dataclass
class Phase:
    """What one phase measured."""

    name: str
    seconds: float = 0.0
    valid_rows: int = 0
    valid_files: int = 0
    hostile_items: int = 0
    rss_mb: list[float] = field(default_factory=list)
    crashes: int = 0

    @property
    def rate(self) -> float:
        return self.valid_rows / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        r = self.rss_mb or [float("nan")]
        return (f"{self.name}: {self.seconds:.0f} s, {self.valid_files} valid files, {self.hostile_items} hostile items, "
                f"valid rows stored {self.valid_rows:,} = {self.rate:,.0f} rows/s | RSS MB first {r[0]:.0f} median "
                f"{statistics.median(r):.0f} last {r[-1]:.0f} max {max(r):.0f} ({len(r)} samples) | crashes "
                f"{self.crashes}")


class Producer:
    """Valid uploads with unique times, and hostile items, written into a drop directory."""

    def __init__(self, drop: Path, start: datetime) -> None:
        reg, _ = load_registry(packaged("sample_registry.yaml"))
        self.mine = reg.mine(MINE)
        self.points = [p.code for p in self.mine.points]
        self.drop = drop
        self.t = start
        self.rng = random.Random(15)
        self.n = itertools.count()
        self.hostile = itertools.cycle(_HOSTILE_KINDS)

    def _records(self, snapshots: int) -> Iterator[CdssRecord]:
        for _ in range(snapshots):
            self.t += timedelta(seconds=10)
            for i, p in enumerate(self.points):
                yield CdssRecord(p, "甲烷", "回风巷", round(0.2 + (i % 37) / 100, 2), "%CH4", 0, self.t)

    def valid(self) -> int:
        """Write one valid file of 10 snapshots; its row count."""
        records = list(self._records(10))
        name, data = write_file("CDSS", Header(MINE, self.mine.name, "KJ95X", "安全监控", "bench", None, self.t), records)
        self._put(name, data)
        return len(records)

    def hostile_item(self) -> int:
        """Write one hostile item; the valid rows it carries (hostile-record files carry some)."""
        kind = next(self.hostile)
        k = next(self.n)
        # Unique, well-formed names, so each item is refused for what it is, not for its name.
        stamp = f"{MINE}_CDSS_{datetime(2030, 1, 1) + timedelta(seconds=k):%Y%m%d%H%M%S}.txt"
        valid = 0
        if kind == "bytes":
            self._put(stamp, self.rng.randbytes(4096) + b"||")
        elif kind == "records":
            records = list(self._records(2))
            _, data = write_file("CDSS", Header(MINE, self.mine.name, None, None, None, None, self.t), records)
            junk = [b"\x00\x01;;;", b"x" * 300, b"1e400;;", f"{self.points[0]};a;b;nan;u;0;x".encode()]
            lines = data.split(b"~\n")
            mixed = [lines[0], *itertools.chain.from_iterable((ln, self.rng.choice(junk)) for ln in lines[1:-1]),
                     lines[-1]]
            self._put(f"{MINE}_CDSS_{self.t.astimezone(zone()):%Y%m%d%H%M%S}.txt", b"~\n".join(mixed))
            valid = len(records)
        elif kind == "errors":
            self._put(stamp, f"{MINE};x;x;x;x;;2024-01-01 00:00:00~".encode() + b"x~" * 20_000 + b"||")
        elif kind == "big":
            self._put(stamp, b"0;" * (_MAX_FILE_BYTES // 2 + 10) + b"~||")
        elif kind == "link":
            os.symlink("/etc/passwd", self.drop / stamp)
        elif kind == "fifo":
            os.mkfifo(self.drop / stamp)
        elif kind == "newline":
            self._put(f"x\nERROR forged {k}\n{stamp}", b"||")
        elif kind == "rawname":
            with open(os.fsencode(self.drop) + b"/\xff\xfe" + str(k).encode() + b".txt", "wb") as f:
                f.write(b"||")
        elif kind == "dotdot":
            self._put(f"..{stamp}", b"||")
        else:
            self._put(stamp, b"no terminator")
        return valid

    def _put(self, name: str, data: bytes) -> None:
        tmp = self.drop / f".{next(self.n)}.part"  # hidden while written, then renamed in
        tmp.write_bytes(data)
        tmp.rename(self.drop / name)

    def backlog(self) -> int:
        return sum(1 for n in os.listdir(self.drop) if n.endswith(".txt") and not n.startswith("."))


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _spawn(dsn: str, drop: Path, archive: Path, quarantine: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest.files.cli", "ingest-files", "--watch", str(drop), "--archive", str(archive),
             "--quarantine", str(quarantine), "--poll-s", "0.2", "--incomplete-timeout-s", "5",
             "--max-file-bytes", str(_MAX_FILE_BYTES), "--lang", "en"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _empty(directory: Path) -> None:
    # The archive and quarantine would fill the disk over a long soak: the bench empties them.
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


async def _phase(phase: Phase, dsn: str, root: Path, producer: Producer, minutes: float, *, hostile: bool) -> None:
    drop, archive, quarantine = root / "drop", root / "archive", root / "quarantine"
    conn = await asyncpg.connect(dsn)
    proc = _spawn(dsn, drop, archive, quarantine, root / "watcher.log")
    try:
        before = await conn.fetchval("SELECT count(*) FROM readings")
        t0 = time.monotonic()
        next_sample = t0 + _SAMPLE_S  # the first sample after start-up
        while time.monotonic() - t0 < minutes * 60:
            while producer.backlog() < _BACKLOG:
                producer.valid()
                phase.valid_files += 1
                if hostile:
                    producer.hostile_item()
                    phase.hostile_items += 1
            if proc.poll() is not None:
                phase.crashes += 1
                proc = _spawn(dsn, drop, archive, quarantine, root / "watcher.log")
            if time.monotonic() >= next_sample:
                rss = _rss_mb(proc.pid)
                if rss is not None:
                    phase.rss_mb.append(rss)
                next_sample += _SAMPLE_S
                _empty(archive)
                _empty(quarantine)
            await asyncio.sleep(0.1)
        phase.seconds = time.monotonic() - t0
        phase.valid_rows = await conn.fetchval("SELECT count(*) FROM readings") - before
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        await conn.close()
    # What the watcher had not taken when the phase ended is not counted (nor produced next phase).
    _empty(drop)


async def soak(server_dsn: str, minutes: float, baseline_minutes: float) -> tuple[Phase, Phase]:
    """Baseline (valid only) then soak (hostile + valid) on one fresh database; both phases' figures."""
    from bench.files.__main__ import drop_db
    from bench.ingest.__main__ import fresh_db

    dsn = await fresh_db(server_dsn)
    root = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    try:
        for d in ("drop", "archive", "quarantine"):
            (root / d).mkdir()
        # Valid times start 700 days back (inside the 730-day retention) and advance 100 s per
        # file: months of room, so no valid file of a long soak runs into the future.
        producer = Producer(root / "drop", datetime.now(UTC).replace(microsecond=0) - timedelta(days=700))
        base = Phase("valid only")
        await _phase(base, dsn, root, producer, baseline_minutes, hostile=False)
        print(base.line(), flush=True)
        mixed = Phase("hostile + valid")
        await _phase(mixed, dsn, root, producer, minutes, hostile=True)
        print(mixed.line(), flush=True)
        conn = await asyncpg.connect(dsn)
        try:
            reasons = await conn.fetch("SELECT reason, count(*) AS n FROM dead_letters GROUP BY 1 ORDER BY 2 DESC")
        finally:
            await conn.close()
        print("dead letters: " + ", ".join(f"{r['reason']} {r['n']}" for r in reasons), flush=True)
        print(f"valid throughput under hostile input: {mixed.rate / base.rate:.2f} of the valid-only figure; "
              f"crashes {base.crashes + mixed.crashes}", flush=True)
        return base, mixed
    finally:
        shutil.rmtree(root, ignore_errors=True)
        await drop_db(server_dsn, dsn)
