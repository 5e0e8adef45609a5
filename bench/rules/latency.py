"""Streaming latency: from a reading's commit to its finding's commit, while the ingest carries ~20 000 readings/s.

    python -m bench.rules.latency [--seconds 40] [--rate 20000] [--probes 5] [--runs 3]

Private embedded PostgreSQL (with track_commit_timestamp on) and broker unless
DATABASE_URL / MQTT_URL are set (the server then needs track_commit_timestamp = on).
Each run: a fresh database with the sample registry plus a probe mine of faceless methane
points; the real `minewatch ingest` and `rules worker` processes; the simulator in live
mode publishing the sample registry at `--rate` readings/s (accelerated from the past);
and `--probes` per second probe messages, each an exceedance of a fresh probe point (2.0
%CH4, then 0.3 half a second later). A probe's latency is
pg_xact_commit_timestamp(finding) − pg_xact_commit_timestamp(reading): both commit times by
the database clock, so the figure includes the ingest's batch commit, the worker's claim,
evaluation and commit, and nothing of the benchmark's own polling. Prints p50 / p99 / max
per run and the medians of `--runs`; the ingest rate is readings committed per second
during the probing. Target: p99 <= 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import yaml

from bench import bench_servers, scratch
from minewatch.registry import load_registry
from minewatch.settings import packaged
from simulators.publish import MqttSink

ROOT = Path(__file__).resolve().parents[2]
PROBE_MINE = "149800000001"


def probe_registry(path: Path, probes: int) -> None:
    """The sample registry plus a probe mine with `probes` faceless methane points."""
    data = yaml.safe_load(packaged("sample_registry.yaml").read_text(encoding="utf-8"))
    first = data["mines"][0]
    data["mines"].append({
        "code": PROBE_MINE, "name": "延迟探针矿", "kind": "coal", "county": first["county"], "city": first["city"],
        "province": first["province"], "stations": [{"code": f"{PROBE_MINE}S0001"}],
        "points": [{"code": f"{PROBE_MINE}_01MN0001_P{k:04d}", "station": f"{PROBE_MINE}S0001", "sensor_type": "0001",
                    "location_type": "T0", "unit": "%CH4", "range_low": 0, "range_high": 4} for k in range(probes)]})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, *args], env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def tail(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while text not in tail(log):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: {tail(log)[-2000:] or 'no output'}")
        await asyncio.sleep(0.05)


async def one_run(server: str, url: str, work: Path, args: argparse.Namespace, r: int) -> tuple[list[float], float]:
    sys.path.insert(0, str(ROOT))
    from bench import bench_db
    from launcher.embedded import stop_process

    n_probes = int(args.seconds * args.probes) + 1
    registry = work / "registry.yaml"
    probe_registry(registry, n_probes)
    dsn = await bench_db(server, registry=False)
    reg, _ = load_registry(registry)
    prefix = f"lat{uuid.uuid4().hex[:8]}/"
    env = {"DATABASE_URL": dsn, "MQTT_URL": url, "MINEWATCH_REGISTRY_PATH": str(registry)}
    loaded = subprocess.run([sys.executable, "-m", "launcher", "registry", "load", str(registry)],
                            env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, check=False)
    if loaded.returncode:
        raise RuntimeError(loaded.stderr)
    logs = {k: work / f"{k}-{r}.log" for k in ("ingest", "worker", "sim")}
    ingest = spawn(["-m", "launcher", "ingest", "--topic-prefix", prefix, "--client-id", f"lat-{prefix[:-1]}"],
                   env, logs["ingest"])
    worker = spawn(["-m", "rules.cli", "rules", "worker", "--lang", "en"], env, logs["worker"])
    procs = [ingest, worker]
    try:
        await wait_for(logs["ingest"], "connected to", ingest)
        await wait_for(logs["worker"], "rules worker: started", worker)
        await asyncio.sleep(0.5)
        per_sim_s = sum(1 / p.expected_period_s for m, p in reg.iter_points() if m.code != PROBE_MINE)
        speed = args.rate / per_sim_s
        start = datetime.now(UTC) - timedelta(seconds=(args.seconds + 15) * speed)
        sim = spawn(["-m", "simulators", "live", "--registry", str(packaged("sample_registry.yaml")), "--mqtt-url", url,
                     "--topic-prefix", prefix, "--start", start.isoformat(), "--speed", f"{speed:.1f}", "--quiet",
                     "--time-format", "epoch_ms"], env, logs["sim"])
        procs.append(sim)
        await asyncio.sleep(5)  # let the stream settle at its rate before probing
        conn = await asyncpg.connect(dsn)
        before, t0 = await conn.fetchval("SELECT count(*) FROM readings"), time.monotonic()
        sink = MqttSink(url, threaded=True)
        sink.connect()
        enc = msgspec.json.Encoder()
        for k in range(n_probes):
            now_ms = int(time.time() * 1000)
            code = f"{PROBE_MINE}_01MN0001_P{k:04d}"
            sink.send(f"{prefix}mines/{PROBE_MINE}/safety", enc.encode([
                {"point": code, "ts": now_ms, "value": 2.0, "status": 0},
                {"point": code, "ts": now_ms + 500, "value": 0.3, "status": 0}]))
            await asyncio.sleep(1 / args.probes)
        rate = (await conn.fetchval("SELECT count(*) FROM readings") - before) / (time.monotonic() - t0)
        sink.close()
        deadline = time.monotonic() + 60
        while await conn.fetchval(
                "SELECT count(*) FROM findings f JOIN mines m ON m.id = f.mine_id WHERE m.code = $1 "
                "AND f.rule = 'methane_exceedance'", PROBE_MINE) < n_probes:
            if time.monotonic() > deadline:
                raise RuntimeError("probe findings missing")
            await asyncio.sleep(0.2)
        rows = await conn.fetch(
            "SELECT extract(epoch FROM pg_xact_commit_timestamp(f.xmin) - pg_xact_commit_timestamp(r.xmin)) AS s "
            "FROM findings f JOIN mines m ON m.id = f.mine_id JOIN points p ON p.code = f.subject "
            "JOIN readings r ON r.point_id = p.id AND r.ts = f.start_ts "
            "WHERE m.code = $1 AND f.rule = 'methane_exceedance'", PROBE_MINE)
        await conn.close()
        return sorted(float(x["s"]) for x in rows), rate
    finally:
        for p in reversed(procs):
            stop_process(p)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40, help="probing time per run")
    ap.add_argument("--rate", type=float, default=20_000, help="background readings/s through MQTT")
    ap.add_argument("--probes", type=float, default=5, help="probe exceedances per second")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = scratch("minewatch-bench-latency-")
    async with bench_servers(work, commit_timestamps=True) as (server, url):
        p50s, p99s, rates = [], [], []
        for r in range(args.runs):
            lat, rate = await one_run(server, url, work, args, r)
            p50s.append(pct(lat, 0.5))
            p99s.append(pct(lat, 0.99))
            rates.append(rate)
            print(f"run {r + 1}: {len(lat)} probes, latency p50 {p50s[-1] * 1000:.0f} ms, p99 {p99s[-1] * 1000:.0f} ms, "
                  f"max {lat[-1] * 1000:.0f} ms | ingest {rate:,.0f} readings/s", flush=True)
        print(f"median of {args.runs}: p50 {statistics.median(p50s) * 1000:.0f} ms, p99 "
              f"{statistics.median(p99s) * 1000:.0f} ms (target <= 500 ms) at {statistics.median(rates):,.0f} readings/s")


if __name__ == "__main__":
    asyncio.run(main())
