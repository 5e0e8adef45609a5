"""Acceptance, end to end: one scenario file per personnel rule (rules.md §7, §4 evacuation),
each replayed through MQTT, the real ingest process and the real rules worker, and judged
against the findings written by hand in the file.

Each file of tests/e2e/data/personnel/ (except the registries, `registry*.yaml`) is one
scenario. A file holds:

- `name`, `description`: what happens, in words;
- `registry`: the registry file it runs on, relative to the scenario file; `mine`: the mine's
  code (optional when the registry has one mine);
- `start`: the local time of day (the mine's zone) the scenario begins. Every time in the file
  is a local wall-clock time `HH:MM` or `HH:MM:SS` of the scenario's day; the test puts that day
  two days before today, so nothing is in the future and the shifts (00-08, 08-16, 16-24) stay
  where the file says;
- `clock`: the rules worker's FrozenClock (the present the rules judge at); reads stop there;
- `every`: the read period of a card underground (default 5m);
- `stays`: each `{cards, path, silent_after}`. `cards` names cards and ranges
  (`"W01-W10 L1"`). `path` is the card's reads in time order, `"HH:MM[:SS] AREA"` each: a read
  at the area's first station (a shaft area's read takes the card out of the mine, any other
  puts it there). Between two path entries, while the card is in an underground area, it is
  also read there every `every` on a grid from `start`; after its last entry, until the clock
  (a card that never comes up). `silent_after`: no grid reads after this time (a lost card);
- `methane`: each `{point, from, to, every, base, steps}`: a reading of the point every
  `every` (default 1m) from `from` to `to` inclusive, of value `base`, or of the last step
  (`"HH:MM[:SS] value"`) at or before the reading; status 0;
- `phases` (optional): each `{before: "HH:MM"}` and / or `{kind: cards | methane}`: the items
  it selects (of those not yet sent) are sent first and judged before anything else is sent;
  the rest follows. Used where the arrival order is part of the scenario (an order must exist
  before the entries it covers are judged);
- `expected`: every live finding of the personnel rules, written out by hand (`rule`,
  `subject`, `start`, `end` or null while open, `level`), with a comment saying why; an empty
  list when nothing may fire. `case` (optional, `mine` or `county`): the supervising level its
  case must open at, with routing whose default start level is the mine (so `county` is the
  rules' own choice: rules.md §7 sends restricted_area, seal_breach, work_continued and a major
  over_capacity to the regulator). `cards` (optional, work_continued): the cards the
  finding lists (present at t and still at the face at t + 30 min);
- `orders` (optional): the starts of the shutdown orders the methane chain must make (§3);
- `xfail` (optional): the reason the code does not meet the file's expectation yet; the test
  is then a strict xfail, so it reports when it starts passing;
- `seed` (optional): the seed of the message split (default: from the name).

The items go out as JSON arrays on `mines/<mine>/personnel` and `mines/<mine>/safety`
(shared/contract.md) in messages of 1-40 items, a twentieth of the messages (at least one)
held back and sent 5-60 messages later. They are sent in rounds of 10 messages, each round
stored and judged before the next is sent, so a message held back past a round's end arrives
after the worker judged later data: late and out of order, re-judged. The rules worker
(`rules.worker.RuleWorker`) runs in-process with its clock frozen at `clock`; once every item
is stored and no dirty window is left, it stops, one more clock pass runs (the worker does one
every `clock_s`; the one that counts follows the last data), and the live personnel findings
of the mine must be exactly the expected ones. No dead letters. Where the file names cases,
the real case worker (burst, no delivery) then opens them, and each must stand at the level
written, the mine told, and the county's regulator told exactly when the case is the county's.

One database and one real `minewatch ingest` process (tests.conftest.start_ingest) serve the
whole module: a cold ingest takes seconds to start, more than a scenario takes to play. Each
scenario's mine is cloned into that database under codes of its own (`Clone`: the mine code
with its last two digits replaced, which renames the stations and points that embed it, and
the cards suffixed `_<nn>`), and retired (`active` false) once judged, so that later scenarios'
clock passes leave it alone. Files and failure messages keep the file's codes. A registry a
scenario uses must therefore embed its mine code in its station and point codes (national
codes do).

Run: `.venv/bin/python -m pytest tests/e2e/test_personnel_scenario_files.py` (about 30 s).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import random
import re
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from alerting.settings import AlertingSettings
from alerting.worker import AlertingWorker
from launcher.embedded import stop_process
from minewatch.clock import FrozenClock
from minewatch.registry import load_registry
from minewatch.registry.models import Mine
from minewatch.rule_ids import PERSONNEL
from minewatch.timeutil import from_ns, to_ns
from rules.packs import builtin_pack
from rules.worker import RulesSettings, RuleWorker
from tests.conftest import _create_db, _drop_db, start_ingest
from tests.mqtt_helpers import publish_all
from tests.polling import wait_for as poll
from tests.rules.db.helpers import load_test_registry

pytestmark = [pytest.mark.integration]

DATA = Path(__file__).resolve().parent / "data" / "personnel"
FILES = sorted(p for p in DATA.glob("*.yaml") if not p.name.startswith("registry"))
S = 1_000_000_000
LATE_SHARE = 0.05  # of the messages, held back and sent 5-60 messages later
ROUND = 10  # messages sent at once; each round is judged before the next is sent
TIMEOUT_S = 60.0


# --- the file format ------------------------------------------------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StaySpec(_Strict):
    cards: str | list[str]
    path: list[str] = Field(min_length=1)
    silent_after: str | None = None


class MethaneSpec(_Strict):
    point: str
    start: str = Field(alias="from")
    to: str
    every: str = "1m"
    base: float
    steps: list[str] = []


class PhaseSpec(_Strict):
    before: str | None = None
    kind: Literal["cards", "methane"] | None = None


class ExpectedFinding(_Strict):
    rule: Literal["over_capacity", "no_leader", "overtime", "restricted_area", "seal_breach", "work_continued"]
    subject: str
    start: str
    end: str | None  # required: null says "still open" on purpose
    level: Literal["warning", "major"]
    case: Literal["mine", "county"] | None = None  # the test routing has regulators at the county only
    cards: list[str] | None = None  # work_continued: the cards its evidence lists


class ScenarioFile(_Strict):
    name: str
    description: str
    registry: str
    mine: str | None = None
    start: str
    clock: str
    every: str = "5m"
    seed: int | None = None
    stays: list[StaySpec] = []
    methane: list[MethaneSpec] = []
    phases: list[PhaseSpec] = []
    expected: list[ExpectedFinding]
    orders: list[str] = []
    xfail: str | None = None


def read_file(path: Path) -> ScenarioFile:
    return ScenarioFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
_DURATION = re.compile(r"^(\d+)([smh])$")


def parse_duration(text: str) -> int:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"a duration is <n>s, <n>m or <n>h, not {text!r}")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3_600}[m.group(2)] * S


def card_range(text: str | list[str]) -> list[str]:
    """`"W01-W03 L1"` -> W01, W02, W03, L1 (a range keeps its zero padding)."""
    out: list[str] = []
    for token in (text.split() if isinstance(text, str) else text):
        m = re.match(r"^([A-Za-z]*)(\d+)-\1(\d+)$", token)
        if m:
            width = len(m.group(2))
            out += [f"{m.group(1)}{k:0{width}d}" for k in range(int(m.group(2)), int(m.group(3)) + 1)]
        else:
            out.append(token)
    return out


@dataclass(frozen=True)
class Item:
    ts: int
    family: Literal["personnel", "safety"]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A scenario file made concrete on a day: items to send and what must be found."""

    spec: ScenarioFile
    registry: Path
    mine: Mine
    day: date
    clock_ns: int
    items: list[Item]
    expected: set[tuple[str, str, int, int | None, str]]
    cases: dict[tuple[str, str, int], str]
    orders: set[int]
    listed: dict[tuple[str, str, int], list[str]]

    def at(self, text: str) -> int:
        return local_ns(self.day, self.mine.timezone, text)


def local_ns(day: date, zone: str, text: str) -> int:
    m = _TIME.match(text)
    if not m:
        raise ValueError(f"a time is HH:MM or HH:MM:SS (local), not {text!r}")
    h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return to_ns(datetime.combine(day, wall_time(h, mi, s), tzinfo=ZoneInfo(zone)))


def build(path: Path, day: date | None = None) -> Scenario:
    """The file's items and expectations on `day` (default: two days before today, local)."""
    spec = read_file(path)
    registry = (path.parent / spec.registry).resolve()
    reg, _ = load_registry(registry)
    mines = [m for m in reg.mines if spec.mine in (None, m.code)]
    if len(mines) != 1:
        raise ValueError(f"{path.name}: name the mine (`mine:`) among {[m.code for m in reg.mines]}")
    mine = mines[0]
    zone = mine.timezone
    if day is None:
        day = datetime.now(UTC).astimezone(ZoneInfo(zone)).date() - timedelta(days=2)

    def at(text: str) -> int:
        return local_ns(day, zone, text)

    start, clock, every = at(spec.start), at(spec.clock), parse_duration(spec.every)
    areas = {a.code: a for a in mine.areas}
    roles = {c.code for c in mine.cards}
    items: list[Item] = []
    seen: set[tuple[str, int]] = set()

    def read(card: str, ts: int, area: str) -> None:
        if not start <= ts <= clock:
            raise ValueError(f"{path.name}: {card}'s read at {from_ns(ts)} lies outside start..clock")
        if (card, ts) in seen:
            raise ValueError(f"{path.name}: {card} is read twice at {from_ns(ts)}")
        seen.add((card, ts))
        items.append(Item(ts, "personnel", {"card": card, "ts": from_ns(ts).isoformat(),
                                            "station": areas[area].stations[0]}))

    for stay in spec.stays:
        steps: list[tuple[int, str]] = []
        for entry in stay.path:
            when, _, area = entry.partition(" ")
            if area not in areas or not areas[area].stations:
                raise ValueError(f"{path.name}: {entry!r}: no area {area!r} with a station in the registry")
            steps.append((at(when), area))
        if any(b[0] <= a[0] for a, b in itertools.pairwise(steps)):
            raise ValueError(f"{path.name}: a path's times must increase: {stay.path}")
        silent = clock if stay.silent_after is None else at(stay.silent_after)
        for card in card_range(stay.cards):
            if card not in roles:
                raise ValueError(f"{path.name}: no card {card!r} in the registry")
            for k, (t, area) in enumerate(steps):
                read(card, t, area)
                if areas[area].shaft:
                    continue
                until = steps[k + 1][0] - 1 if k + 1 < len(steps) else clock  # the next entry reads itself
                g = start + ((t - start) // every + 1) * every  # the first grid time after t
                while g <= min(until, silent):
                    read(card, g, area)
                    g += every
    points = {p.code for p in mine.points}
    for series in spec.methane:
        if series.point not in points:
            raise ValueError(f"{path.name}: no point {series.point!r} in the registry")
        levels = sorted((at(s.split()[0]), float(s.split()[1])) for s in series.steps)
        t, step = at(series.start), parse_duration(series.every)
        while t <= at(series.to):
            value = next((v for w, v in reversed(levels) if w <= t), series.base)
            items.append(Item(t, "safety", {"point": series.point, "ts": from_ns(t).isoformat(), "value": value,
                                            "status": 0}))
            t += step
    items.sort(key=lambda x: x.ts)
    expected: set[tuple[str, str, int, int | None, str]] = {
        (f.rule, f.subject, at(f.start), None if f.end is None else at(f.end), f.level) for f in spec.expected}
    if len(expected) != len(spec.expected):
        raise ValueError(f"{path.name}: an expected finding is written twice")
    cases: dict[tuple[str, str, int], str] = {
        (f.rule, f.subject, at(f.start)): f.case for f in spec.expected if f.case is not None}
    listed: dict[tuple[str, str, int], list[str]] = {
        (f.rule, f.subject, at(f.start)): sorted(f.cards) for f in spec.expected if f.cards is not None}
    return Scenario(spec, registry, mine, day, clock, items, expected, cases, {at(o) for o in spec.orders}, listed)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    family: Literal["personnel", "safety"]
    n: int  # items


def messages_of(items: list[Item], rng: random.Random, topic: Callable[[str], str]) -> list[Message]:
    """Items in time order as messages of 1-40 items (one per topic of a chunk), then a
    twentieth of the messages (at least one) held back and sent 5-60 messages later."""
    messages: list[Message] = []
    j = 0
    while j < len(items):
        chunk = items[j:j + rng.randint(1, 40)]
        j += len(chunk)
        for family in ("personnel", "safety"):
            part = [x.payload for x in chunk if x.family == family]
            if part:
                messages.append(Message(topic(family), json.dumps(part).encode(), family, len(part)))
    late = {i for i in range(len(messages)) if rng.random() < LATE_SHARE} or {rng.randrange(max(1, len(messages) - 5))}
    delay = {i: rng.randint(5, 60) + 0.5 for i in late}
    return [messages[i] for i in sorted(range(len(messages)), key=lambda i: i + delay.get(i, 0))]


def selects(phase: PhaseSpec, item: Item, scenario: Scenario) -> bool:
    if phase.kind is not None and item.family != {"cards": "personnel", "methane": "safety"}[phase.kind]:
        return False
    return phase.before is None or item.ts < scenario.at(phase.before)


def param(path: Path) -> Any:
    spec = read_file(path)
    marks = [pytest.mark.xfail(strict=True, reason=spec.xfail)] if spec.xfail else []
    return pytest.param(path, id=path.stem, marks=marks)


# --- the run ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Clone:
    """A scenario's mine under codes of its own (mine code, and with it its stations and points;
    cards suffixed), so that every scenario of the session shares one database and one ingest
    process and still sees no other scenario's data. Files and failures speak the file's codes."""

    index: int
    original: str
    mine: str
    cards: dict[str, str]  # the file's card code -> the clone's

    def code(self, text: str) -> str:
        return text.replace(self.original, self.mine)

    def back(self, subject: str) -> str:
        """A finding's subject in the file's codes (areas and faces keep theirs)."""
        inverse = {v: k for k, v in self.cards.items()}
        return inverse.get(subject, subject.replace(self.mine, self.original))


def clone_registry(files: list[Path], out: Path) -> dict[Path, Clone]:
    """One registry file holding a clone of each scenario's mine; returns the clones by file."""
    regions: dict[str, Any] = {}
    mines: list[Any] = []
    clones: dict[Path, Clone] = {}
    for k, path in enumerate(files):
        spec = read_file(path)
        raw = yaml.safe_load((path.parent / spec.registry).read_text(encoding="utf-8"))
        for region in raw.get("regions", []):
            regions.setdefault(region["code"], region)
        [mine] = [m for m in raw["mines"] if spec.mine in (None, m["code"])]
        code = str(mine["code"])
        new = f"{code[:-2]}{k:02d}"  # same length: point codes stay within their 28 characters
        twin = yaml.safe_load(yaml.safe_dump(mine, allow_unicode=True).replace(code, new))
        twin["name"] = f"{mine['name']} {path.stem}"
        cards = {c["code"]: f"{c['code']}_{k:02d}" for c in twin.get("cards", [])}
        for c in twin.get("cards", []):
            c["code"] = cards[c["code"]]
        mines.append(twin)
        clones[path] = Clone(k, code, new, cards)
    out.write_text(yaml.safe_dump({"version": 1, "regions": list(regions.values()), "mines": mines},
                                   allow_unicode=True), encoding="utf-8")
    return clones


def routing_yaml(mines: list[tuple[Clone, Mine]]) -> str:
    """Each mine's duty room and workforce channel, its county's regulator; default start: the mine."""
    lines = ["version: 1", "start_levels:", "  default: mine", "mines:"]
    for clone, _ in mines:
        k = clone.index
        lines += [f'  "{clone.mine}":', "    receivers:",
                  f'      - {{id: m{k}-dispatch, name: 调度室, sms: ["138000003{k:02d}"]}}', "    workforce:",
                  f'      - {{id: m{k}-union, name: 职工监督员, sms: ["138000004{k:02d}"]}}']
    lines += ["regions:", "  county:"]
    for j, county in enumerate(sorted({m.county for _, m in mines})):
        lines += [f'    "{county}":', f'      - {{id: t-{county}, name: 测试县应急管理局, sms: ["139000001{j:02d}"]}}']
    return "\n".join(lines) + "\n"


@dataclass
class Shared:
    """The session's one database (every selected scenario's mine cloned into it), its one real
    `minewatch ingest` process and the routing file of the case checks."""

    dsn: str
    prefix: str
    clones: dict[Path, Clone]
    routing: Path


@pytest.fixture(scope="module")
def shared(request: pytest.FixtureRequest, pg_dsn: str, mqtt_url: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    chosen = {item.callspec.params["path"] for item in request.session.items
              if isinstance(item, pytest.Function) and item.module is not None and item.module.__name__ == __name__
              and hasattr(item, "callspec")}
    files = [p for p in FILES if p in chosen]
    tmp = tmp_path_factory.mktemp("personnel-files")
    clones = clone_registry(files, tmp / "registry.yaml")
    routing = tmp / "routing.yaml"
    routing.write_text(routing_yaml([(clones[p], build(p).mine) for p in files]), encoding="utf-8")
    dsn = asyncio.run(_create_db(pg_dsn, registry=False))
    prefix = f"t{uuid.uuid4().hex[:10]}/"
    try:
        asyncio.run(load_test_registry(dsn, tmp / "registry.yaml"))
        ingest = start_ingest(dsn, mqtt_url, prefix, tmp / "ingest.log", client_id=f"e2e-pfile-{prefix[:-1]}",
                              suback_s=0.3)
        try:
            yield Shared(dsn, prefix, clones, routing)
        finally:
            stop_process(ingest)
    finally:
        asyncio.run(_drop_db(pg_dsn, dsn))


wait_for = functools.partial(poll, timeout=TIMEOUT_S, interval=0.1)


def hm(ns: int | None, sc: Scenario) -> str:
    """A time as the file writes it (local), null for None."""
    return "null" if ns is None else from_ns(ns).astimezone(ZoneInfo(sc.mine.timezone)).strftime("%H:%M:%S")


def show(rows: set[tuple[str, str, int, int | None, str]], sc: Scenario) -> list[str]:
    """Findings with local times, for a readable failure."""
    return sorted(f"{r} {s} {hm(a, sc)} -> {hm(b, sc)} {lv}" for r, s, a, b, lv in rows)


@pytest.mark.parametrize("path", [param(p) for p in FILES])
async def test_scenario_file(path: Path, shared: Shared, mqtt_url: str) -> None:
    sc, clone = build(path), shared.clones[path]
    rng = random.Random(sc.spec.seed if sc.spec.seed is not None else zlib.crc32(sc.spec.name.encode()))
    pack = builtin_pack("default")
    clock = FrozenClock(from_ns(sc.clock_ns))
    conn = await asyncpg.connect(shared.dsn)
    mine_id = await conn.fetchval("SELECT id FROM mines WHERE code = $1", clone.mine)
    rules = RuleWorker(shared.dsn, pack, clock=clock, settings=RulesSettings(poll_s=0.1, clock_s=1.0))
    running = asyncio.create_task(rules.run())
    try:
        left, sent = list(sc.items), {"personnel": 0, "safety": 0}
        for phase in [*sc.spec.phases, PhaseSpec()]:
            batch = [cloned(x, clone) for x in left if selects(phase, x, sc)]
            left = [x for x in left if not selects(phase, x, sc)]
            messages = messages_of(batch, rng, lambda family: f"{shared.prefix}mines/{clone.mine}/{family}")
            for k in range(0, len(messages), ROUND):
                # A round is judged before the next is sent, so a message held back past a
                # round's end arrives after the worker judged what came after it.
                round_ = messages[k:k + ROUND]
                await asyncio.to_thread(publish_all, mqtt_url, [(m.topic, m.payload) for m in round_])
                for m in round_:
                    sent[m.family] += m.n

                async def judged() -> bool:
                    dead = await conn.fetch("SELECT reason, detail, topic FROM dead_letters LIMIT 5")
                    assert not dead, [tuple(r) for r in dead]
                    return (await conn.fetchval("SELECT count(*) FROM card_reads WHERE mine_id = $1", mine_id)
                            == sent["personnel"]
                            and await conn.fetchval("SELECT count(*) FROM readings r JOIN points p "
                                                    "ON p.id = r.point_id WHERE p.mine_id = $1", mine_id)
                            == sent["safety"]
                            and not await conn.fetchval("SELECT count(*) FROM dirty_windows"))

                await wait_for("every item sent so far stored and judged", judged)
        assert not left
        rules.stop()
        await running
        # The worker's clock pass runs every clock_s; the one that counts follows the last data.
        await RuleWorker(shared.dsn, pack, clock=clock).personnel_clock_pass(conn)
        rows = await conn.fetch(
            "SELECT id, rule, subject, start_ts, end_ts, level, evidence::text AS evidence FROM findings "
            "WHERE state <> 'superseded' "
            "AND rule = ANY($1::text[]) AND mine_id = $2", sorted(PERSONNEL), mine_id)
        found = {(r["rule"], clone.back(r["subject"]), to_ns(r["start_ts"]),
                  None if r["end_ts"] is None else to_ns(r["end_ts"]), r["level"]) for r in rows}
        assert show(found, sc) == show(sc.expected, sc)
        for r in rows:
            key = (r["rule"], clone.back(r["subject"]), to_ns(r["start_ts"]))
            if key in sc.listed:
                cards = sorted(clone.back(c["card"]) for c in json.loads(r["evidence"])["cards"])
                assert (key[0], key[1], hm(key[2], sc), cards) == (key[0], key[1], hm(key[2], sc), sc.listed[key])
        assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
        orders = {to_ns(r["start_ts"]) for r in await conn.fetch(
            "SELECT start_ts FROM orders WHERE withdrawn_at IS NULL AND mine_id = $1", mine_id)}
        assert show({("order", "", o, None, "") for o in orders}, sc) == show(
            {("order", "", o, None, "") for o in sc.orders}, sc)
        if sc.cases:
            await check_cases(shared, conn, sc, clone, {
                (r["rule"], clone.back(r["subject"]), to_ns(r["start_ts"])): r["id"] for r in rows})
    finally:
        rules.stop()
        await running
        # Later scenarios' clock passes (at their own clocks) leave this mine alone.
        await conn.execute("UPDATE mines SET active = false WHERE id = $1", mine_id)
        await conn.close()


def cloned(item: Item, clone: Clone) -> Item:
    """An item in the clone's codes."""
    p = dict(item.payload)
    if "card" in p:
        p["card"], p["station"] = clone.cards[p["card"]], clone.code(p["station"])
    else:
        p["point"] = clone.code(p["point"])
    return Item(item.ts, item.family, p)


async def check_cases(shared: Shared, conn: asyncpg.Connection, sc: Scenario, clone: Clone,
                      ids: dict[tuple[str, str, int], int]) -> None:
    """The real case worker opens a case per finding at the level the file says, and tells the
    regulator as well as the mine where the case is the regulator's (never the regulator alone)."""
    settings = AlertingSettings.model_validate({"routing_path": shared.routing})
    alert_clock = FrozenClock(from_ns(sc.clock_ns) + timedelta(seconds=30))
    for _ in range(2):  # the second run is past the grouping window: the notifications go out
        await AlertingWorker(shared.dsn, settings, registry=CollectorRegistry(), environ={}, delivery=False,
                             clock=alert_clock).run(burst=True)
        alert_clock.advance(timedelta(minutes=2))
    level = {r["finding_id"]: (r["case_id"], r["level"]) for r in await conn.fetch(
        "SELECT cf.finding_id, c.id AS case_id, c.level FROM case_findings cf JOIN cases c ON c.id = cf.case_id")}
    told: dict[int, set[str]] = {}
    for r in await conn.fetch("SELECT case_id, receiver, body::text AS body FROM notifications "
                              "WHERE reason = 'raised' AND state <> 'suppressed'"):
        for c in json.loads(r["body"]).get("case_ids", [r["case_id"]]):
            told.setdefault(int(c), set()).add(r["receiver"])
    for key, want in sc.cases.items():
        case, got = level[ids[key]]
        name = f"{key[0]} {key[1]} {hm(key[2], sc)}"
        assert (name, got) == (name, want)
        receivers = told.get(case, set())
        assert f"m{clone.index}-dispatch" in receivers, (name, receivers)  # the mine is always told
        assert (f"t-{sc.mine.county}" in receivers) == (want == "county"), (name, receivers)
