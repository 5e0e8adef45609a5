"""Soak: the all-in-one `minewatch run` (one mine's control room on one box) at the demo load.

    python -m bench.allinone [--minutes 120] [--sample-s 30] [--data-dir DIR]

Starts `minewatch run` exactly as the README's first command does (embedded PostgreSQL and
broker, the simulators, the demo scenario) in a fresh data directory and free ports, and
samples, every --sample-s seconds, the resident set size (VmRSS, /proc/<pid>/status) and CPU
time of every process of its tree: the minewatch process itself (ingest, rules, alerting,
API, rollup in one event loop), the simulators, the embedded PostgreSQL (all its backends
summed) and the broker. It prints one line per sample and, at the end, per process: RSS at
warm-up end (10 min), at the end, the growth over the last 20 minutes in % and the slope in
MB/min over each 20-minute third, so where the rise levels off is visible. A sample CSV goes
to --data-dir/rss.csv.

The figure that matters is the minewatch process's RSS over time (flat after warm-up);
PostgreSQL's shared buffers fill as the tables grow and are reported separately.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from launcher.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _tree(root: int, data: Path) -> list[int]:
    """The run's processes: its descendants, and the embedded PostgreSQL (pg_ctl detaches it)."""
    kids, out, todo = _children(), [], [root]
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(data).encode() in (d / "cmdline").read_bytes():
                    todo.append(int(d.name))
                    todo.extend(kids.get(int(d.name), []))
            except OSError:
                continue
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.append(pid)
            todo.extend(kids.get(pid, []))
    return out


def _sample(pid: int) -> tuple[str, float, float] | None:
    """(kind, RSS MB, CPU s) of one process, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    cpu = (int(stat[11]) + int(stat[12])) / TICK
    if "postgres" in cmd:
        kind = "postgres"
    elif "mosquitto" in cmd or "amqtt_broker" in cmd:
        kind = "broker"
    elif "simulators" in cmd or " simulate" in cmd:
        kind = "simulators"
    else:
        kind = "minewatch"
    return kind, rss_kb / 1024, cpu


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares MB per minute of (minute, MB) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.allinone", description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--warmup-min", type=float, default=10.0)
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="mw-allinone-"))
    data.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MQTT_URL", "MINEWATCH_DATABASE_URL",
                                                               "MINEWATCH_MQTT_URL")}
    env.update(MINEWATCH_DATA_DIR=str(data), MINEWATCH_API_PORT=str(free_port()),
               MINEWATCH_METRICS_PORT=str(free_port()))
    log = (data / "run.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    print(f"minewatch run: pid {proc.pid}, data {data}, log {data / 'run.log'}", flush=True)
    rows: list[dict[str, float]] = []
    began = time.monotonic()
    try:
        with (data / "rss.csv").open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["minute", "kind", "rss_mb", "cpu_s", "processes"])
            while time.monotonic() - began < args.minutes * 60:
                if proc.poll() is not None:
                    print(f"minewatch run exited with {proc.returncode}: see {data / 'run.log'}", file=sys.stderr)
                    return 1
                minute = (time.monotonic() - began) / 60
                per: dict[str, list[float]] = {}
                for pid in _tree(proc.pid, data):
                    s = _sample(pid)
                    if s is not None:
                        agg = per.setdefault(s[0], [0.0, 0.0, 0])
                        agg[0] += s[1]
                        agg[1] += s[2]
                        agg[2] += 1
                row: dict[str, float] = {"minute": minute}
                for kind, (rss, cpu, n) in sorted(per.items()):
                    out.writerow([f"{minute:.2f}", kind, f"{rss:.1f}", f"{cpu:.1f}", int(n)])
                    row[kind] = rss
                f.flush()
                rows.append(row)
                print(f"{minute:7.1f} min  " + "  ".join(f"{k} {v:7.1f} MB" for k, v in row.items() if k != "minute"),
                      flush=True)
                time.sleep(args.sample_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    end = rows[-1]["minute"] if rows else 0.0
    print(f"\nover {end:.0f} min (warm-up {args.warmup_min:g} min):")
    for kind in sorted({k for r in rows for k in r if k != "minute"}):
        series = [(r["minute"], r[kind]) for r in rows if kind in r]
        warm = [p for p in series if p[0] >= args.warmup_min]
        if not warm:
            continue
        last20 = [p for p in warm if p[0] >= end - 20]
        growth = (last20[-1][1] - last20[0][1]) / last20[0][1] * 100 if last20 and last20[0][1] else 0.0
        thirds = []
        span = (end - args.warmup_min) / 3
        for i in range(3):
            lo = args.warmup_min + i * span
            thirds.append(_slope([p for p in warm if lo <= p[0] < lo + span or (i == 2 and p[0] >= lo)]))
        print(f"  {kind:<11} first {series[0][1]:7.1f} MB  warm-up end {warm[0][1]:7.1f} MB  end {series[-1][1]:7.1f} MB"
              f"  last 20 min {growth:+.1f} %  slope by third " + " / ".join(f"{s:+.2f}" for s in thirds) + " MB/min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
