"""Soak: the ingest under a mixed hostile / valid load for N minutes, next to the same run without hostile input.

    python -m bench.ingest.soak [--minutes 10] [--baseline-minutes 2] [--rate 40000] [--hostile-share 0.2]
                                [--sample-s 5]

Uses DATABASE_URL when set, else a private embedded PostgreSQL; the broker is a private
Mosquitto with the project's settings (including its message_size_limit). The ingest is the
real `minewatch ingest` process, started once and kept for the whole run.

Two phases, same ingest, same publisher, same database:

1. *baseline*: valid safety messages only (100 items each) at --rate valid readings/s (QoS 1,
   2 000 in flight) for --baseline-minutes;
2. *hostile*: the same valid stream with --hostile-share of the messages replaced by hostile
   ones (random bytes, invalid UTF-8 and lone surrogate escapes inside otherwise valid
   batches, NUL, 1e309, year-0001 and epoch-0 times, 10 000-deep nesting, 200 kB fields,
   200 unknown points in one message, 3 MB junk, unknown topics) for --minutes.

The load is paced, not flat out: a flat-out publisher builds a backlog the broker holds in RAM
(GBs in ten minutes) and a drain longer than the phase. Each phase's figures: valid readings
committed per second from its first publish until every valid reading it published is stored,
how long that drain took after the publisher stopped (the ingest keeping up: ~0 s), and the
ingest's CPU time (user + system, /proc/<pid>/stat) per valid reading, the capacity figure
least disturbed by other load on the machine. The ingest's RSS
(/proc/<pid>/status VmRSS) is sampled every --sample-s seconds; printed: first / median /
last / max of the hostile phase, and whether the ingest process ever exited (crashes). The
publisher shares the machine with the ingest and PostgreSQL: on a 2-core machine, compare the
two phases with each other, not with `python -m bench.ingest` (drain mode).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench import scratch
from launcher.embedded import EmbeddedBroker, EmbeddedPostgres
from minewatch.registry import load_registry
from minewatch.settings import packaged

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 100


def _hostile(rng: random.Random, mine: str, points: list[str], valid: list[bytes]) -> tuple[str, bytes]:
    """One hostile message (family suffix, payload); `valid` items, if any, ride along and must be stored."""
    p = points[0]
    kind = rng.randrange(12)
    if kind == 0:
        return "safety", b"\x00" + rng.randbytes(rng.randint(1, 2_000))
    if kind == 1:
        bad = b'{"point": "' + p.encode() + b'\xff\xfe", "ts": 1, "value": 1}'
        return "safety", b"[" + b",".join([*valid[:50], bad, *valid[50:]]) + b"]"
    if kind == 2:
        bad = b'{"point": "X\\ud800", "ts": 1, "value": 1}'  # a lone surrogate escape
        return "safety", b"[" + b",".join([bad, *valid]) + b"]"
    if kind == 3:
        return "safety", json.dumps({"point": "\u0000\u202e", "ts": 1, "value": 1}).encode()
    if kind == 4:
        return "safety", b'[{"point": "' + p.encode() + b'", "ts": 1795392900250, "value": 1e309}]'
    if kind == 5:
        return "safety", json.dumps([{"point": p, "ts": "0001-01-01T00:00:00Z", "value": 1},
                                     {"point": p, "ts": 0, "value": 1}]).encode()
    if kind == 6:
        return "safety", b"[" * 10_000 + b"]" * 10_000
    if kind == 7:
        return "geotech", b'{"point": "' + b"A" * 200_000 + b'", "ts": 1795392900250, "value": 1}'
    if kind == 8:
        return "safety", json.dumps([{"point": f"NOPE{i}", "ts": 1795392900250, "value": i}
                                     for i in range(200)]).encode()
    if kind == 9 and rng.random() < 0.05:
        return "safety", b"[" + rng.randbytes(3_000_000) + b"]"
    if kind == 10:
        return "nonsense", b'{"point": "x"}'
    return "personnel", b'{"card": 1e309, "ts": "2026-13-45", "station": [[[[]]]]}'


def publish(url: str, prefix: str, seconds: float, share: float, start_k: int, seed: int, rate: float) -> None:
    """Publisher process: `rate` valid readings/s for `seconds`; prints `valid <n> hostile <m> next <k>`."""
    sys.path.insert(0, str(ROOT))
    from simulators.publish import MqttSink

    reg, _ = load_registry(packaged("sample_registry.yaml"))
    mine = reg.mines[0]
    points = [pt.code for pt in mine.points]
    base = int((datetime.now(UTC) - timedelta(days=2)).timestamp() * 1000)
    rng = random.Random(seed)
    sink = MqttSink(url, max_inflight=2_000, threaded=False)
    sink.connect()
    k = start_k
    n_valid = n_hostile = 0
    t0 = time.monotonic()
    end = t0 + seconds
    while time.monotonic() < end:
        ahead = n_valid / rate - (time.monotonic() - t0)
        if ahead > 0.002:
            time.sleep(ahead)
        items = []
        for _ in range(ITEMS):
            k += 1
            # unique (point, ts): ts steps 1 ms per round over the points
            items.append(b'{"point":"%s","ts":%d,"value":%.3f,"status":0}' % (
                points[k % len(points)].encode(), base + k // len(points), (k % 997) / 100))
        if rng.random() < share:
            family, payload = _hostile(rng, mine.code, points, items)
            n_hostile += 1
            if b"".join(items[:1]) not in payload:
                k -= ITEMS  # the valid items did not ride along: reuse their keys
            else:
                n_valid += ITEMS
        else:
            family, payload = "safety", b"[" + b",".join(items) + b"]"
            n_valid += ITEMS
        sink.send(f"{prefix}mines/{mine.code}/{family}", payload)
    sink.close()
    print(f"valid {n_valid} hostile {n_hostile} next {k}", flush=True)


async def _stored(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(n_rows), 0) FROM dirty_windows WHERE kind = 'readings'"))


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(text.split("VmRSS:")[1].split()[0])


@dataclass
class Phase:
    """What one phase measured."""

    rate: float  # valid readings committed / s, first publish to last commit
    valid: int
    hostile: int
    next_k: int
    drain_s: float  # last commit - publisher end
    cpu_us: float  # ingest CPU per valid reading


async def phase(name: str, dsn: str, url: str, prefix: str, seconds: float, share: float, start_k: int,
                ingest: subprocess.Popen[bytes], sample_s: float, rss: list[int], rate: float) -> Phase:
    """One phase of the soak."""
    conn = await asyncpg.connect(dsn)
    try:
        before = await _stored(conn)
        cpu0 = _cpu_s(ingest.pid)
        t0 = time.perf_counter()
        pub = subprocess.Popen([sys.executable, "-m", "bench.ingest.soak", "--publish", url, prefix, str(seconds),
                                str(share), str(start_k), str(rate)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        next_sample = 0.0
        while pub.poll() is None:
            if time.perf_counter() >= next_sample:
                rss.append(_rss_kb(ingest.pid))
                next_sample = time.perf_counter() + sample_s
            if ingest.poll() is not None:
                raise RuntimeError(f"the ingest exited during the {name} phase")
            await asyncio.sleep(0.5)
        out = pub.stdout.read().split() if pub.stdout else []
        if pub.returncode != 0 or len(out) != 6:
            raise RuntimeError(f"publisher failed: {out}")
        valid, hostile, next_k = int(out[1]), int(out[3]), int(out[5])
        last = pub_end = time.perf_counter()
        while await _stored(conn) - before < valid:
            if ingest.poll() is not None:
                raise RuntimeError(f"the ingest exited during the {name} phase")
            if time.perf_counter() >= next_sample:
                rss.append(_rss_kb(ingest.pid))
                next_sample = time.perf_counter() + sample_s
            if time.perf_counter() - last > 300:
                raise RuntimeError(f"{name}: {await _stored(conn) - before} of {valid} valid readings stored")
            await asyncio.sleep(0.2)
        done = time.perf_counter()
        return Phase(valid / (done - t0), valid, hostile, next_k, done - pub_end,
                     (_cpu_s(ingest.pid) - cpu0) / max(1, valid) * 1e6)
    finally:
        await conn.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10, help="hostile phase duration")
    ap.add_argument("--baseline-minutes", type=float, default=2, help="valid-only phase duration, same run")
    ap.add_argument("--rate", type=float, default=40_000, help="valid readings/s offered in both phases")
    ap.add_argument("--hostile-share", type=float, default=0.2, help="share of messages that are hostile")
    ap.add_argument("--sample-s", type=float, default=5, help="RSS sampling interval")
    args = ap.parse_args()
    work = scratch("minewatch-soak-")
    pg = broker = None
    server_dsn = os.environ.get("DATABASE_URL")
    try:
        if not server_dsn:
            pg = EmbeddedPostgres(work / "pg")
            server_dsn = pg.start()
        broker = EmbeddedBroker(work / "mqtt")
        url = broker.start()
        sys.path.insert(0, str(ROOT))
        from bench import bench_db  # migrate + sample registry, as the tests do
        from minewatch.db.scratch import drop_db
        dsn = await bench_db(server_dsn, registry=True)
        prefix = f"s{uuid.uuid4().hex[:8]}/"
        log = work / "ingest.log"
        env = {**os.environ, "DATABASE_URL": dsn, "MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as out:
            ingest = subprocess.Popen([sys.executable, "-m", "launcher", "ingest", "--topic-prefix", prefix,
                                       "--client-id", f"soak-{prefix.strip('/')}", "--no-share"],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        while "connected to" not in log.read_text():
            if ingest.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        base_rss: list[int] = []
        p0 = await phase("baseline", dsn, url, prefix, args.baseline_minutes * 60, 0.0, 0, ingest,
                         args.sample_s, base_rss, args.rate)
        print(f"baseline ({args.baseline_minutes:g} min, valid only, {args.rate:,.0f}/s offered): {p0.rate:,.0f} valid "
              f"readings/s ({p0.valid:,} readings), drain after the publisher {p0.drain_s:.1f} s, ingest CPU "
              f"{p0.cpu_us:.2f} µs/valid reading; RSS {base_rss[0] / 1024:.0f} -> {base_rss[-1] / 1024:.0f} MB",
              flush=True)
        rss: list[int] = []
        p1 = await phase("hostile", dsn, url, prefix, args.minutes * 60, args.hostile_share, p0.next_k, ingest,
                         args.sample_s, rss, args.rate)
        crashed = ingest.poll() is not None
        conn = await asyncpg.connect(dsn)
        try:
            dead = int(await conn.fetchval("SELECT count(*) FROM dead_letters"))
            reasons = {r["reason"]: r["n"] for r in await conn.fetch(
                "SELECT reason, count(*) AS n FROM dead_letters GROUP BY 1 ORDER BY 2 DESC")}
        finally:
            await conn.close()
        os.killpg(ingest.pid, signal.SIGINT)
        ingest.wait(30)
        tracebacks = log.read_text().count("Traceback")
        mb = [r / 1024 for r in rss]
        print(f"hostile ({args.minutes:g} min, {args.hostile_share:.0%} of messages hostile): {p1.rate:,.0f} valid "
              f"readings/s ({p1.valid:,} readings, {p1.hostile:,} hostile messages, {dead:,} dead letters), "
              f"{p1.rate / p0.rate:.2f} x baseline; drain after the publisher {p1.drain_s:.1f} s; ingest CPU "
              f"{p1.cpu_us:.2f} µs/valid reading ({p1.cpu_us / p0.cpu_us:.2f} x baseline)", flush=True)
        print(f"RSS over {len(mb)} samples every {args.sample_s:g} s: first {mb[0]:.0f} MB, median "
              f"{statistics.median(mb):.0f} MB, last {mb[-1]:.0f} MB, max {max(mb):.0f} MB", flush=True)
        print(f"crashes: {int(crashed)}, tracebacks in the ingest log: {tracebacks}, exit code {ingest.returncode}")
        print(f"dead letters by reason: {reasons}")
        await drop_db(server_dsn, dsn)
    finally:
        if broker:
            broker.stop()
        if pg:
            pg.stop("immediate")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        url, prefix, seconds, share, start_k, rate = sys.argv[2:8]
        publish(url, prefix, float(seconds), float(share), int(start_k), seed=int(start_k) + 1, rate=float(rate))
    else:
        asyncio.run(main())
