"""End-to-end ingest throughput (simulator → MQTT → ingest → committed rows) next to the raw COPY ceiling.

    python -m bench.ingest [--seconds 60] [--items 100] [--runs 3] [--processes 1]

Uses DATABASE_URL / MQTT_URL when set, else private embedded servers. Each
run: a fresh database; payloads pre-rendered from the simulator's history
mode (so the generator's CPU is not in the figure), published by a separate
process at QoS 1 with bounded in-flight; the ingest is the real
`minewatch ingest` process. The figure is readings committed per second from
the first publish to the last commit. The ceiling is asyncpg COPY of
pre-built rows in 50 000-row batches into a bare table of the same columns,
on the same server, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from minewatch.embedded import EmbeddedBroker, EmbeddedPostgres
from minewatch.registry import load_registry
from minewatch.settings import packaged
from simulators.model import generate

ROOT = Path(__file__).resolve().parents[2]
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


async def fresh_db(server_dsn: str) -> str:
    sys.path.insert(0, str(ROOT))
    from tests.conftest import _create_db  # same set-up as the tests: migrate + sample registry
    return await _create_db(server_dsn, registry=True)


async def stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(n_rows), 0) FROM dirty_windows"))
    finally:
        await conn.close()


async def one_run(server_dsn: str, url: str, payloads: Path, n: int, prefix: str, processes: int,
                  profile: Path | None) -> tuple[float, float]:
    dsn = await fresh_db(server_dsn)
    env = {**os.environ, "DATABASE_URL": dsn, "MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
    ingests = []
    for k in range(processes):
        cmd = [sys.executable, "-m", "minewatch", "ingest", "--topic-prefix", prefix, "--client-id",
               f"bench-{prefix.strip('/')}-{k}"] + ([] if processes > 1 else ["--no-share"])
        if profile is not None and k == 0:
            spy = str(Path(sys.executable).with_name("py-spy"))
            cmd = [spy, "record", "-f", "raw", "-o", str(profile), "-r", "100", "--", *cmd]
        ingests.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        cwd=ROOT, start_new_session=True))
    await asyncio.sleep(2.5)  # connect + subscribe
    ceiling = await copy_ceiling(dsn)
    t0 = time.perf_counter()
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, url, str(payloads), "2000"], cwd=ROOT)
    last_print = t0
    while True:
        got = await stored(dsn)
        if got >= n:
            break
        if time.perf_counter() - last_print > 10:
            print(f"    ... {got} / {n} stored ({got / (time.perf_counter() - t0):,.0f}/s)", flush=True)
            last_print = time.perf_counter()
        if time.perf_counter() - t0 > 900:
            raise RuntimeError(f"stalled at {got} of {n}")
        await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - t0
    pub.wait(60)
    for p in ingests:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(60)
    return n / elapsed, ceiling


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60, help="target duration of each run at the target rate")
    ap.add_argument("--rate", type=float, default=200_000, help="target readings/s, sizes the data set")
    ap.add_argument("--items", type=int, default=100, help="items per MQTT message (1 = single-item payloads)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--processes", type=int, default=1, help="ingest processes sharing a $share subscription")
    ap.add_argument("--profile", action="store_true", help="py-spy flame graph of the ingest (first run)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minewatch-bench-"))
    os.chmod(work, 0o711)
    pg = broker = None
    server_dsn = os.environ.get("DATABASE_URL")
    url = os.environ.get("MQTT_URL")
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
        rates, ceilings = [], []
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
            rate, ceiling = await one_run(server_dsn, url, path, n, run_prefix, args.processes, prof)
            rates.append(rate)
            ceilings.append(ceiling)
            print(f"run {r + 1}: ingest {rate:,.0f} readings/s | COPY ceiling {ceiling:,.0f} rows/s | "
                  f"ratio {rate / ceiling:.2f}", flush=True)
        med, cmed = statistics.median(rates), statistics.median(ceilings)
        print(f"median of {args.runs}: ingest {med:,.0f} readings/s ({args.items} items/message, "
              f"{args.processes} process(es)) | COPY ceiling {cmed:,.0f} rows/s | ratio {med / cmed:.2f}")
    finally:
        if broker:
            broker.stop()
        if pg:
            pg.stop("immediate")


if __name__ == "__main__":
    asyncio.run(main())
