"""End-to-end alerting latency of the personnel rules: a card read's commit → rules worker → finding →
case → outbox → webhook, while the ingest carries ~20 000 readings/s and ~5 000 card reads/s.

    python -m bench.alerting.personnel [--seconds 30] [--rate 20000] [--card-rate 5000] [--probes 5]
        [--runs 3] [--kinds restricted_area,seal_breach] [--background present|past]
        [--group-window-s S] [--rules-clock-s S] [--profile]

The chain and the receiver are `bench.alerting.latency`'s (private embedded PostgreSQL with
track_commit_timestamp and a private broker unless DATABASE_URL / MQTT_URL are set; the real
`minewatch ingest`, `rules worker`, `alerting.cli worker` and `alerting.cli deliver` processes
with production settings). Each run, on a fresh database:

- the sample registry plus two probe mines in a probe county (149801): 149810000001 with a
  shaft (S0001) and a restricted area (A01, station S0002), and 149820000001 with a shaft and
  a working area (S0002) under an active shutdown order (`methane_repeat`, started an hour
  ago, 72 h), written by `rules.store.write_order` as the methane chain writes its orders;
  each probe mine has one card per probe;
- background, the sample registry's mines at `--rate` readings/s and `--card-rate` card
  reads/s (the simulator's own card reads follow its speed, ~11 000/s beside 20 000
  readings/s, so the card reads are published apart, by `bench.alerting.replay`):
  `--background present` (default) replays both, rendered by the simulator beforehand and
  restamped to the present as they go out; `--background past` runs the simulator live on the
  registry without its cards, accelerated from the past as `bench.alerting.latency` does, and
  replays the card reads at their simulated times. Neither is a province of mines reporting as
  it happens (that would be hundreds of mines): `present` compresses each mine's time (the
  personnel rules' 90-minute look-back holds every read of the run), `past` replays hours-old
  data that the rules worker's clock-driven passes judge against the present (every point
  looks silent, every card underground for hours: `offline` and `overtime` findings opened
  and withdrawn again);
- probes over MQTT, `--probes` per second of each kind, alternating: a fresh card's first read
  at the restricted area's station (`restricted_area`: a visit, level warning) and a fresh
  card's first read at the working area of the mine under the order (`seal_breach`: an entry
  while an order is active, level major);
- routing (`routing`): each probe mine's own receiver (level mine), its workforce channel
  (双报告, told of major hazards) and the probe county's regulator, all webhooks at the local
  receiver (bench/alerting/receiver.py) on paths /probe/mine, /probe/workforce, /probe/county;
  start levels are the sample routing's (both rules open at the county, so the mine and the
  regulator are told at once).

A probe's latency is its first webhook's arrival (receiver wall clock) − pg_xact_commit_timestamp
of its card read's row, so it covers the ingest's batch commit, the rules worker's claim,
evaluation and commit, the case worker's step, the outbox (and its group window), the
deliverer's claim and the HTTP POST. Per run: the background rates (readings and card reads
committed per second during probing), the dead letters (0 expected) and the load average; per
kind, p50 / p95 / p99 / max of the first webhook, p99 per receiver, and where the time went
(p50 / p99 of: commit → the start of the rules worker's transaction that wrote the finding;
→ the case opened; → the notification queued in the outbox; → arrival). Then the medians of
`--runs` per kind. Target: p99 <= 1 s.

Diagnostics, not production: `--group-window-s` sets MINEWATCH_ALERTING_GROUP_WINDOW_S of the
case worker (production: 60 s), `--rules-clock-s` MINEWATCH_RULES_CLOCK_S of the rules worker
(production: 5 s), `--rate 0` / `--card-rate 0` leave a background out, and `--profile` samples
pg_stat_activity while probing (`bench.alerting.dbsample`) and prints what the workers'
connections were doing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import yaml

from alerting.settings import sample_routing_path
from bench import bench_servers, scratch
from bench.alerting.dbsample import DbSampler
from bench.alerting.latency import Chain, await_subjects, chain, simulate
from bench.alerting.replay import without_cards
from bench.alerting.run import SECRET_ENV, start_receiver
from bench.rules.latency import pct, wait_for
from minewatch.settings import packaged
from minewatch.timeutil import to_ns
from rules import store
from rules.evaluate import OrderRow
from simulators.publish import MqttSink

PROBE_COUNTY = "149801"
RESTRICTED = "restricted_area"
SEAL = "seal_breach"
KINDS = (RESTRICTED, SEAL)
# kind -> (probe mine, prefix of its probe cards' codes)
PROBES: dict[str, tuple[str, str]] = {RESTRICTED: ("149810000001", "PR"), SEAL: ("149820000001", "PS")}
HOUR_NS = 3_600 * 1_000_000_000
ORDER_RULE, ORDER_PACK = "methane_repeat", "default"  # the default pack's methane count rule
RECEIVERS = ("mine", "county", "workforce")
SAMPLED = ("minewatch-rules", "minewatch-alerting", "minewatch-ingest")


def probe_card(kind: str, k: int) -> str:
    return f"{PROBES[kind][1]}{k:05d}"


def probe_station(kind: str) -> str:
    return f"{PROBES[kind][0]}S0002"


def probe_registry(path: Path, probes: int) -> None:
    """The sample registry plus the two probe mines (module docstring) in a county of their own,
    each with `probes` worker cards."""
    data = yaml.safe_load(packaged("sample_registry.yaml").read_text(encoding="utf-8"))
    first = data["mines"][0]
    data["regions"].append({"code": PROBE_COUNTY, "name": "探针县", "level": "county", "parent": first["city"]})
    for kind, (code, _) in PROBES.items():
        area: dict[str, Any] = {"code": "A01", "name": "限制区域" if kind == RESTRICTED else "工作面",
                                "stations": [f"{code}S0002"]}
        if kind == RESTRICTED:
            area["restricted"] = True
        data["mines"].append({
            "code": code, "name": f"人员探针矿{kind}", "kind": "coal", "county": PROBE_COUNTY, "city": first["city"],
            "province": first["province"], "shift_hours": 8,
            "stations": [{"code": f"{code}S0001", "location": "井口"}, {"code": f"{code}S0002", "location": area["name"]}],
            "areas": [{"code": "A00", "name": "井口", "stations": [f"{code}S0001"], "shaft": True}, area],
            "cards": [{"code": probe_card(kind, k)} for k in range(probes)]})
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def routing(url: str) -> str:
    """The sample routing's start levels; receivers for the probe mines and the probe county
    only (the sample mines' cases still open, noted `notification_unrouted`)."""
    sample = yaml.safe_load(sample_routing_path().read_text(encoding="utf-8"))

    def hook(rid: str, name: str, path: str) -> dict[str, Any]:
        return {"id": rid, "name": name, "webhook": {"url": f"{url}/probe/{path}", "secret_env": SECRET_ENV}}

    data = {
        "version": 1,
        "start_levels": sample["start_levels"],
        "mines": {code: {"receivers": [hook(f"{tag.lower()}-mine", "探针矿调度室", "mine")],
                         "workforce": [hook(f"{tag.lower()}-workforce", "探针矿职工安全监督员", "workforce")]}
                  for code, tag in PROBES.values()},
        "regions": {"county": {PROBE_COUNTY: [hook("probe-county", "探针县应急管理局", "county")]}},
    }
    return yaml.safe_dump(data, allow_unicode=True)


async def order_in_force(conn: asyncpg.Connection, mine: str) -> int:
    """A shutdown order of `mine`, started an hour ago, as the methane chain writes one."""
    mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", mine)
    start = to_ns(datetime.now(UTC)) - HOUR_NS
    async with conn.transaction():
        return await store.write_order(conn, mine_id, ORDER_PACK,
                                       OrderRow(ORDER_RULE, start, start + 72 * HOUR_NS, 1, (), ()), None)


_STAGES = """
SELECT c.code,
       extract(epoch FROM pg_xact_commit_timestamp(r.xmin))::float8 AS committed,
       extract(epoch FROM f.created_at)::float8 AS found,
       extract(epoch FROM k.opened_at)::float8 AS opened,
       (SELECT extract(epoch FROM min(n.created_at))::float8 FROM notification_members nm
          JOIN notifications n ON n.id = nm.notification_id
         WHERE nm.case_id = k.id AND n.state <> 'suppressed') AS queued
FROM card_reads r JOIN cards c ON c.id = r.card_id
LEFT JOIN findings f ON f.mine_id = c.mine_id AND f.subject = c.code AND f.rule = $2 AND f.state <> 'superseded'
LEFT JOIN case_findings cf ON cf.finding_id = f.id
LEFT JOIN cases k ON k.id = cf.case_id
WHERE c.code = ANY($1::text[])
"""
STAGE_NAMES = ("commit->rules txn", "->case opened", "->outbox", "->arrival")


async def committed(conn: asyncpg.Connection) -> tuple[int, int]:
    """(readings, card reads) stored so far."""
    row = await conn.fetchrow("SELECT (SELECT count(*) FROM readings) AS r, (SELECT count(*) FROM card_reads) AS c")
    assert row is not None
    return int(row["r"]), int(row["c"])


async def background(ch: Chain, mqtt: str, work: Path, args: argparse.Namespace) -> None:
    """The readings of the sample registry at `--rate` and its crews' card reads at `--card-rate`:
    both `bench.alerting.replay` restamped to the present (`--background present`), or the
    simulator live and accelerated from the past as `bench.alerting.latency` runs it, with the
    card reads replayed at their simulated times (`--background past`)."""
    # Long enough to cover settling, probing and the wait for the last probes' webhooks.
    seconds = str(args.seconds + 30)
    present = ["--present"] if args.background == "present" else []
    started = []
    if args.background == "present" and args.rate > 0:
        started.append(("readings", ch.spawn("readings", [
            "-m", "bench.alerting.replay", "--mqtt-url", mqtt, "--topic-prefix", ch.prefix, "--family", "readings",
            "--rate", str(args.rate), "--seconds", seconds, *present])))
    if args.card_rate > 0:
        started.append(("cards", ch.spawn("cards", [
            "-m", "bench.alerting.replay", "--mqtt-url", mqtt, "--topic-prefix", ch.prefix, "--family", "cards",
            "--rate", str(args.card_rate), "--seconds", seconds, *present])))
    for name, proc in started:
        await wait_for(ch.logs[name], "READY", proc)
    if args.background == "past" and args.rate > 0:
        readings = work / "sample-without-cards.yaml"
        without_cards(packaged("sample_registry.yaml"), readings)
        simulate(ch, readings, mqtt, rate=args.rate, seconds=args.seconds)


async def send_probes(ch: Chain, mqtt: str, n: int, args: argparse.Namespace) -> None:
    """`n` probe card reads of each kind, `--probes` per second, each stamped with the time it is sent."""
    sink = MqttSink(mqtt, threaded=True)
    sink.connect()
    enc = msgspec.json.Encoder()
    for k in range(n):
        for kind in args.kinds:
            sink.send(f"{ch.prefix}mines/{PROBES[kind][0]}/personnel", enc.encode(
                [{"card": probe_card(kind, k), "ts": int(time.time() * 1000), "station": probe_station(kind)}]))
        await asyncio.sleep(1 / args.probes)
    sink.close()


async def arrivals(hook_url: str, wanted: dict[str, list[str]], conn: asyncpg.Connection, *, wait_s: float,
                   where: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """First arrival per probe card at any receiver, and per receiver (the workforce channel is
    told of major hazards only: seal breaches)."""
    codes = [c for cs in wanted.values() for c in cs]
    first = await await_subjects(hook_url, codes, conn, wait_s=wait_s, where=where)
    per: dict[str, dict[str, float]] = {}
    for name in RECEIVERS:
        told = [c for kind, cs in wanted.items() if name != "workforce" or kind == SEAL for c in cs]
        per[name] = await await_subjects(hook_url, told, conn, wait_s=wait_s, where=where,
                                         path=f"/subjects/{name}") if told else {}
    return first, per


async def latencies(conn: asyncpg.Connection, kind: str, codes: list[str], first: dict[str, float],
                    per: dict[str, dict[str, float]]) -> dict[str, Any]:
    """One kind's latencies (sorted), per receiver, and per stage (`STAGE_NAMES`)."""
    rows = await conn.fetch(_STAGES, codes, kind)
    if len(rows) != len(codes):
        raise RuntimeError(f"{kind}: {len(rows)} rows for {len(codes)} probe card reads (each read once, one case)")
    marks = [(x["committed"], x["found"], x["opened"], x["queued"], first[x["code"]])
             for x in rows if None not in (x["found"], x["opened"], x["queued"])]
    stages = [[b - a for a, b in itertools.pairwise(m)] for m in marks]
    return {
        "lat": sorted(first[x["code"]] - x["committed"] for x in rows),
        "receivers": {name: sorted(per[name][x["code"]] - x["committed"] for x in rows)
                      for name in RECEIVERS if all(x["code"] in per[name] for x in rows)},
        "stages": [sorted(s[i] for s in stages) for i in range(len(STAGE_NAMES))] if stages else [],
    }


async def one_run(server: str, mqtt: str, hook_url: str, work: Path, args: argparse.Namespace,
                  r: int) -> dict[str, Any]:
    n = int(args.seconds * args.probes) + 1
    registry = work / "registry.yaml"
    probe_registry(registry, n)
    routes = work / "routing.yaml"
    routes.write_text(routing(hook_url), encoding="utf-8")
    env_for: dict[str, dict[str, str]] = {}
    if args.group_window_s is not None:
        env_for["cases"] = {"MINEWATCH_ALERTING_GROUP_WINDOW_S": str(args.group_window_s)}
    if args.rules_clock_s is not None:
        env_for["rules"] = {"MINEWATCH_RULES_CLOCK_S": str(args.rules_clock_s)}
    async with chain(server, mqtt, registry, routes, work, r, tag="plat", env_for=env_for) as ch:
        conn = await asyncpg.connect(ch.dsn)
        try:
            await order_in_force(conn, PROBES[SEAL][0])
            await background(ch, mqtt, work, args)
            await asyncio.sleep(5)  # let both streams settle at their rates before probing
            sampler = DbSampler(ch.dsn, SAMPLED) if args.profile else None
            async with sampler or contextlib.nullcontext():
                before, t0 = await committed(conn), time.monotonic()
                await send_probes(ch, mqtt, n, args)
                after, took = await committed(conn), time.monotonic() - t0
                load = os.getloadavg()[0]
            wanted = {kind: [probe_card(kind, k) for k in range(n)] for kind in args.kinds}
            first, per = await arrivals(hook_url, wanted, conn, where=f"{work}/*-{r}.log",
                                        wait_s=90 + (60 if args.group_window_s is None else args.group_window_s))
            out: dict[str, Any] = {"readings/s": (after[0] - before[0]) / took,
                                   "card reads/s": (after[1] - before[1]) / took, "load": load,
                                   "dead letters": await conn.fetchval("SELECT count(*) FROM dead_letters"),
                                   "profile": sampler.report() if sampler else None}
            for kind in args.kinds:
                out[kind] = await latencies(conn, kind, wanted[kind], first, per)
            return out
        finally:
            await conn.close()


def ms(v: float) -> str:
    return f"{v * 1000:,.0f}"


def report_run(r: int, res: dict[str, Any], kinds: tuple[str, ...]) -> None:
    print(f"run {r + 1}: background committed {res['readings/s']:,.0f} readings/s, "
          f"{res['card reads/s']:,.0f} card reads/s ({res['dead letters']} dead letters); load average "
          f"{res['load']:.1f}", flush=True)
    for kind in kinds:
        lat = res[kind]["lat"]
        recv = ", ".join(f"{name} {ms(pct(v, 0.99))}" for name, v in res[kind]["receivers"].items())
        print(f"  {kind:<16} {len(lat)} probes, card read commit -> first webhook p50 {ms(pct(lat, 0.5))} ms, "
              f"p95 {ms(pct(lat, 0.95))} ms, p99 {ms(pct(lat, 0.99))} ms, max {ms(lat[-1])} ms | p99 per receiver: "
              f"{recv} ms", flush=True)
        if res[kind]["stages"]:
            parts = [f"{name} {ms(pct(s, 0.5))}/{ms(pct(s, 0.99))}"
                     for name, s in zip(STAGE_NAMES, res[kind]["stages"], strict=True)]
            print(f"  {'':<16} stages p50/p99 ms: " + ", ".join(parts), flush=True)
    if res["profile"]:
        print(res["profile"], flush=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30, help="probing time per run")
    ap.add_argument("--rate", type=float, default=20_000, help="background readings/s through MQTT")
    ap.add_argument("--card-rate", type=float, default=5_000, help="background card reads/s through MQTT")
    ap.add_argument("--probes", type=float, default=5, help="probe card reads per second, of each kind")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kinds", default=",".join(KINDS), help="probe kinds, comma-separated: " + ", ".join(KINDS))
    ap.add_argument("--group-window-s", type=float, default=None,
                    help="MINEWATCH_ALERTING_GROUP_WINDOW_S of the case worker (default: production's, 60 s)")
    ap.add_argument("--background", choices=("present", "past"), default="present",
                    help="present: the sample registry's data restamped to the present as it is sent; past: the "
                         "simulator live, accelerated from the past, as bench.alerting.latency runs it")
    ap.add_argument("--rules-clock-s", type=float, default=None,
                    help="MINEWATCH_RULES_CLOCK_S of the rules worker (default: production's)")
    ap.add_argument("--profile", action="store_true",
                    help="sample pg_stat_activity while probing and print what each worker's connections did")
    args = ap.parse_args()
    args.kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown or not args.kinds:
        ap.error(f"--kinds: {', '.join(unknown) or 'none given'}; allowed: {', '.join(KINDS)}")
    work = scratch("minewatch-bench-alerting-personnel-")
    receiver, hook_url = start_receiver()
    try:
        async with bench_servers(work, commit_timestamps=True) as (server, mqtt):
            results = []
            for r in range(args.runs):
                async with httpx.AsyncClient(trust_env=False) as client:
                    await client.get(f"{hook_url}/reset")
                results.append(await one_run(server, mqtt, hook_url, work, args, r))
                report_run(r, results[-1], args.kinds)
            rates = [statistics.median(x[k] for x in results) for k in ("readings/s", "card reads/s")]
            print(f"median of {args.runs} (background {rates[0]:,.0f} readings/s, {rates[1]:,.0f} card reads/s"
                  f"{'' if args.group_window_s is None else f', group window {args.group_window_s:g} s'}):")
            for kind in args.kinds:
                q = {p: statistics.median(pct(x[kind]["lat"], p) for x in results) for p in (0.5, 0.95, 0.99)}
                verdict = "holds" if q[0.99] <= 1.0 else "MISSED"
                print(f"  {kind:<16} p50 {ms(q[0.5])} ms, p95 {ms(q[0.95])} ms, p99 {ms(q[0.99])} ms "
                      f"(target p99 <= 1000 ms: {verdict})")
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    asyncio.run(main())
