"""Fuzz per MQTT topic family over the real broker into a real ingest process (issue 15).

Hypothesis generates >= 1 000 hostile inputs per family (random bytes, broken UTF-8, NUL,
huge numbers, 1e309, extreme times, oversized fields, deep nesting) interleaved with valid
items, some of which carry hostile extra fields the decoder must ignore. Hypothesis is used as
the generator (generate phase only; a failing run prints its messages, which are replayable):
the examples are collected and published as one burst, so a family costs one ingest start,
not a thousand. Before publishing, the validator must agree with the generator's intent
(pure); after, the ingest process must still run, hold every valid item exactly once, have
dead-lettered every hostile input exactly once, and stay below RSS_BOUND_KB.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ingest import validate as v
from ingest.field_variant import adapt
from launcher.embedded import stop_process
from minewatch.db import ident
from minewatch.registry import load_registry
from tests.conftest import SAMPLE_REGISTRY, start_ingest
from tests.ingest import fuzzgen as g
from tests.mqtt_helpers import publish_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 50
HOSTILE_PER_EXAMPLE = 20
MIN_HOSTILE = 1_000
# The ingest process starts at ~115 MB and peaked at 120-140 MB in these runs (a burst is
# 1-3 MB); its queue and batches are bounded at 64 + 3 x 16 MiB of payload. 250 MB leaves room
# for a noisy machine without hiding a leak that keeps what it was sent.
RSS_BOUND_KB = 250_000

NOW = datetime.now(UTC)
RECENT_MS = int((NOW - timedelta(hours=1)).timestamp() * 1000)
_CST = timezone(timedelta(hours=8))


@dataclass
class Codes:
    mine: str
    points: list[str]
    cards: list[str]
    stations: list[str]
    foreign_point: str
    foreign_card: str
    foreign_station: str
    lookup: v.Lookup
    names: dict[int, str] = field(default_factory=dict)


def _codes() -> Codes:
    reg, _ = load_registry(SAMPLE_REGISTRY)
    points: dict[str, tuple[int, str]] = {}
    cards: dict[str, tuple[int, str]] = {}
    stations: dict[str, tuple[int, str]] = {}
    names: dict[int, str] = {}
    n = 0
    for m in reg.mines:
        for table, codes in ((points, [p.code for p in m.points]), (cards, [c.code for c in m.cards]),
                             (stations, [s.code for s in m.stations])):
            for code in codes:
                n += 1
                table[code] = (n, m.code)
                names[n] = code
    m1, m2 = reg.mines[0], reg.mines[1]
    lookup = v.Lookup(points, cards, stations, {m.code: i for i, m in enumerate(reg.mines)})
    return Codes(m1.code, [p.code for p in m1.points], [c.code for c in m1.cards], [s.code for s in m1.stations],
                 m2.points[0].code, m2.cards[0].code, m2.stations[0].code, lookup, names)


C = _codes()


class Counter:
    """Unique times for valid items (so every (code, ts) is new)."""

    def __init__(self) -> None:
        self.k = 0

    def next(self) -> tuple[int, int]:
        self.k += 1
        return self.k, RECENT_MS - 3_000_000 + self.k * 7


def _ts(k: int, ms: int) -> bytes:
    if k % 3:
        return str(ms).encode()
    return g._js(datetime.fromtimestamp(ms / 1000, _CST).isoformat(timespec="milliseconds"))


def _with_junk(fields: list[tuple[str, bytes]], junk: bytes | None) -> bytes:
    return g.obj([*fields, ("junk", junk)] if junk is not None else fields)


def _not_object() -> st.SearchStrategy[bytes]:
    return st.one_of(st.integers().map(lambda i: str(i).encode()), st.text(max_size=20).map(g._js),
                     st.integers(1, 60).map(g._nested))


RTS = str(RECENT_MS).encode()


def _readings_family() -> tuple[Callable[[Counter], g.Maker], st.SearchStrategy[bytes]]:
    def maker(c: Counter) -> g.Maker:
        def make(junk: bytes | None) -> tuple[bytes, tuple[str, int]]:
            k, ms = c.next()
            p = C.points[k % len(C.points)]
            return _with_junk([("point", g._js(p)), ("ts", _ts(k, ms)), ("value", g._js((k % 1000) / 10)),
                               ("status", str(k % 4).encode())], junk), (p, ms)
        return make
    p = g._js(C.points[0])
    hostile = st.one_of(
        g.hostile_ts(NOW).map(lambda t: g.obj([("point", p), ("ts", t), ("value", b"1")])),
        g.hostile_code().map(lambda h: g.obj([("point", h), ("ts", RTS), ("value", b"1")])),
        g.hostile_number(0, 0, floats=True).map(lambda h: g.obj([("point", p), ("ts", RTS), ("value", h)])),
        g.hostile_number(0, 65_536, floats=False).map(
            lambda h: g.obj([("point", p), ("ts", RTS), ("value", b"1"), ("status", h)])),
        st.sampled_from([g.obj([("point", p), ("value", b"1")]), g.obj([("ts", RTS), ("value", b"1")]),
                         g.obj([("point", p), ("ts", RTS)]), g.obj([]),
                         g.obj([("point", g._js(C.foreign_point)), ("ts", RTS), ("value", b"1")])]),
        _not_object(),
    )
    return maker, hostile


def _personnel_family() -> tuple[Callable[[Counter], g.Maker], st.SearchStrategy[bytes]]:
    def maker(c: Counter) -> g.Maker:
        def make(junk: bytes | None) -> tuple[bytes, tuple[str, int]]:
            k, ms = c.next()
            card = C.cards[k % len(C.cards)]
            return _with_junk([("card", g._js(card)), ("ts", _ts(k, ms)),
                               ("station", g._js(C.stations[k % len(C.stations)]))], junk), (card, ms)
        return make
    card, station = g._js(C.cards[0]), g._js(C.stations[0])
    hostile = st.one_of(
        g.hostile_ts(NOW).map(lambda t: g.obj([("card", card), ("ts", t), ("station", station)])),
        g.hostile_code().map(lambda h: g.obj([("card", h), ("ts", RTS), ("station", station)])),
        g.hostile_code().map(lambda h: g.obj([("card", card), ("ts", RTS), ("station", h)])),
        st.sampled_from([g.obj([("card", card), ("ts", RTS)]), g.obj([("ts", RTS), ("station", station)]),
                         g.obj([("card", g._js(C.foreign_card)), ("ts", RTS), ("station", station)]),
                         g.obj([("card", card), ("ts", RTS), ("station", g._js(C.foreign_station))])]),
        _not_object(),
    )
    return maker, hostile


def _stations_family() -> tuple[Callable[[Counter], g.Maker], st.SearchStrategy[bytes]]:
    def maker(c: Counter) -> g.Maker:
        def make(junk: bytes | None) -> tuple[bytes, tuple[str, int]]:
            k, ms = c.next()
            s = C.stations[k % len(C.stations)]
            fields = [("station", g._js(s)), ("ts", _ts(k, ms)), ("state", g._js([0, 1, 2, 9][k % 4]))]
            if k % 2:
                fields.append(("power", b"null" if k % 4 == 1 else b"0"))
            return _with_junk(fields, junk), (s, ms)
        return make
    s = g._js(C.stations[0])
    hostile = st.one_of(
        g.hostile_ts(NOW).map(lambda t: g.obj([("station", s), ("ts", t), ("state", b"0")])),
        g.hostile_code().map(lambda h: g.obj([("station", h), ("ts", RTS), ("state", b"0")])),
        g.hostile_number(0, 256, floats=False).map(lambda h: g.obj([("station", s), ("ts", RTS), ("state", h)])),
        g.hostile_number(0, 256, floats=False).filter(lambda h: h != b"null").map(
            lambda h: g.obj([("station", s), ("ts", RTS), ("state", b"0"), ("power", h)])),
        st.sampled_from([g.obj([("station", s), ("ts", RTS)]), g.obj([("ts", RTS), ("state", b"0")]),
                         g.obj([("station", g._js(C.foreign_station)), ("ts", RTS), ("state", b"0")])]),
        _not_object(),
    )
    return maker, hostile


@dataclass
class Burst:
    """One family's messages and what they must yield."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    valid: set[tuple[str, int]] = field(default_factory=set)
    dead: int = 0
    hostile: int = 0
    topic_of: dict[int, str] = field(default_factory=dict)


def _collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """n examples of `strategy`, generated (not shrunk) by hypothesis."""
    out: list[Any] = []

    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def gen(x: Any) -> None:
        out.append(x)
    gen()
    return out


def _canonical_burst(prefix: str, family: str, maker: g.Maker, hostile: st.SearchStrategy[bytes]) -> Burst:
    b = Burst()
    topic = f"{prefix}mines/{C.mine}/{family}"
    strategy = g.item_burst(n_hostile=HOSTILE_PER_EXAMPLE, valid_maker=maker, hostile_item=hostile)
    for bad_items, wholes, valid, rng in _collect(strategy, EXAMPLES):
        b.hostile += len(bad_items) + len(wholes) + 1
        b.dead += len(bad_items) + len(wholes) + 1
        b.valid |= {key for _, key in valid}
        _pack(b, topic, valid, bad_items, rng)
        for w in wholes:
            b.messages.append((topic, w))
        b.messages.append((f"{prefix}mines/{C.mine}/{rng.choice(['nonsense', 'Safety', 'safety '])}", bad_items[0]))
    random.Random(1).shuffle(b.messages)
    return b


def _pack(b: Burst, topic: str, valid: list[tuple[bytes, tuple[str, int]]], bad: list[bytes],
          rng: random.Random) -> None:
    items = [i for i, _ in valid] + bad
    rng.shuffle(items)
    while items:
        n = rng.randint(1, 25)
        chunk, items = items[:n], items[n:]
        if len(chunk) == 1 and chunk[0].startswith(b"{") and rng.random() < 0.5:
            b.messages.append((topic, chunk[0]))  # a bare object
        else:
            b.messages.append((topic, b"[" + b",".join(chunk) + b"]"))


def _precheck(b: Burst, family: str, prefix: str) -> None:
    """The validator agrees with the generator: pure, before any IO."""
    dead = 0
    valid: set[tuple[str, int]] = set()
    for topic, payload in b.messages:
        parsed = v.parse_topic(topic, prefix)
        if parsed is None:
            variant = adapt(topic[len(prefix):], payload)
            if variant is None:
                dead += 1
                continue
            dead += len(variant.errors)
            if not variant.items:
                continue
            mine, payload = variant.mine_code, msgspec.json.encode(variant.items)
        else:
            mine = parsed[0]
        out = v.validate(family, mine, payload, C.lookup, now=datetime.now(UTC))
        assert not any(r.reason == v.UNPROCESSABLE for r in out.rejects), payload[:300]
        dead += len(out.rejects)
        for r in out.rows:
            valid.add((C.names[r[0]], int(r[1].timestamp() * 1000)))
    assert valid == b.valid
    assert dead == b.dead


async def _run(tmp_path: Path, dsn: str, url: str, prefix: str, b: Burst, table: str, code_sql: str,
               args: tuple[str, ...] = ()) -> None:
    assert b.hostile >= MIN_HOSTILE, b.hostile
    log = tmp_path / "ingest.log"
    proc = start_ingest(dsn, url, prefix, log, client_id=f"fuzz-{prefix.strip('/')}", args=args)
    rss: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                text = Path(f"/proc/{proc.pid}/status").read_text()
                rss.append(int(text.split("VmRSS:")[1].split()[0]))
            except (OSError, IndexError):
                pass
            stop.wait(0.2)
    sampler = threading.Thread(target=sample)
    sampler.start()
    conn = await asyncpg.connect(dsn)
    try:
        await asyncio.to_thread(publish_all, url, b.messages)
        end = time.monotonic() + 180
        while True:
            stored = int(await conn.fetchval(f"SELECT count(*) FROM {ident(table)}"))
            dead = int(await conn.fetchval("SELECT count(*) FROM dead_letters"))
            if stored >= len(b.valid) and dead >= b.dead:
                break
            assert proc.poll() is None, f"ingest crashed: {log.read_text()[-3000:]}"
            assert time.monotonic() < end, f"hang: {stored}/{len(b.valid)} stored, {dead}/{b.dead} dead letters"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # nothing more arrives
        assert proc.poll() is None, f"ingest crashed: {log.read_text()[-3000:]}"
        rows = await conn.fetch(code_sql)
        got = [(r["code"], int(r["ms"])) for r in rows]
        assert len(got) == len(set(got)) == len(b.valid)
        assert set(got) == b.valid
        reasons = {r["reason"]: r["n"] for r in await conn.fetch(
            "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")}
        assert sum(reasons.values()) == b.dead, reasons
        assert not {v.UNPROCESSABLE, v.UNSTORABLE} & set(reasons), reasons
    finally:
        stop.set()
        sampler.join()
        await conn.close()
        stop_process(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    assert rss and max(rss) < RSS_BOUND_KB, f"RSS peaked at {max(rss)} kB"
    print(f"{b.hostile} hostile inputs, {len(b.valid)} valid items, {len(b.messages)} messages, "
          f"RSS first/max/last {rss[0]}/{max(rss)}/{rss[-1]} kB")


_READINGS_SQL = ("SELECT p.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms FROM readings r "
                 "JOIN points p ON p.id = r.point_id")


@pytest.mark.parametrize("family", ["safety", "geotech"])
async def test_fuzz_readings_families(family: str, fresh_db: str, mqtt_url: str, topic_prefix: str,
                                      tmp_path: Path) -> None:
    maker, hostile = _readings_family()
    b = _canonical_burst(topic_prefix, family, maker(Counter()), hostile)
    _precheck(b, family, topic_prefix)
    await _run(tmp_path, fresh_db, mqtt_url, topic_prefix, b, "readings", _READINGS_SQL)


async def test_fuzz_personnel(fresh_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    maker, hostile = _personnel_family()
    b = _canonical_burst(topic_prefix, "personnel", maker(Counter()), hostile)
    _precheck(b, "personnel", topic_prefix)
    await _run(tmp_path, fresh_db, mqtt_url, topic_prefix, b, "card_reads",
               "SELECT c.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms FROM card_reads r "
               "JOIN cards c ON c.id = r.card_id")


async def test_fuzz_stations(fresh_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    maker, hostile = _stations_family()
    b = _canonical_burst(topic_prefix, "stations", maker(Counter()), hostile)
    _precheck(b, "stations", topic_prefix)
    await _run(tmp_path, fresh_db, mqtt_url, topic_prefix, b, "station_states",
               "SELECT s.code, (extract(epoch FROM r.ts) * 1000)::bigint AS ms FROM station_states r "
               "JOIN stations s ON s.id = r.station_id")


# --- the provincial field variant: `/{mine}/01`, {"timestamp", "systemcode", "values": [{"code", "v"}]} ---

def _variant_item() -> st.SearchStrategy[bytes]:
    p = g._js(C.points[0])
    # The adapter decodes generically: 1e309 there refuses the whole message (whole_variant), and
    # a quoted number or `true` is a valid reading, so the values below are all refused alone.
    v_bad = st.one_of(st.sampled_from([b"1" + b"0" * 400, b"null", b"{}", b'"NaN"', b'"high"', b'"inf"']),
                      st.text(max_size=20).map(lambda t: g._js("X" + t)), st.integers(1, 60).map(g._nested),
                      g.invalid_utf8())
    return st.one_of(
        g.hostile_code().map(lambda h: g.obj([("code", h), ("v", b"1")])),
        v_bad.map(lambda h: g.obj([("code", p), ("v", h)])),
        st.sampled_from([g.obj([("code", p)]), g.obj([("v", b"1")]), g.obj([("code", b'"  "'), ("v", b"1")]),
                         g.obj([("code", g._js(C.foreign_point)), ("v", b"1")])]),
        _not_object(),
    )


def _envelope(ts: bytes, values: bytes, system: bytes = b'"01"') -> bytes:
    return g.obj([("timestamp", ts), ("systemcode", system), ("values", values)])


@st.composite
def _variant_example(draw: st.DrawFn) -> tuple[list[bytes], list[bytes], random.Random]:
    bad = draw(st.lists(_variant_item(), min_size=HOSTILE_PER_EXAMPLE, max_size=HOSTILE_PER_EXAMPLE))
    old = int((NOW - v.DEFAULT_MAX_AGE - timedelta(days=2)).timestamp() * 1000)
    one = b"[" + g.obj([("code", g._js(C.points[1])), ("v", b"1")]) + b"]"
    whole = draw(st.lists(st.one_of(
        g.whole_message(),
        st.sampled_from([_envelope(RTS, one, b'"02"'), _envelope(b"-1", one), _envelope(b'"2024-05-14"', one),
                         _envelope(b"1e309", one), _envelope(RTS, b"{}"), g.obj([("timestamp", RTS)]),
                         _envelope(RTS, b"[" + g.obj([("code", g._js(C.points[1])), ("v", b"1e309")]) + b"]"),
                         _envelope(str(old).encode(), one), _envelope(b"1" + b"0" * 30, one)]),
    ), min_size=1, max_size=3))
    return bad, whole, random.Random(draw(st.integers(0, 2**32 - 1)))


def _variant_burst(prefix: str) -> Burst:
    b = Burst()
    topic = f"{prefix}/{C.mine}/01"
    c = Counter()
    for bad, whole, rng in _collect(_variant_example(), EXAMPLES):
        b.hostile += len(bad) + len(whole)
        b.dead += len(bad) + len(whole)
        bad = list(bad)
        while bad or rng.random() < 0.5:
            _, ms = c.next()
            n_valid = rng.randint(0, 12)
            points = rng.sample(C.points, n_valid)
            items = [g.obj([("code", g._js(p)), ("v", g._js(rng.choice([1, 0.5, "0.25", True])))]) for p in points]
            take = rng.randint(0, min(8, len(bad)))
            items += bad[:take]
            bad = bad[take:]
            if not items:
                continue
            rng.shuffle(items)
            b.valid |= {(p, ms) for p in points}
            b.messages.append((topic, _envelope(str(ms).encode(), b"[" + b", ".join(items) + b"]")))
        b.messages += [(topic, w) for w in whole]
    random.Random(2).shuffle(b.messages)
    return b


async def test_fuzz_field_variant(fresh_db: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    b = _variant_burst(topic_prefix)
    _precheck(b, "safety", topic_prefix)
    await _run(tmp_path, fresh_db, mqtt_url, topic_prefix, b, "readings", _READINGS_SQL, args=("--field-variant",))

