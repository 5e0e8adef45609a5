"""End-to-end ingest throughput (simulator → MQTT → ingest → committed rows) next to the raw COPY ceiling.

    python -m bench.ingest [--seconds 60] [--rate 200000] [--items 100] [--runs 3] [--processes 1] [--live]

Uses DATABASE_URL when set, else a private embedded PostgreSQL. The broker is
always a private Mosquitto with the project's lossless settings (the
embedded broker), unless --mqtt-url names one: a broker with Mosquitto's
default limits (1000 queued messages) drops the backlog and the run stalls.

Each run: a fresh database; payloads pre-rendered from the simulator's
history mode (so the generator's CPU is not in the figure), published at QoS 1
with bounded in-flight by a separate process; the ingest is the real
`minewatch ingest` process.

Default mode, *drain*: the ingest connects once (creating its persistent
session) and stops; the whole data set is published into the broker, which
queues it for the session; then the ingest starts again and the figure is
readings committed per second from its first commit to its last, i.e. the
sustained rate of the ingest working through a backlog (history mode,
back-fill after an outage). This keeps the publisher's CPU out of the figure:
in production the publishers are the mines, not this machine, and on a
2-core machine a concurrent publisher takes a large share of a core.

--live: the publisher runs while the ingest drains, and the figure is from the
first publish to the last commit (publisher, broker and ingest share the CPU).

Also printed: the ingest process's CPU time per reading (user + system), a
figure that is much less sensitive to other load on the machine than the
rate. The ceiling is asyncpg COPY of pre-built rows in 50 000-row batches
into a bare table of the same columns, on the same server, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from bench import scratch
from launcher.embedded import EmbeddedBroker, EmbeddedPostgres
from minewatch.registry import load_registry
from minewatch.settings import packaged
from simulators.model import generate

ROOT = Path(__file__).resolve().parents[2]
SPY_FLAGS = os.environ.get("BENCH_SPY_FLAGS", "--gil").split()
GEOTECH = {"0021", "0029", "0030", "0031", "0032", "0033", "0034"}


def render(path: Path, readings: int, items: int, prefix: str) -> int:
    """Write `readings` simulator readings as length-prefixed (topic, payload) records; returns the count."""
    reg, _ = load_registry(packaged("sample_registry.yaml"))
    per_point_day = 2880
    days = readings / (len(list(reg.iter_points())) * per_point_day)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=days * 1.02)
    enc = msgspec.json.Encoder()
    n = 0
    with path.open("wb") as out:
        for batch in generate(reg, 42, start, end):
            codes = batch.codes
            rows = [{"point": codes[p], "ts": t, "value": v, "status": s} for p, t, v, s in zip(
                batch.point.tolist(), batch.ts_ms.tolist(), batch.value.tolist(), batch.status.tolist(), strict=True)]
            for i in range(0, len(rows), items):
                chunk = rows[i:i + items]
                fam = "geotech" if chunk[0]["point"].split("_")[1][4:8] in GEOTECH else "safety"
                topic = f"{prefix}mines/{batch.mine}/{fam}".encode()
                payload = enc.encode(chunk if items > 1 else chunk[0])
                out.write(len(topic).to_bytes(2, "big") + topic + len(payload).to_bytes(4, "big") + payload)
                n += len(chunk)
                if n >= readings:
                    return n
    return n


PUBLISHER = r'''
import sys, time
from simulators.publish import MqttSink
url, path, inflight = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(path, "rb").read()
sink = MqttSink(url, max_inflight=inflight, threaded=False)  # the simulator's history-mode publisher
sink.connect()
i = 0; n = 0
t0 = time.time()
while i < len(data):
    tl = int.from_bytes(data[i:i+2], "big"); topic = data[i+2:i+2+tl].decode(); i += 2 + tl
    pl = int.from_bytes(data[i:i+4], "big"); payload = data[i+4:i+4+pl]; i += 4 + pl
    sink.send(topic, payload); n += 1
sink.close()
print(f"published {n} messages in {time.time()-t0:.2f} s", flush=True)
'''


async def copy_ceiling(dsn: str, rows: int = 2_000_000) -> float:
    """Raw asyncpg COPY into a bare table of the readings columns, 50 000-row batches; rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy; CREATE UNLOGGED TABLE bench_copy "
                           "(point_id integer, ts timestamptz, value double precision, status smallint)")
        await conn.execute("ALTER TABLE bench_copy SET LOGGED")
        base = datetime(2026, 1, 1, tzinfo=UTC)
        batch = [(i % 150, base + timedelta(milliseconds=i * 37), 0.37 + (i % 100) / 1000, 0) for i in range(50_000)]
        t0 = time.perf_counter()
        done = 0
        while done < rows:
            await conn.copy_records_to_table("bench_copy", records=batch, columns=["point_id", "ts", "value", "status"])
            done += len(batch)
        return done / (time.perf_counter() - t0)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.close()


async def copy_ceiling_readings(dsn: str, rows: int = 1_000_000) -> float:
    """The same COPY into the real `readings` table (its partitions, keys, indexes and triggers); rows/s.

    The bare-table ceiling above is what the brief compares against; this one
    is what PostgreSQL can take into the schema the ingest must write to, so it
    bounds the ingest from above. Rows are an hour ahead (partitions exist) and
    truncated afterwards, before the ingest runs.
    """
    conn = await asyncpg.connect(dsn)
    try:
        points = [r[0] for r in await conn.fetch("SELECT id FROM points ORDER BY id")]
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        t = 0.0
        done = 0
        while done < rows:
            batch = [(points[i % len(points)], base + timedelta(milliseconds=i // len(points)), 0.37, 0)
                     for i in range(done, done + 50_000)]
            t0 = time.perf_counter()
            await conn.copy_records_to_table("readings", records=batch, columns=["point_id", "ts", "value", "status"])
            t += time.perf_counter() - t0
            done += len(batch)
        return done / t
    finally:
        await conn.execute("TRUNCATE readings")
        await conn.close()


async def fresh_db(server_dsn: str) -> str:
    sys.path.insert(0, str(ROOT))
    from bench import bench_db  # same set-up as the tests: migrate + sample registry
    return await bench_db(server_dsn, registry=True)


async def stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(n_rows), 0) FROM dirty_windows"))
    finally:
        await conn.close()


async def start_ingests(dsn: str, url: str, prefix: str, processes: int, profile: Path | None,
                        logs: Path) -> list[subprocess.Popen[bytes]]:
    """Start the ingest process(es) and wait until each has connected and subscribed."""
    env = {**os.environ, "DATABASE_URL": dsn, "MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
    ingests = []
    waits = []
    for k in range(processes):
        cmd = [sys.executable, "-m", "launcher", "ingest", "--topic-prefix", prefix, "--client-id",
               f"bench-{prefix.strip('/')}-{k}"] + ([] if processes > 1 else ["--no-share"])
        if processes > 1:
            cmd += ["--share-group", f"bench{prefix.strip('/')}"]
        if profile is not None and k == 0:
            spy = str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy, "record", *SPY_FLAGS, "-f", "raw", "-o", str(profile), "-r", "100", "--", *cmd]
        log = logs / f"ingest-{prefix.strip('/')}-{k}.log"
        before = log.read_text().count("connected to") if log.exists() else 0
        with log.open("ab") as out:
            ingests.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            cwd=ROOT, start_new_session=True))
        waits.append((log, before))
    deadline = time.monotonic() + 60
    for (log, before), p in zip(waits, ingests, strict=True):
        while log.read_text().count("connected to") <= before:
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not connect: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # SUBACK
    return ingests


def stop_ingests(ingests: list[subprocess.Popen[bytes]]) -> float:
    """SIGINT each ingest and reap it; returns their CPU seconds (user + system, children included)."""
    cpu = 0.0
    for p in ingests:
        os.killpg(p.pid, signal.SIGINT)
    for p in ingests:
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
        cpu += ru.ru_utime + ru.ru_stime
    return cpu


async def one_run(server_dsn: str, url: str, payloads: Path, n: int, prefix: str, processes: int,
                  profile: Path | None, live: bool) -> tuple[float, float, float, float]:
    """One run; returns (readings/s, COPY ceiling rows/s, real-table ceiling rows/s, ingest CPU µs per reading)."""
    dsn = await fresh_db(server_dsn)
    pub_cmd = [sys.executable, "-c", PUBLISHER, url, str(payloads), "2000"]
    if not live:
        # Create the persistent session(s), stop, and let the broker queue the whole data set.
        stop_ingests(await start_ingests(dsn, url, prefix, processes, None, payloads.parent))
        t = time.perf_counter()
        subprocess.run(pub_cmd, cwd=ROOT, check=True)
        print(f"    pre-published {n:,} readings in {time.perf_counter() - t:.1f} s", flush=True)
    ceiling = await copy_ceiling(dsn)
    table_ceiling = await copy_ceiling_readings(dsn)
    ingests = await start_ingests(dsn, url, prefix, processes, profile, payloads.parent)
    pub = None
    if live:
        pub = subprocess.Popen(pub_cmd, cwd=ROOT)
    t0 = time.perf_counter()
    start_count = 0
    last_print = last_progress = t0
    last_got = -1
    while True:
        got = await stored(dsn)
        now = time.perf_counter()
        if not live and start_count == 0 and got > 0:
            t0, start_count = now, got  # drain: from the first commit
        if got >= n:
            break
        if got != last_got:
            last_got, last_progress = got, now
        elif now - last_progress > 60:
            stop_ingests(ingests)
            raise RuntimeError(f"no progress for 60 s at {got} of {n} readings: did the broker drop messages?")
        if now - last_print > 10:
            print(f"    ... {got:,} / {n:,} stored", flush=True)
            last_print = now
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - t0
    if pub is not None:
        pub.wait(60)
    cpu = stop_ingests(ingests)
    # Under --profile the reaped process is py-spy, whose CPU is not the ingest's.
    return (n - start_count) / elapsed, ceiling, table_ceiling, float("nan") if profile else cpu / n * 1e6


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60, help="target duration of each run at the target rate")
    ap.add_argument("--rate", type=float, default=200_000, help="target readings/s, sizes the data set")
    ap.add_argument("--items", type=int, default=100, help="items per MQTT message (1 = single-item payloads)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", type=int, default=1, help="ingest processes sharing a $share subscription")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy (--gil) samples of the ingest, first run, into bench/results/ingest-profile.txt")
    ap.add_argument("--live", action="store_true", help="publish while the ingest runs (see above)")
    ap.add_argument("--mqtt-url", help="use this broker instead of a private one (needs lossless settings)")
    args = ap.parse_args()
    work = scratch("minewatch-bench-")
    pg = broker = None
    server_dsn = os.environ.get("DATABASE_URL")
    url = args.mqtt_url
    try:
        if not server_dsn:
            pg = EmbeddedPostgres(work / "pg")
            server_dsn = pg.start()
        if not url:
            broker = EmbeddedBroker(work / "mqtt")
            url = broker.start()
        prefix = f"b{uuid.uuid4().hex[:8]}r0/"  # runs swap r0 for r1, r2: same length, so records stay valid
        payloads = work / "payloads.bin"
        target = int(args.seconds * args.rate)
        t = time.perf_counter()
        n = render(payloads, target, args.items, prefix)
        print(f"rendered {n:,} readings, {args.items} per message, in {time.perf_counter() - t:.1f} s")
        rates, ceilings, tables, cpus = [], [], [], []
        for r in range(args.runs):
            prof = ROOT / "bench" / "results" / "ingest-profile.txt" if args.profile and r == 0 else None
            if prof:
                prof.parent.mkdir(parents=True, exist_ok=True)
            run_prefix = prefix.replace("r0/", f"r{r}/")
            if r:
                # new prefix per run so no persistent session from a previous run holds messages
                data = payloads.read_bytes().replace(prefix.encode(), run_prefix.encode())
                (work / "p.bin").write_bytes(data)
                path = work / "p.bin"
            else:
                path = payloads
            rate, ceiling, table, cpu = await one_run(server_dsn, url, path, n, run_prefix, args.processes, prof,
                                                      args.live)
            rates.append(rate)
            ceilings.append(ceiling)
            tables.append(table)
            cpus.append(cpu)
            print(f"run {r + 1}: ingest {rate:,.0f} readings/s | COPY ceiling {ceiling:,.0f} rows/s | "
                  f"ratio {rate / ceiling:.2f} | COPY into readings {table:,.0f} rows/s, ratio {rate / table:.2f} | "
                  f"ingest CPU {cpu:.2f} µs/reading", flush=True)
        med, cmed = statistics.median(rates), statistics.median(ceilings)
        ratios = statistics.median(r / c for r, c in zip(rates, ceilings, strict=True))
        print(f"median of {args.runs} ({'live' if args.live else 'drain'}): ingest {med:,.0f} readings/s "
              f"({args.items} items/message, {args.processes} process(es)) | COPY ceiling {cmed:,.0f} rows/s | "
              f"ratio {med / cmed:.2f} (median of per-run ratios {ratios:.2f}) | "
              f"COPY into readings {statistics.median(tables):,.0f} rows/s, ratio {med / statistics.median(tables):.2f} | "
              f"ingest CPU {statistics.median(cpus):.2f} µs/reading")
    finally:
        if broker:
            broker.stop()
        if pg:
            pg.stop("immediate")


if __name__ == "__main__":
    asyncio.run(main())
