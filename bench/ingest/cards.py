"""Card-read ingest throughput (simulated crews → MQTT → `minewatch ingest` → card_reads) beside the COPY ceiling.

    python -m bench.ingest.cards [--reads 6000000] [--mines 2] [--crew 1500] [--items 100] [--runs 3] [--live]

Issue 13's figure: card reads (`mines/{mine}/personnel`, contract.md) committed per
second by the real `minewatch ingest` process, next to the machine's own ceiling
measured in the same run: asyncpg COPY of pre-built rows, 50 000-row batches, into a
bare table of card_reads' columns (card_id, ts, station_id, mine_id) on the same server.
Also printed: the same COPY into the real `card_reads` table (its partitions or chunks,
primary key and (mine_id, ts) index), which bounds the ingest from above.

The rate counts the whole job: from the moment the ingest's MQTT connection is up (it
logs "connected to" on CONNACK, before the broker hands it the first queued message)
to the commit of the last card read. For comparison with bench/ingest's readings
figure, the first-commit-to-last-commit rate is printed too.

Uses DATABASE_URL / MQTT_URL when set, else a private embedded PostgreSQL and a private
Mosquitto with the project's lossless settings (the harness of `python -m bench.ingest`,
reused: same publisher, same ingest start and stop).

Data: `--mines` mines of the bench's personnel registry (`personnel_registry`: a shaft
area, 18 working areas, a sealed area; 15 leaders, 3 crews of `--crew` workers, 10
visitors), whose reads come from the simulator's personnel model (simulators/personnel.py:
three 8-hour shifts a day, every card read about every 60 s while underground, entries
and exits at the shaft) with full attendance, so `--crew` cards (+ a leader) are
underground at any time. Payloads are pre-rendered (epoch-ms times, `--items` reads per
message) so the generator's CPU is not in the figure.

Default mode, *drain*: the ingest connects once (creating its persistent session) and
stops; the whole data set is published into the broker, which queues it; the ingest
starts again and works through the backlog (a mine's link back after an outage, or a
province-wide back-fill). --live: the publisher runs while the ingest drains (publisher,
broker and ingest share the two cores; the figure is then from connect to last commit
with the publisher's CPU in it).
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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec

from bench import scratch
from bench.ingest.__main__ import PUBLISHER, ROOT, stop_ingests
from launcher.embedded import EmbeddedBroker, EmbeddedPostgres
from minewatch.registry import Registry
from simulators.model import DEFAULT_CHUNK_MS
from simulators.params import ModelParams
from simulators.personnel import CardBatch, PersonnelModel, generate_cards
from simulators.render import CardRead
from simulators.timebase import as_ms, windows

LEADERS = 15
VISITORS = 10
WORK_AREAS = 18
AREA_APPROVED = 200  # the simulator fills an area to 45 % of this: 18 x 90 = 1 620 >= a crew of 1 500
COLUMNS = ["card_id", "ts", "station_id", "mine_id"]


def mine_code(i: int) -> str:
    return f"1498{i:08d}"


def personnel_registry(mines: int, crew: int = 1500, workers: int | None = None) -> Registry:
    """`mines` mines, each with 20 stations (one per area), a shaft area A00, working areas
    A01-A18 and a sealed (restricted) area A19; 15 leaders, `workers` (default 3 x `crew`)
    workers, 10 visitors."""
    workers = 3 * crew if workers is None else workers
    out = []
    for i in range(mines):
        code = mine_code(i)
        stations = [{"code": f"{code}S{s:04d}", "location": f"station {s}"} for s in range(1, WORK_AREAS + 3)]
        areas = [{"code": "A00", "name": "shaft", "stations": [stations[0]["code"]], "shaft": True}]
        areas += [{"code": f"A{a:02d}", "name": f"area {a}", "stations": [stations[a]["code"]],
                   "approved": AREA_APPROVED} for a in range(1, WORK_AREAS + 1)]
        areas += [{"code": f"A{WORK_AREAS + 1:02d}", "name": "sealed goaf", "approved": 4, "restricted": True,
                   "stations": [stations[WORK_AREAS + 1]["code"]]}]
        cards = [{"code": f"K{i:04d}L{c:04d}", "role": "leader"} for c in range(LEADERS)]
        cards += [{"code": f"K{i:04d}W{c:05d}", "role": "worker"} for c in range(workers)]
        cards += [{"code": f"K{i:04d}V{c:03d}", "role": "visitor"} for c in range(VISITORS)]
        out.append({"code": code, "name": f"bench personnel mine {i}", "county": "149801", "city": "149800",
                    "province": "140000", "stations": stations, "areas": areas, "cards": cards,
                    "approved_underground": 2 * max(crew, workers // 3)})
    return Registry.model_validate({
        "regions": [{"code": "149800", "name": "bench city", "level": "city", "parent": "140000"},
                    {"code": "149801", "name": "bench county", "level": "county", "parent": "149800"}],
        "mines": out})


def simulate(reg: Registry, start: datetime, end: datetime, seed: int = 42,
             crews: tuple[int, int, int] | None = None) -> Iterator[CardBatch]:
    """The simulator's card reads of every mine in [start, end), window by window (CardBatch),
    with full attendance. The simulator splits a mine's workers into three equal crews (night,
    day, evening shifts, local time); `crews` sizes them instead (their sum = the workers)."""
    if crews is None:
        yield from generate_cards(reg, seed, start, end, params=ModelParams(attendance=1.0))
        return
    s, e = as_ms(start), as_ms(end)
    models = [PersonnelModel(m, seed, s, e, params=ModelParams(attendance=1.0)) for m in reg.mines]
    for model in models:
        ranked = [c for crew in model.crews for c in crew]  # each crew shuffled by the seed
        if len(ranked) != sum(crews):
            raise ValueError(f"crews {crews} do not add up to the mine's {len(ranked)} workers")
        model.crews = [ranked[:crews[0]], ranked[crews[0]:crews[0] + crews[1]], ranked[crews[0] + crews[1]:]]
    for a, b in windows(s, e, DEFAULT_CHUNK_MS):
        for model in models:
            batch = model.window(a, b)
            if len(batch):
                yield batch


def render(path: Path, reg: Registry, reads: int, items: int, prefix: str) -> int:
    """Write about `reads` card reads (whole windows) as length-prefixed (topic, payload) records."""
    per_day = len(reg.mines) * 1440 * 1.03 * (len(reg.mines[0].cards) - LEADERS - VISITORS) / 3
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=reads / per_day * 1.05)
    enc = msgspec.json.Encoder()
    n = 0
    with path.open("wb") as out:
        for b in simulate(reg, start, end):
            codes, stations = b.cards, b.stations
            rows = [CardRead(codes[c], t, stations[s])
                    for c, t, s in zip(b.card.tolist(), b.ts_ms.tolist(), b.station.tolist(), strict=True)]
            topic = f"{prefix}mines/{b.mine}/personnel".encode()
            for i in range(0, len(rows), items):
                chunk = rows[i:i + items]
                payload = enc.encode(chunk if items > 1 else chunk[0])
                out.write(len(topic).to_bytes(2, "big") + topic + len(payload).to_bytes(4, "big") + payload)
                n += len(chunk)
            if n >= reads:
                break
    return n


async def fresh_db(server_dsn: str, reg: Registry, narrow_key: bool = False) -> str:
    """A fresh migrated database (the tests' own set-up) with the personnel registry loaded;
    `narrow_key`: card_reads' primary key as before migration 0091, (card_id, ts) without the
    INCLUDE (station_id), to measure what that migration costs the ingest."""
    from minewatch.db.registry_store import sync_registry
    from minewatch.db.scratch import create_db
    now = datetime.now(UTC)
    dsn = await create_db(server_dsn, registry=None, now=now, prefix="mw_bench")
    conn = await asyncpg.connect(dsn)
    try:
        await sync_registry(conn, reg, checksum="bench-cards", source="bench", now=now)
        if narrow_key:
            await conn.execute("ALTER TABLE card_reads DROP CONSTRAINT card_reads_pkey, ADD PRIMARY KEY (card_id, ts)")
    finally:
        await conn.close()
    return dsn


async def copy_ceiling(dsn: str, rows: int = 2_000_000) -> float:
    """Raw asyncpg COPY into a bare table of card_reads' columns, 50 000-row batches; rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy_cards; CREATE TABLE bench_copy_cards "
                           "(card_id integer, ts timestamptz, station_id integer, mine_id integer)")
        base = datetime(2026, 1, 1, tzinfo=UTC)
        batch = [(1 + i % 4500, base + timedelta(milliseconds=i * 41), 1 + i % 20, 1) for i in range(50_000)]
        t0 = time.perf_counter()
        done = 0
        while done < rows:
            await conn.copy_records_to_table("bench_copy_cards", records=batch, columns=COLUMNS)
            done += len(batch)
        return done / (time.perf_counter() - t0)
    finally:
        await conn.execute("DROP TABLE IF EXISTS bench_copy_cards")
        await conn.close()


async def copy_ceiling_table(dsn: str, rows: int = 1_000_000) -> float:
    """The same COPY into the real `card_reads` (partitions, key, index), an hour ahead, truncated after; rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        cards = [(r["id"], r["mine_id"]) for r in await conn.fetch("SELECT id, mine_id FROM cards ORDER BY id")]
        stations = [r["id"] for r in await conn.fetch("SELECT id FROM stations ORDER BY id")]
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        t = 0.0
        done = 0
        while done < rows:
            batch = [(cards[i % len(cards)][0], base + timedelta(milliseconds=i // len(cards)),
                      stations[i % len(stations)], cards[i % len(cards)][1]) for i in range(done, done + 50_000)]
            t0 = time.perf_counter()
            await conn.copy_records_to_table("card_reads", records=batch, columns=COLUMNS)
            t += time.perf_counter() - t0
            done += len(batch)
        return done / t
    finally:
        await conn.execute("TRUNCATE card_reads")
        await conn.close()


async def stored(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT coalesce(sum(n_rows), 0) FROM dirty_windows WHERE kind = 'card_reads'"))


async def start_ingest(dsn: str, url: str, prefix: str, logs: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start `minewatch ingest`; returns it and the perf_counter time its MQTT connection came up
    (its "connected to" log line, polled every 2 ms), before any queued message reaches it."""
    env = {**os.environ, "DATABASE_URL": dsn, "MQTT_URL": url, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "launcher", "ingest", "--topic-prefix", prefix, "--client-id",
           f"bench-{prefix.strip('/')}", "--no-share"]
    log = logs / f"ingest-{prefix.strip('/')}.log"
    before = log.read_text().count("connected to") if log.exists() else 0
    with log.open("ab") as out:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 60
    while log.read_text().count("connected to") <= before:
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"ingest did not connect: {log.read_text()[-2000:]}")
        await asyncio.sleep(0.002)
    return p, time.perf_counter()


async def one_run(server_dsn: str, url: str, reg: Registry, payloads: Path, n: int, prefix: str,
                  live: bool, narrow_key: bool = False) -> dict[str, float]:
    dsn = await fresh_db(server_dsn, reg, narrow_key)
    pub_cmd = [sys.executable, "-c", PUBLISHER, url, str(payloads), "2000"]
    if not live:
        # Create the persistent session, stop, and let the broker queue the whole data set.
        p, _ = await start_ingest(dsn, url, prefix, payloads.parent)
        await asyncio.sleep(0.5)  # SUBACK
        stop_ingests([p])
        t = time.perf_counter()
        subprocess.run(pub_cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        print(f"    pre-published {n:,} card reads in {time.perf_counter() - t:.1f} s", flush=True)
    ceiling = await copy_ceiling(dsn)
    table = await copy_ceiling_table(dsn)
    conn = await asyncpg.connect(dsn)
    pub = None
    try:
        ingest, t0 = await start_ingest(dsn, url, prefix, payloads.parent)
        if live:
            pub = subprocess.Popen(pub_cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        first = first_n = None
        last_print = last_progress = t0
        last_got = -1
        while True:
            got = await stored(conn)
            now = time.perf_counter()
            if first is None and got > 0:
                first, first_n = now, got
            if got >= n:
                break
            if got != last_got:
                last_got, last_progress = got, now
            elif now - last_progress > 60:
                stop_ingests([ingest])
                raise RuntimeError(f"no progress for 60 s at {got} of {n} card reads")
            if now - last_print > 10:
                print(f"    ... {got:,} / {n:,} stored", flush=True)
                last_print = now
            await asyncio.sleep(0.02)
        end = time.perf_counter()
        if pub is not None:
            pub.wait(60)
        cpu = stop_ingests([ingest])
        rejected = await conn.fetchval("SELECT count(*) FROM dead_letters")
        rows = await conn.fetchval("SELECT count(*) FROM card_reads")
    finally:
        await conn.close()
    if rejected or rows != n:
        raise RuntimeError(f"expected {n} card reads stored and no dead letter; got {rows} rows, {rejected} dead letters")
    assert first is not None and first_n is not None
    return {"rate": n / (end - t0), "commits": (n - first_n) / (end - first) if end > first else float("nan"),
            "ceiling": ceiling, "table": table, "cpu": cpu / n * 1e6, "seconds": end - t0}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=6_000_000, help="card reads per run")
    ap.add_argument("--mines", type=int, default=2)
    ap.add_argument("--crew", type=int, default=1500, help="workers per shift per mine (cards = 3 x crew + 25)")
    ap.add_argument("--items", type=int, default=100, help="card reads per MQTT message (1 = single-item payloads)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--live", action="store_true", help="publish while the ingest runs (see above)")
    ap.add_argument("--mqtt-url", help="use this broker instead of a private one (needs lossless settings)")
    ap.add_argument("--narrow-key", choices=["off", "on", "alternate"], default="off",
                    help="card_reads' key as before migration 0091 (no INCLUDE (station_id)): on, or on in every "
                         "other run (odd runs narrow) for an A/B under the same load")
    args = ap.parse_args()
    work = scratch("minewatch-bench-cards-")
    pg = broker = None
    server_dsn = os.environ.get("DATABASE_URL")
    url = args.mqtt_url or os.environ.get("MQTT_URL")
    try:
        if not server_dsn:
            pg = EmbeddedPostgres(work / "pg")
            server_dsn = pg.start()
        if not url:
            broker = EmbeddedBroker(work / "mqtt")
            url = broker.start()
        reg = personnel_registry(args.mines, args.crew)
        prefix = f"c{uuid.uuid4().hex[:8]}r0/"  # runs swap r0 for r1, r2: same length, so records stay valid
        payloads = work / "payloads.bin"
        t = time.perf_counter()
        n = render(payloads, reg, args.reads, args.items, prefix)
        print(f"rendered {n:,} card reads of {args.mines} mine(s) x {len(reg.mines[0].cards):,} cards "
              f"({args.crew:,} underground per mine per shift), {args.items} per message, "
              f"{payloads.stat().st_size / 1e6:.0f} MB, in {time.perf_counter() - t:.1f} s", flush=True)
        results: list[dict[str, float]] = []
        for r in range(args.runs):
            run_prefix = prefix.replace("r0/", f"r{r}/")
            path = payloads
            if r:
                # a new prefix per run, so no persistent session of a previous run holds messages
                path = work / "p.bin"
                path.write_bytes(payloads.read_bytes().replace(prefix.encode(), run_prefix.encode()))
            narrow = args.narrow_key == "on" or (args.narrow_key == "alternate" and r % 2 == 0)
            res = await one_run(server_dsn, url, reg, path, n, run_prefix, args.live, narrow)
            res["narrow"] = float(narrow)
            results.append(res)
            print(f"run {r + 1}{' (narrow key)' if narrow else ''}: ingest {res['rate']:,.0f} card reads/s "
                  f"(whole job, {res['seconds']:.1f} s; "
                  f"first-to-last commit {res['commits']:,.0f}/s) | COPY ceiling {res['ceiling']:,.0f} rows/s | "
                  f"ratio {res['rate'] / res['ceiling']:.2f} | COPY into card_reads {res['table']:,.0f} rows/s, "
                  f"ratio {res['rate'] / res['table']:.2f} | ingest CPU {res['cpu']:.2f} µs/read", flush=True)

        if args.narrow_key == "alternate":
            for label, group in (("narrow key (before 0091)", [x for x in results if x["narrow"]]),
                                 ("key INCLUDE (station_id) (0091)", [x for x in results if not x["narrow"]])):
                print(f"median of {len(group)}, {label}: ingest {statistics.median(x['rate'] for x in group):,.0f} "
                      f"card reads/s | ratio to the same runs' COPY ceiling "
                      f"{statistics.median(x['rate'] / x['ceiling'] for x in group):.2f} | COPY into card_reads "
                      f"{statistics.median(x['table'] for x in group):,.0f} rows/s")

        def med(key: str) -> float:
            return statistics.median(x[key] for x in results)

        ratio = statistics.median(x["rate"] / x["ceiling"] for x in results)
        table_ratio = statistics.median(x["rate"] / x["table"] for x in results)
        print(f"median of {args.runs} ({'live' if args.live else 'drain'}): ingest {med('rate'):,.0f} card reads/s "
              f"(whole job; first-to-last commit {med('commits'):,.0f}/s; {args.items} reads/message) | "
              f"COPY ceiling {med('ceiling'):,.0f} rows/s | ratio {ratio:.2f} (median of per-run ratios) | "
              f"COPY into card_reads {med('table'):,.0f} rows/s, ratio {table_ratio:.2f} | "
              f"ingest CPU {med('cpu'):.2f} µs/read | target >= 100,000 card reads/s: "
              f"{'met' if med('rate') >= 100_000 else 'NOT met'}")
    finally:
        if broker:
            broker.stop()
        if pg:
            pg.stop("immediate")


if __name__ == "__main__":
    asyncio.run(main())
