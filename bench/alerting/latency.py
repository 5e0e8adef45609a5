"""End-to-end alerting latency: a reading's commit → rules worker → finding → case → outbox → webhook,
while the ingest carries ~20 000 readings/s of background load.

    python -m bench.alerting.latency [--seconds 30] [--rate 20000] [--probes 5] [--runs 3]

Private embedded PostgreSQL (track_commit_timestamp on) and broker unless DATABASE_URL /
MQTT_URL are set (the server then needs track_commit_timestamp = on). Each run: a fresh
database with the sample registry plus a probe mine of faceless methane points (one
mine per probe: see `probe_registry`); the real processes `minewatch ingest`, `rules worker`, `alerting.cli
worker` and `alerting.cli deliver` (production settings: LISTEN, SystemClock, 4 delivery
lanes); the simulator in live mode publishing the sample registry at `--rate` readings/s;
and `--probes` per second probe messages over MQTT, each an exceedance of a fresh probe point
(2.0 %CH4: power-off level, a red case sent at once; 0.3 half a second later). The probe
mine's only receiver is a webhook at the local receiver process (bench/alerting/receiver.py),
which records when each finding subject first arrives. A probe's latency is
arrival (receiver wall clock) − pg_xact_commit_timestamp(the 2.0 reading) — the same
machine's clock — so it covers the ingest's batch commit, the rules worker's claim,
evaluation and commit, the case worker's step, the outbox, the deliverer's claim and the
HTTP POST. The background rate printed is readings committed per second during probing.
Target: p99 <= 1 s.

The simulator publishes the sample mines' card reads too, at the rate its speed makes
(~11 000/s beside 20 000 readings/s); `bench.alerting.personnel` measures the personnel
probes with the card reads at a rate of their own. `Chain`, `simulate` and `await_subjects`
are the pieces both use.
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
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import msgspec
import yaml

from bench import bench_servers, scratch
from bench.alerting.run import SECRET, SECRET_ENV, start_receiver
from bench.rules.latency import ROOT, pct, spawn, wait_for
from minewatch.registry import load_registry
from minewatch.settings import packaged
from simulators.publish import MqttSink

PROBE_PREFIX = "1498000"  # probe mines 149800000000, 149800000001, ...


def probe_mine(k: int) -> str:
    return f"{PROBE_PREFIX}{k:05d}"


def probe_point(k: int) -> str:
    return f"{probe_mine(k)}_01MN0001_P0001"


def probe_registry(path: Path, probes: int) -> None:
    """The sample registry plus one probe mine per probe, each with one faceless T0 methane
    point: two probes on one mine would be two methane events within 7 days, a shutdown order,
    and the order rightly mutes the methane alarms after it (inhibition), which is not what
    this measures."""
    data = yaml.safe_load(packaged("sample_registry.yaml").read_text(encoding="utf-8"))
    first = data["mines"][0]
    for k in range(probes):
        code = probe_mine(k)
        data["mines"].append({
            "code": code, "name": f"延迟探针矿{k}", "kind": "coal", "county": first["county"], "city": first["city"],
            "province": first["province"], "stations": [{"code": f"{code}S0001"}],
            "points": [{"code": probe_point(k), "station": f"{code}S0001", "sensor_type": "0001",
                        "location_type": "T0", "unit": "%CH4", "range_low": 0, "range_high": 4}]})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def routing(url: str, probes: int) -> str:
    """Only the probe mines have a receiver; the sample mines' own findings reach nobody (their
    cases still open, with a `notification_unrouted` note)."""
    mines = "".join(f"""
  "{probe_mine(k)}":
    receivers:
      - {{id: probe{k}, name: 探针, webhook: {{url: "{url}/probe", secret_env: {SECRET_ENV}}}}}""" for k in range(probes))
    return f"version: 1\nmines:{mines}\n"


@dataclass
class Chain:
    """One run's database and the real processes of the alerting chain on it."""

    dsn: str
    env: dict[str, str]
    prefix: str
    work: Path
    run: int
    logs: dict[str, Path] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a process (`python args...`) with the chain's environment (plus `env`), logging to
        `<name>-<run>.log`; stopped on the chain's exit, the latest first."""
        self.logs[name] = self.work / f"{name}-{self.run}.log"
        proc = spawn(args, {**self.env, **(env or {})}, self.logs[name])
        self.procs.append(proc)
        return proc


@asynccontextmanager
async def chain(server: str, mqtt: str, registry: Path, routes: Path, work: Path, r: int, *,
                tag: str, env_for: Mapping[str, dict[str, str]] | None = None) -> AsyncIterator[Chain]:
    """A fresh database with `registry` loaded (`minewatch registry load`), and the real `minewatch
    ingest`, `rules worker`, `alerting.cli worker` and `alerting.cli deliver` processes on it with
    `routes`, each started and seen ready; every process is stopped on exit, the latest first.
    `env_for` adds settings to one process's environment: {"rules": {...}} (ingest, rules, cases,
    deliver)."""
    sys.path.insert(0, str(ROOT))
    from bench import bench_db
    from launcher.embedded import stop_process

    dsn = await bench_db(server, registry=False)
    prefix = f"{tag}{uuid.uuid4().hex[:8]}/"
    env = {"DATABASE_URL": dsn, "MQTT_URL": mqtt, "MINEWATCH_REGISTRY_PATH": str(registry),
           "MINEWATCH_ALERTING_ROUTING_PATH": str(routes), SECRET_ENV: SECRET}
    loaded = subprocess.run([sys.executable, "-m", "launcher", "registry", "load", str(registry)],
                            env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, check=False)
    if loaded.returncode:
        raise RuntimeError(loaded.stderr)
    ch = Chain(dsn, env, prefix, work, r)
    try:
        extra = env_for or {}
        ingest = ch.spawn("ingest", ["-m", "launcher", "ingest", "--topic-prefix", prefix,
                                     "--client-id", f"{tag}-{prefix[:-1]}"], extra.get("ingest"))
        rules = ch.spawn("rules", ["-m", "rules.cli", "rules", "worker", "--lang", "en"], extra.get("rules"))
        alerting = [ch.spawn(name, ["-m", "alerting.cli", cmd], extra.get(name))
                    for name, cmd in (("cases", "worker"), ("deliver", "deliver"))]
        await wait_for(ch.logs["ingest"], "connected to", ingest)
        await wait_for(ch.logs["rules"], "rules worker: started", rules)
        await asyncio.sleep(1.0)
        for p, name in zip(alerting, ("cases", "deliver"), strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"alerting {name} exited: {ch.logs[name].read_text()[-2000:]}")
        yield ch
    finally:
        for p in reversed(ch.procs):
            stop_process(p)


def simulate(ch: Chain, registry: Path, mqtt: str, *, rate: float, seconds: float) -> subprocess.Popen[bytes]:
    """The simulator live on `registry` at `rate` readings/s (accelerated from the past so that its
    simulated time reaches now after `seconds` + 15 s), publishing on the chain's topic prefix."""
    reg, _ = load_registry(registry)
    per_sim_s = sum(1 / p.expected_period_s for _, p in reg.iter_points())
    speed = rate / per_sim_s
    start = datetime.now(UTC) - timedelta(seconds=(seconds + 15) * speed)
    return ch.spawn("sim", ["-m", "simulators", "live", "--registry", str(registry), "--mqtt-url", mqtt,
                            "--topic-prefix", ch.prefix, "--start", start.isoformat(), "--speed", f"{speed:.1f}",
                            "--quiet", "--time-format", "epoch_ms"])


async def await_subjects(hook_url: str, wanted: Collection[str], conn: asyncpg.Connection, *, wait_s: float,
                         where: str, path: str = "/subjects") -> dict[str, float]:
    """The receiver's first arrival time per subject (`path`: every probe path, or one receiver's)
    once every `wanted` subject has arrived; RuntimeError with the pipeline's state after `wait_s`."""
    async with httpx.AsyncClient(trust_env=False) as client:
        deadline = time.monotonic() + wait_s
        while True:
            arrived: dict[str, float] = (await client.get(f"{hook_url}{path}")).json()
            missing = [s for s in wanted if s not in arrived]
            if not missing:
                return arrived
            if time.monotonic() > deadline:
                state = [tuple(x) for x in await conn.fetch(
                    "SELECT 'findings', count(*) FILTER (WHERE case_synced_at IS NULL), count(*) FROM findings "
                    "UNION ALL SELECT 'cases', count(*) FILTER (WHERE state = 'open'), count(*) FROM cases "
                    "UNION ALL SELECT 'pending effects', count(*) FILTER (WHERE effects_done_at IS NULL), "
                    "count(*) FROM case_history "
                    "UNION ALL SELECT 'outbox ' || state, count(*), count(*) FROM notifications GROUP BY state")]
                raise RuntimeError(f"{len(missing)} of {len(wanted)} probe webhooks missing (e.g. {missing[:3]}); "
                                   f"{state}; see {where}")
            await asyncio.sleep(0.2)


async def one_run(server: str, mqtt: str, hook_url: str, work: Path, args: argparse.Namespace,
                  r: int) -> tuple[list[float], float]:
    n_probes = int(args.seconds * args.probes) + 1
    registry = work / "registry.yaml"
    probe_registry(registry, n_probes)
    routes = work / "routing.yaml"
    routes.write_text(routing(hook_url, n_probes), encoding="utf-8")
    async with chain(server, mqtt, registry, routes, work, r, tag="alat") as ch:
        simulate(ch, packaged("sample_registry.yaml"), mqtt, rate=args.rate, seconds=args.seconds)
        await asyncio.sleep(5)  # let the stream settle at its rate before probing
        conn = await asyncpg.connect(ch.dsn)
        before, t0 = await conn.fetchval("SELECT count(*) FROM readings"), time.monotonic()
        sink = MqttSink(mqtt, threaded=True)
        sink.connect()
        enc = msgspec.json.Encoder()
        codes = [probe_point(k) for k in range(n_probes)]
        for k, code in enumerate(codes):
            now_ms = int(time.time() * 1000)
            sink.send(f"{ch.prefix}mines/{probe_mine(k)}/safety", enc.encode([
                {"point": code, "ts": now_ms, "value": 2.0, "status": 0},
                {"point": code, "ts": now_ms + 500, "value": 0.3, "status": 0}]))
            await asyncio.sleep(1 / args.probes)
        rate = (await conn.fetchval("SELECT count(*) FROM readings") - before) / (time.monotonic() - t0)
        sink.close()
        arrived = await await_subjects(hook_url, codes, conn, wait_s=90, where=f"{work}/*-{r}.log")
        rows = await conn.fetch(
            "SELECT p.code, extract(epoch FROM pg_xact_commit_timestamp(r.xmin))::float8 AS committed "
            "FROM readings r JOIN points p ON p.id = r.point_id WHERE p.code = ANY($1::text[]) AND r.value = 2.0",
            codes)
        await conn.close()
        return sorted(arrived[x["code"]] - x["committed"] for x in rows), rate


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30, help="probing time per run")
    ap.add_argument("--rate", type=float, default=20_000, help="background readings/s through MQTT")
    ap.add_argument("--probes", type=float, default=5, help="probe exceedances per second")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = scratch("minewatch-bench-alerting-latency-")
    receiver, hook_url = start_receiver()
    try:
        async with bench_servers(work, commit_timestamps=True) as (server, mqtt):
            p50s, p99s, rates = [], [], []
            for r in range(args.runs):
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.get(f"{hook_url}/reset")
                lat, rate = await one_run(server, mqtt, hook_url, work, args, r)
                p50s.append(pct(lat, 0.5))
                p99s.append(pct(lat, 0.99))
                rates.append(rate)
                print(f"run {r + 1}: {len(lat)} probes, reading commit -> first webhook p50 {p50s[-1] * 1000:.0f} ms, "
                      f"p99 {p99s[-1] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms | background ingest "
                      f"{rate:,.0f} readings/s", flush=True)
            print(f"median of {args.runs}: p50 {statistics.median(p50s) * 1000:.0f} ms, p99 "
                  f"{statistics.median(p99s) * 1000:.0f} ms (target <= 1000 ms) at "
                  f"{statistics.median(rates):,.0f} readings/s background ingest")
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    asyncio.run(main())
