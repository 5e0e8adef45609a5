"""Re-evaluating spans of a mine's readings — the one code path of streaming and back-fill — and back-fill.

`reevaluate` takes spans [lo, hi] of changed readings of one mine. For each span it (1)
widens the span per point to the boundaries of the episodes that overlap it — an episode
running at the span's start is recomputed from its start, and the span ends only where
both the stored and the recomputed episodes are closed — and diffs the recomputed episodes
with the stored ones; (2) re-merges the events within the merge gap of every changed
episode, diffs them by identity and supersedes the findings of events that vanished
(merged, moved) with their successors; (3) when a methane event appeared or vanished,
re-runs the count rules and the frequent flag over the mine's whole methane event history
(orders are never duplicated: a stored order is matched by start, then by overlap). When an
accident was recorded or corrected (and once per mine in back-fill) the accident count rules
run over the mine's whole accident history (`rules.accidents`: special inspections).
Silence never closes an episode: it stays open until a reading clears it.

The streaming worker (`rules.worker`) runs it on the dirty windows it claims; `backfill`
runs it over history, mine by mine and chunk by chunk, each chunk one transaction under
the same per-mine lock as the worker, so the two can run side by side. Chunks overlap
exactly as streaming windows do, so a back-fill of data the worker has seen changes
nothing, and a second back-fill changes nothing either. The range should start before the
data or at a quiet time: an exceedance already running at ``since`` (with no stored
episode to say so) starts, for this run, at ``since``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg
import numpy as np

from minewatch.clock import Clock, SystemClock
from minewatch.timeutil import from_ns, to_ns
from rules import store
from rules.accidents import ACCIDENT_KIND, INSPECTION_RULE, inspection_findings
from rules.errors import RulesError
from rules.evaluate import (
    FREQUENT_RULE,
    HIGH_VALUE_RULE,
    METHANE,
    ORDER_KIND,
    ORDER_RULE,
    EpisodeRow,
    FindingRow,
    OrderRow,
    build_events,
    compute_orders,
    diff_rows,
    event_findings,
    event_span,
    exceedance_rule,
    find_episode_rows,
    frequent_finding,
    frequent_runs,
    order_finding,
    start_bounds,
    successor,
)
from rules.inputs import MinePoints, Versions
from rules.integrity_worker import reevaluate_integrity
from rules.load import Conn, load_points, load_readings, load_versions
from rules.packs import RulePack
from rules.personnel_worker import reevaluate_personnel
from rules.store import Stored, StoredOrder

US = 1_000  # stored times have µs resolution; bounds step by one stored tick
HOUR = 3_600 * 1_000_000_000


@dataclass
class Tally:
    """What evaluations did: readings read, and rows created / updated / deleted / unchanged."""

    readings: int = 0
    windows: int = 0
    cleared: int = 0  # dirty windows of kinds no rule evaluates, deleted (the worker's)
    episodes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    orders: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    # Rows found unchanged, by identity: overlapping spans compare some rows twice, and a
    # summary should count rows, not comparisons.
    _same: set[tuple[object, ...]] = field(default_factory=set, repr=False)

    def same(self, kind: str, keys: Iterable[tuple[object, ...]]) -> None:
        """Count rows found unchanged (each identity once per run)."""
        counter: Counter[str] = getattr(self, kind)
        for k in keys:
            if (kind, *k) not in self._same:
                self._same.add((kind, *k))
                counter["unchanged"] += 1

    def changes(self) -> int:
        """Rows written (anything but unchanged)."""
        return sum(n for c in (self.episodes, self.events, self.orders, self.findings)
                   for k, n in c.items() if k != "unchanged")


@dataclass
class _EpisodeChange:
    inserted: list[EpisodeRow]
    updated: list[tuple[EpisodeRow, EpisodeRow]]
    deleted: list[EpisodeRow]
    ids: dict[tuple[int, int], int]
    recomputed: list[EpisodeRow]  # every episode of the widened span, changed or not


async def reevaluate(conn: Conn, pack: RulePack, mine_id: int, spans: Sequence[tuple[int, int]], *,
                     tally: Tally, full: bool = False, recount: bool = False, accidents: bool = False) -> bool:
    """Re-evaluate spans [lo, hi] (ns, inclusive, in time order) of one mine's readings in the
    caller's transaction, and its accident count rules when ``accidents`` (an accident was
    recorded or corrected); True when a finding changed.

    Streaming re-merges only the events near episodes that changed, and re-counts only when a
    methane event appeared or vanished. Back-fill passes ``full``, which re-derives the events
    and findings of every episode of the spans, and ``recount`` once per mine (the methane and
    the accident count rules): the pack (tiers, flags, count rules) may be new to this data;
    what was right stays unchanged.
    """
    points = await load_points(conn, mine_id)
    changed = False
    if accidents or recount:  # a mine without evaluated points may still have accidents
        changed = await _accident_phase(conn, pack, points, tally)
    if len(points) == 0:
        return changed
    versions = await load_versions(conn, points)
    methane_changed = recount
    for lo, hi in spans:
        change = await _episode_phase(conn, pack, points, versions, lo, hi, tally)
        m, c = await _event_phase(conn, pack, points, change, tally, full=full)
        methane_changed, changed = methane_changed or m, changed or c
    if methane_changed:
        changed = await _order_phase(conn, pack, points, tally) or changed
    return changed


async def _episode_phase(conn: Conn, pack: RulePack, points: MinePoints, versions: Versions,
                         lo: int, hi: int, tally: Tally) -> _EpisodeChange:
    mine_id, ids = points.mine_id, set(points.ids.tolist())
    running = await store.episodes_running(conn, mine_id, lo, int(points.max_gap_ns.max()))
    a = start_bounds(lo, [s.row for s in running if s.row.point_id in ids], points)
    b = np.full(len(points), hi + US, np.int64)
    last: dict[int, int] | None = None
    step = HOUR
    while True:
        stored = [s for s in await store.episodes_between(conn, mine_id, int(a.min()), int(b.max()))
                  if s.row.point_id in ids]
        moved = False
        for s in stored:  # a stored episode running at a point's end bound moves the bound past it
            i = points.index_of(s.row.point_id)
            if a[i] <= s.row.start < b[i]:
                if s.row.end is None:
                    last = last if last is not None else await store.last_reading(conn, points.ids.tolist())
                    bound = last.get(s.row.point_id, s.row.start) + US
                else:
                    bound = s.row.end + US
                if bound > b[i]:
                    b[i], moved = bound, True
        if moved:
            continue
        readings = await load_readings(conn, points, int(a.min()), int(b.max()))
        p = readings.point_idx
        if not (bool(np.all(a == a[0])) and bool(np.all(b == b[0]))):
            readings = readings.take((readings.ts >= a[p]) & (readings.ts < b[p]))
        new = find_episode_rows(readings, points, versions, exclude_mask=pack.episodes.exclude_mask)
        grow = False
        for e in new:  # still open at the bound while later readings exist: read further
            if e.end is None:
                last = last if last is not None else await store.last_reading(conn, points.ids.tolist())
                i, newest = points.index_of(e.point_id), last.get(e.point_id)
                if newest is not None and newest >= b[i]:
                    b[i], grow = min(int(b[i]) + step, newest + US), True
        if not grow:
            break
        step *= 2
    tally.readings += len(readings)
    old = {s.row.key: s for s in stored if a[points.index_of(s.row.point_id)] <= s.row.start < b[points.index_of(s.row.point_id)]}
    d = diff_rows([s.row for s in old.values()], new, key=lambda r: r.key)
    written = await store.write_episodes(conn, mine_id, d.inserted, [(old[o.key], n) for o, n in d.updated],
                                         [old[o.key] for o in d.deleted])
    tally.episodes.update(created=len(d.inserted), updated=len(d.updated), deleted=len(d.deleted))
    tally.same("episodes", ((mine_id, *r.key) for r in d.unchanged))
    return _EpisodeChange(d.inserted, d.updated, d.deleted, written, new)


async def _event_phase(conn: Conn, pack: RulePack, points: MinePoints, change: _EpisodeChange,
                       tally: Tally, *, full: bool) -> tuple[bool, bool]:
    """Re-merge the events near changed episodes (all recomputed ones when ``full``);
    (methane identities changed, findings changed)."""
    touched = [*change.inserted, *change.deleted, *(r for pair in change.updated for r in pair)]
    if full:
        touched += change.recomputed
    by_gas: dict[str, list[EpisodeRow]] = {}
    for r in touched:
        by_gas.setdefault(points.gases[points.index_of(r.point_id)], []).append(r)
    methane_changed = findings_changed = False
    gap = pack.events.gap
    for gas, rows in sorted(by_gas.items()):
        span = event_span(rows)
        assert span is not None
        near = await store.events_near(conn, points.mine_id, gas, span[0] - gap, span[1] + gap)
        episodes = {s.row.key: s for s in await store.episodes_of_events(conn, [s.id for s in near])}
        for r in change.inserted:
            if points.gases[points.index_of(r.point_id)] == gas:
                episodes[r.key] = Stored(change.ids[r.key], r)
        new = build_events([s.row for s in episodes.values()], points, pack)
        before = {s.row.key: s for s in near}
        d = diff_rows([s.row for s in near], new, key=lambda r: r.key)
        ids = {k: s.id for k, s in before.items()}
        ids.update(await store.write_events(conn, points.mine_id, d.inserted, [(before[o.key], n) for o, n in d.updated],
                                            [before[o.key] for o in d.deleted]))
        tally.events.update(created=len(d.inserted), updated=len(d.updated), deleted=len(d.deleted))
        tally.same("events", ((points.mine_id, *r.key) for r in d.unchanged))
        await store.link_episodes(conn, [(episodes[k].id, ids[ev.key]) for ev in new for k in ev.episodes
                                         if episodes[k].link != ids[ev.key]])
        desired = [f for ev in new for f in event_findings(ev, ids[ev.key], points, pack)]
        # High-value flags are methane's alone: a CO event of the same face and start must not
        # claim (and supersede) the methane flag that shares its subject and start.
        rules = (exceedance_rule(gas), HIGH_VALUE_RULE) if gas == METHANE else (exceedance_rule(gas),)
        stored = await store.findings_by_key(conn, points.mine_id, [f.key for f in desired] + [
            (rule, s.row.scope_key, s.row.start) for s in near for rule in rules])
        findings_changed = await store.apply_findings(conn, points.mine_id, desired, stored, _overlapping, tally) \
            or findings_changed
        methane_changed = methane_changed or (gas == METHANE and bool(d.inserted or d.deleted))
    return methane_changed, findings_changed


async def _order_phase(conn: Conn, pack: RulePack, points: MinePoints, tally: Tally) -> bool:
    """Orders and the frequent flag from the mine's whole methane event history."""
    events = await store.methane_events(conn, points.mine_id)
    event_ids = [int(r["id"]) for r in events]
    starts = np.array([to_ns(r["start_ts"]) for r in events], np.int64)
    start_of = dict(zip(event_ids, starts.tolist(), strict=True))
    new = compute_orders(pack, event_ids, starts, points.timezone)
    rules = [r.id for r in pack.count_rules if r.kind == ORDER_KIND]
    stored = await store.orders_of(conn, points.mine_id, rules)
    matched = _match_orders(new, stored)
    order_of: dict[int, int] = {}
    placed: list[tuple[OrderRow, int]] = []
    for o, s in zip(new, matched, strict=True):
        canonical = dataclasses.replace(o, triggers=tuple(sorted(o.triggers)), attached=tuple(sorted(o.attached)))
        if s is not None and not s.withdrawn and s.row == canonical:
            oid = s.id
            tally.same("orders", [(points.mine_id, o.rule, o.start)])
        else:
            oid = await store.write_order(conn, points.mine_id, pack.name, o, s)
            tally.orders["created" if s is None else "updated"] += 1
        order_of.update(dict.fromkeys((*o.triggers, *o.attached), oid))
        placed.append((o, oid))
    used = {s.id for s in matched if s is not None}
    for s in stored:
        if s.id not in used and not s.withdrawn:
            await store.withdraw_order(conn, s.id)
            tally.orders["withdrawn"] += 1
    await store.set_event_orders(conn, [(int(r["id"]), order_of.get(int(r["id"]))) for r in events
                                        if r["order_id"] != order_of.get(int(r["id"]))])
    desired = [order_finding(o, oid, pack.name, start_of) for o, oid in placed]
    stored_f = [f for f in await store.findings_of_rule(conn, points.mine_id, ORDER_RULE) if f.row.subject in rules]
    changed = await store.apply_findings(conn, points.mine_id, desired, stored_f, _same_ref, tally)
    runs = frequent_runs(pack, starts, points.timezone)
    desired = [frequent_finding(points.mine_code, pack, event_ids[a:b + 1], starts[a:b + 1].tolist()) for a, b in runs]
    stored_f = await store.findings_of_rule(conn, points.mine_id, FREQUENT_RULE)
    return await store.apply_findings(conn, points.mine_id, desired, stored_f, _shared_events, tally) or changed


async def _accident_phase(conn: Conn, pack: RulePack, points: MinePoints, tally: Tally) -> bool:
    """Special inspections from the mine's whole accident history (a handful of rows)."""
    rows = await store.accidents_of(conn, points.mine_id)
    times = np.array([to_ns(r["occurred_at"]) for r in rows], np.int64)
    desired = inspection_findings(pack, points.mine_code, [int(r["id"]) for r in rows], times,
                                  [r["severity"] for r in rows], points.timezone)
    # Findings of accident rules this pack does not hold are left alone, as orders are.
    rules = {r.id for r in pack.count_rules if r.kind == ACCIDENT_KIND}
    stored = [f for f in await store.findings_of_rule(conn, points.mine_id, INSPECTION_RULE)
              if f.row.evidence.get("rule") in rules]
    return await store.apply_findings(conn, points.mine_id, desired, stored, _shared_accidents, tally)


def _match_orders(new: Sequence[OrderRow], stored: Sequence[StoredOrder]) -> list[StoredOrder | None]:
    """Per recomputed order, the stored order it is: same (rule, start), else the first unused
    one of the rule it overlaps (its trigger's start moved under late data)."""
    by_start = {(s.row.rule, s.row.start): s for s in stored}
    matched = [by_start.get((o.rule, o.start)) for o in new]
    used = {s.id for s in matched if s is not None}
    for k, o in enumerate(new):
        if matched[k] is None:
            for s in stored:
                if s.id not in used and s.row.rule == o.rule and s.row.start < o.min_end and o.start < s.row.min_end:
                    matched[k] = s
                    used.add(s.id)
                    break
    return matched


def _overlapping(old: FindingRow, placed: Sequence[tuple[FindingRow, int]]) -> int | None:
    """An event's finding goes to the same rule's finding of the event now covering its time."""
    span = (old.start, float("inf") if old.end is None else old.end)
    return successor(span, [((f.start, float("inf") if f.end is None else f.end), fid) for f, fid in placed
                            if f.rule == old.rule and f.subject == old.subject])


def _same_ref(old: FindingRow, placed: Sequence[tuple[FindingRow, int]]) -> int | None:
    """An order's finding goes to the finding of the same order row (its start moved)."""
    return next((fid for f, fid in placed if f.ref_id == old.ref_id), None)


def _shared_events(old: FindingRow, placed: Sequence[tuple[FindingRow, int]]) -> int | None:
    """A frequent flag goes to the flag whose run shares an event with it."""
    mine = set(old.evidence.get("event_ids", ()))
    return next((fid for f, fid in placed if mine & set(f.evidence["event_ids"])), None)


def _shared_accidents(old: FindingRow, placed: Sequence[tuple[FindingRow, int]]) -> int | None:
    """A special inspection goes to the one that now counts one of its accidents (a back-dated
    accident moved which accident completes the count)."""
    mine = set(old.evidence.get("accident_ids", ()))
    return next((fid for f, fid in placed if mine & set(f.evidence["accident_ids"])), None)


@dataclass(frozen=True)
class Progress:
    """Where a back-fill is: chunks done of all, readings read so far, seconds since it began."""

    mine: str
    chunks_done: int
    chunks: int
    readings: int
    seconds: float

    @property
    def rate(self) -> float:
        """Readings per second so far."""
        return self.readings / self.seconds if self.seconds > 0 else 0.0


async def backfill(dsn: str, pack: RulePack, *, since_ns: int, until_ns: int, mines: Sequence[str] | None = None,
                   chunk_ns: int = 86_400 * 1_000_000_000,
                   progress: Callable[[Progress], None] | None = None, clock: Clock | None = None,
                   integrity: bool = True, personnel: bool = True) -> Tally:
    """Re-evaluate [since, until) for the given mine codes (all mines when None); returns the tally.

    The integrity rules (rules.integrity_worker) judge each chunk too, at ``clock``'s present
    (the system clock by default), as the streaming worker does; so do the personnel rules
    (rules.personnel_worker) on the chunk's card reads."""
    now = clock or SystemClock()
    if until_ns <= since_ns:
        raise RulesError(f"back-fill range is empty: {from_ns(since_ns).isoformat()} .. {from_ns(until_ns).isoformat()}")
    if chunk_ns <= 0:
        raise RulesError("a back-fill chunk must be positive")
    tally = Tally()
    began = time.monotonic()
    try:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": "minewatch-backfill", "timezone": "UTC"})
    except (OSError, asyncpg.PostgresError) as exc:
        raise RulesError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        targets = await store.mine_ids(conn, mines)
        per_mine = -(-(until_ns - since_ns) // chunk_ns)
        total, done = per_mine * len(targets), 0
        for mine_id, code in targets:
            for k in range(per_mine):
                lo = since_ns + k * chunk_ns
                hi = min(lo + chunk_ns, until_ns) - US
                async with conn.transaction():
                    await store.lock_mine(conn, mine_id)
                    # Every chunk re-derives its events and findings; the count rules run once per
                    # mine at its last chunk (and whenever a methane event appears or vanishes).
                    changed = await reevaluate(conn, pack, mine_id, [(lo, hi)], tally=tally, full=True,
                                               recount=k == per_mine - 1)
                    if integrity:
                        changed = await reevaluate_integrity(conn, mine_id, [(lo, hi)], now_ns=to_ns(now.now()),
                                                             tally=tally) or changed
                    if personnel:
                        changed = await reevaluate_personnel(
                            conn, mine_id, [(lo, hi)], now_ns=to_ns(now.now()), tally=tally, settings=pack.personnel,
                            exclude_mask=pack.episodes.exclude_mask) or changed
                    if changed:
                        await store.notify_findings(conn)
                done += 1
                if progress is not None:
                    progress(Progress(code, done, total, tally.readings, time.monotonic() - began))
    finally:
        await conn.close()
    return tally
