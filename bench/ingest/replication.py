"""The cost of synchronous replication to the ingest, measured side by side in one run.

    python -m bench.ingest.replication [--seconds 20] [--runs 3] [--rate 200000]

Starts a primary and a streaming standby (launcher.embedded.StandbyPair, fsync on, the
wheel's PostgreSQL 15) and runs `python -m bench.ingest` against the primary twice: with the
standby asynchronous (`synchronous_standby_names = ''`: a COMMIT returns once the primary has
flushed its WAL) and synchronous (`'*'`, `synchronous_commit = on`: a COMMIT returns once the
standby has flushed it too — what docs/ha.md asks for, because the ingest acknowledges the
broker after its COMMIT). Each pass prints its own figures and its own same-run COPY ceiling
(which pays the same replication cost); the summary puts the medians side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from launcher.embedded import StandbyPair

ROOT = Path(__file__).resolve().parents[2]
_RUN = re.compile(r"run 1: ingest ([\d,]+) readings/s \| COPY ceiling ([\d,]+) rows/s .*ingest CPU ([\d.]+) µs/reading")
_SET_SYNC = {"": "ALTER SYSTEM SET synchronous_standby_names = ''",
             "*": "ALTER SYSTEM SET synchronous_standby_names = '*'"}


async def _set_sync(dsn: str, names: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(_SET_SYNC[names])
        await conn.execute("SELECT pg_reload_conf()")
        want = "sync" if names else "async"
        deadline = time.monotonic() + 30
        while await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = $1", want) != 1:
            if time.monotonic() > deadline:
                raise SystemExit(f"the standby did not become {want}")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ingest.replication", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=200_000)
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="mw-repl-"))
    os.chmod(home, 0o711)
    pair = StandbyPair(home)
    print(f"starting a primary and a streaming standby in {home} ...", flush=True)
    pair.start()
    rates: dict[str, list[tuple[float, float, float]]] = {"asynchronous": [], "synchronous": []}
    try:
        # Modes alternate run by run, so the machine's other load falls on both alike.
        for run in range(1, args.runs + 1):
            for mode, names in (("asynchronous", ""), ("synchronous", "*")):
                asyncio.run(_set_sync(pair.primary.dsn, names))
                print(f"\n=== run {run}, standby {mode} (synchronous_standby_names = '{names}') ===", flush=True)
                env = {**os.environ, "DATABASE_URL": pair.primary.dsn}
                env.pop("MINEWATCH_DATABASE_URL", None)
                res = subprocess.run([sys.executable, "-m", "bench.ingest", "--seconds", str(args.seconds), "--runs", "1",
                                      "--rate", str(args.rate)], cwd=ROOT, env=env, capture_output=True, text=True,
                                     check=False)
                print(res.stdout + res.stderr, flush=True)
                m = _RUN.search(res.stdout)
                if res.returncode != 0 or m is None:
                    print(f"bench.ingest failed ({res.returncode})", file=sys.stderr)
                    return res.returncode or 1
                ingest, ceiling, cpu = (float(g.replace(",", "")) for g in m.groups())
                rates[mode].append((ingest, ceiling, cpu))
    finally:
        pair.stop()
    print(f"\n=== side by side, medians of {args.runs} alternating run(s) ===")
    for mode, got in rates.items():
        ingest = statistics.median(r[0] for r in got)
        ceiling = statistics.median(r[1] for r in got)
        ratio = statistics.median(r[0] / r[1] for r in got)
        cpu = statistics.median(r[2] for r in got)
        print(f"{mode:>12}: ingest {ingest:,.0f} readings/s | COPY ceiling {ceiling:,.0f} rows/s | ratio {ratio:.2f} | "
              f"ingest CPU {cpu:.2f} µs/reading")
    a_ratio = statistics.median(r[0] / r[1] for r in rates["asynchronous"])
    s_ratio = statistics.median(r[0] / r[1] for r in rates["synchronous"])
    print(f"synchronous / asynchronous (ratio to each run's own ceiling): {s_ratio / a_ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
