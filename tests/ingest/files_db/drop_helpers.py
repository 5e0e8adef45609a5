"""Running the drop-directory watcher as a real process, and looking for a secret everywhere it could leak."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.conftest import ROOT


@dataclass(frozen=True)
class Run:
    """A finished watcher process: exit status, output, and its peak resident memory."""

    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float


# The watcher runs under this wrapper, which records its peak RSS (VmHWM) on exit. VmHWM is
# the exec'ed process's own: rusage's ru_maxrss would also count the pytest process the child
# was forked from (Linux keeps the pre-exec high-water mark across exec).
_WRAPPER = """
import atexit, runpy, sys
out = sys.argv[1]
def _write():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            with open(out, "w") as f:
                f.write(line.split()[1])
atexit.register(_write)
sys.argv = ["ingest.files.cli", *sys.argv[2:]]
runpy.run_module("ingest.files.cli", run_name="__main__", alter_sys=True)
"""


def run_watcher(dsn: str, drop: Path, archive: Path, quarantine: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 300) -> Run:
    """`python -m ingest.files.cli ingest-files --once` on `drop`, with its peak RSS (VmHWM)."""
    full_env = {**os.environ, "DATABASE_URL": dsn, "PYTHONUNBUFFERED": "1", "MINEWATCH_RETENTION_DAYS": "36500",
                **(env or {})}
    out, err = drop.parent / f"{drop.name}.stdout", drop.parent / f"{drop.name}.stderr"
    peak = drop.parent / f"{drop.name}.vmhwm"
    argv = [sys.executable, "-c", _WRAPPER, str(peak), "-v", "ingest-files", "--watch", str(drop), "--archive",
            str(archive), "--quarantine", str(quarantine), "--once", "--lang", "en", *args]
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(argv, env=full_env, cwd=ROOT, stdout=o, stderr=e)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"the watcher did not finish in {timeout} s (a hang)") from None
    rss = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
    return Run(proc.returncode, out.read_text("utf-8", "replace"), err.read_text("utf-8", "replace"), rss)


async def tables_holding(dsn: str, secret: str) -> list[str]:
    """Every table (and bytea payload) of the database whose rows' text holds `secret`."""
    conn = await asyncpg.connect(dsn)
    try:
        names = [r["t"] for r in await conn.fetch(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS t FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'")]
        found = [t for t in names
                 if await conn.fetchval(f"SELECT count(*) FROM {t} x WHERE strpos(x::text, $1) > 0", secret)]
        if await conn.fetchval("SELECT count(*) FROM dead_letters WHERE position(convert_to($1, 'UTF8') IN payload_raw) > 0",
                               secret):
            found.append("dead_letters.payload_raw")
        return found
    finally:
        await conn.close()


def files_holding(root: Path, secret: bytes) -> list[str]:
    """Regular files below `root` (links not followed) whose bytes hold `secret`."""
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_symlink() or not p.is_file():
                continue
            if secret in p.read_bytes():
                out.append(str(p))
    return out
