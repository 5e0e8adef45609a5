"""The rule engine's tables at the edge: dirty windows claimed, typed rows and findings read and written.

Everything here runs inside the caller's transaction: the worker claims a mine's dirty
windows, re-evaluates them, writes the changes and deletes the windows in one commit,
which is what makes a crash at any moment harmless. Rows are written only when they
differ, so that `findings.updated_at` (alerting's watermark) moves only on real change.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from minewatch.timeutil import from_ns, to_ns
from rules.errors import RulesError
from rules.evaluate import THRESHOLD_KEYS, EpisodeRow, EventRow, FindingRow, OrderRow
from rules.load import Conn

# Advisory lock namespace of "one mine is evaluated by one process at a time": (class, mine id).
MINE_LOCK_CLASS = 0x4D57  # "MW"
DIRTY_CHANNEL = "minewatch_dirty"
FINDINGS_CHANNEL = "minewatch_findings"
READINGS_KIND = "readings"
# An accident recorded, corrected or deleted (a trigger on `accidents`, migration 0051): the
# mine's accident count rules are re-counted.
ACCIDENTS_KIND = "accidents"
# The kinds of dirty window this worker derives findings from. The ingest records a window
# for every committed batch of every table (readings, card_reads, station_states); windows of
# any other kind are cleared, not left to pile up (`clear_unevaluated`).
# Station run states (FZSS, the `stations` topic): the integrity rules judge `station_fault`
# from them (rules.integrity_worker), so their windows are evaluated like readings windows.
STATIONS_KIND = "station_states"
# Card reads: the personnel rules (rules.md §7, §4 evacuation) judge them (rules.personnel_worker).
CARDS_KIND = "card_reads"
EVALUATED_KINDS: tuple[str, ...] = (READINGS_KIND, ACCIDENTS_KIND, STATIONS_KIND, CARDS_KIND)


def _ts(ns: int | None) -> datetime | None:
    return None if ns is None else from_ns(ns)


def _ns(when: datetime | None) -> int | None:
    return None if when is None else to_ns(when)


@dataclass(frozen=True)
class DirtyWindow:
    """One claimed dirty window: [lo, hi] inclusive, in ns, of a kind of `EVALUATED_KINDS`."""

    id: int
    lo: int
    hi: int
    rows: int
    kind: str = READINGS_KIND
    urgent: bool = False  # may hold a finding raised at once (migration 0092): claimed ahead of the queue


# --- dirty windows ------------------------------------------------------------------------

# Called by a clock pass between two mines (the worker serves urgent windows there).
Between = Callable[[], Awaitable[object]]


async def claim_mine(conn: Conn, *, limit: int, skip: Iterable[int] = (), urgent_first: bool = False,
                     urgent_only: bool = False) -> tuple[int, list[DirtyWindow]] | None:
    """In the caller's transaction: lock one mine (advisory, per transaction) that has dirty
    windows and claim up to ``limit`` of its oldest; None when no mine is free.

    The mine is the one with the oldest window, or with ``urgent_first`` the one with the
    oldest urgent window if any (a window that may hold a finding raised at once, migration
    0092), or with ``urgent_only`` that mine or none; the caller alternates the first two in a
    backlog so that neither can starve the other. Either way the claim takes the mine's oldest
    windows of every kind, so the order of claims never changes what is found, only when.

    The row lock (SKIP LOCKED) keeps two workers off the same rows, the advisory lock off the
    same mine: windows that arrive for a mine while it is being evaluated wait for the next turn.
    """
    skipped = list(skip)
    kinds = list(EVALUATED_KINDS)
    while True:
        mine_id: int | None = None
        if urgent_first or urgent_only:
            mine_id = await conn.fetchval(
                "SELECT mine_id FROM dirty_windows WHERE urgent AND kind = ANY($1::text[]) "
                "AND NOT (mine_id = ANY($2::int[])) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", kinds, skipped)
        if mine_id is None and not urgent_only:
            mine_id = await conn.fetchval(
                "SELECT mine_id FROM dirty_windows WHERE kind = ANY($1::text[]) AND NOT (mine_id = ANY($2::int[])) "
                "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", kinds, skipped)
        if mine_id is None:
            return None
        if await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", MINE_LOCK_CLASS, mine_id):
            break
        skipped.append(mine_id)
    rows = await conn.fetch(
        "SELECT id, min_ts, max_ts, n_rows, kind, urgent FROM dirty_windows WHERE mine_id = $1 "
        "AND kind = ANY($2::text[]) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED", mine_id, kinds, limit)
    return mine_id, [DirtyWindow(r["id"], to_ns(r["min_ts"]), to_ns(r["max_ts"]), r["n_rows"], r["kind"], r["urgent"])
                     for r in rows]


async def oldest_wait_s(conn: Conn) -> float:
    """How long the oldest window has waited, by the database's clock (0 when none waits)."""
    age: float | None = await conn.fetchval(
        "SELECT extract(epoch FROM now() - created_at)::float8 FROM dirty_windows ORDER BY id LIMIT 1")
    return age or 0.0


async def lock_mine(conn: Conn, mine_id: int) -> None:
    """Wait for a mine's evaluation lock (back-fill), held until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", MINE_LOCK_CLASS, mine_id)


async def delete_windows(conn: Conn, ids: Sequence[int]) -> None:
    """Drop claimed windows (in the transaction that wrote their findings)."""
    await conn.execute("DELETE FROM dirty_windows WHERE id = ANY($1::bigint[])", list(ids))


async def enqueue_window(conn: Conn, mine_id: int, lo_ns: int, hi_ns: int) -> None:
    """Ask for a re-evaluation of [lo, hi] of a mine's readings (as the ingest does)."""
    await conn.execute("INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows) VALUES ($1, $2, $3, $4, 0)",
                       mine_id, READINGS_KIND, from_ns(lo_ns), from_ns(hi_ns))
    await conn.execute("SELECT pg_notify($1, '')", DIRTY_CHANNEL)


async def clear_unevaluated(conn: Conn, *, limit: int) -> int:
    """Delete up to ``limit`` of the oldest windows of kinds no rule here evaluates; returns how many.

    Nothing is derived from them, so there is nothing to roll back with them: the delete
    commits on its own. SKIP LOCKED keeps two workers from queueing behind each other.
    """
    deleted: int = await conn.fetchval(
        "WITH gone AS (DELETE FROM dirty_windows WHERE id IN (SELECT id FROM dirty_windows "
        "WHERE kind <> ALL($1::text[]) ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) "
        "SELECT count(*) FROM gone", list(EVALUATED_KINDS), limit)
    return deleted


async def backlog(conn: Conn) -> tuple[int, float | None]:
    """(windows waiting, age in seconds of the oldest by the database clock) for the lag metric.

    Every kind counts: the worker consumes them all (evaluating or clearing them).
    """
    row = await conn.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age FROM dirty_windows")
    assert row is not None
    return int(row["n"]), row["age"]


async def mine_ids(conn: Conn, codes: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """(id, code) of the mines to evaluate: the given codes (unknown ones are an error), else all."""
    rows = await conn.fetch("SELECT id, code FROM mines ORDER BY id")
    found = [(r["id"], r["code"]) for r in rows]
    if codes is None:
        return found
    known = {code: mid for mid, code in found}
    missing = [c for c in codes if c not in known]
    if missing:
        raise RulesError(f"unknown mine code(s): {', '.join(missing)}")
    return [(known[c], c) for c in codes]


async def last_reading(conn: Conn, point_ids: Sequence[int]) -> dict[int, int]:
    """The newest reading time of each point (points without readings are absent)."""
    rows = await conn.fetch(
        "SELECT p AS point_id, (SELECT r.ts FROM readings r WHERE r.point_id = p ORDER BY r.ts DESC LIMIT 1) AS ts "
        "FROM unnest($1::int[]) AS p", list(point_ids))
    return {r["point_id"]: to_ns(r["ts"]) for r in rows if r["ts"] is not None}


# --- episodes -----------------------------------------------------------------------------

_SELECT_EPISODES = ("SELECT id, point_id, start_ts, end_ts, end_reason, peak, peak_ts, level, thresholds, threshold_from, "
                    "event_id FROM episodes ")


@dataclass(frozen=True)
class Stored:
    """A stored typed row: its id, its row, and the id it links to (event of an episode, ...)."""

    id: int
    row: Any
    link: int | None = None


def _episode(r: asyncpg.Record) -> Stored:
    t = json.loads(r["thresholds"])
    row = EpisodeRow(r["point_id"], to_ns(r["start_ts"]), _ns(r["end_ts"]), r["end_reason"], r["peak"],
                     to_ns(r["peak_ts"]), r["level"], to_ns(r["threshold_from"]), tuple(t.get(k) for k in THRESHOLD_KEYS))
    return Stored(r["id"], row, r["event_id"])


async def episodes_running(conn: Conn, mine_id: int, lo_ns: int, gap_ns: int) -> list[Stored]:
    """Episodes that start before ``lo`` and are open or end at or after ``lo - gap``."""
    rows = await conn.fetch(
        _SELECT_EPISODES + "WHERE mine_id = $1 AND start_ts < $2 AND (end_ts IS NULL OR end_ts >= $3) ORDER BY start_ts",
        mine_id, from_ns(lo_ns), from_ns(lo_ns - gap_ns))
    return [_episode(r) for r in rows]


async def episodes_between(conn: Conn, mine_id: int, lo_ns: int, hi_ns: int) -> list[Stored]:
    """Episodes that start in [lo, hi)."""
    rows = await conn.fetch(
        _SELECT_EPISODES + "WHERE mine_id = $1 AND start_ts >= $2 AND start_ts < $3 ORDER BY start_ts",
        mine_id, from_ns(lo_ns), from_ns(hi_ns))
    return [_episode(r) for r in rows]


async def episodes_of_events(conn: Conn, event_ids: Sequence[int]) -> list[Stored]:
    """The episodes of some events."""
    rows = await conn.fetch(_SELECT_EPISODES + "WHERE event_id = ANY($1::bigint[])",
                            list(event_ids))
    return [_episode(r) for r in rows]


def _thresholds_json(e: EpisodeRow) -> str:
    return json.dumps({k: v for k, v in zip(THRESHOLD_KEYS, e.thresholds, strict=True) if v is not None})


def _episode_args(e: EpisodeRow) -> tuple[Any, ...]:
    return (e.point_id, from_ns(e.start), _ts(e.end), e.end_reason, e.peak, from_ns(e.peak_ts), e.level,
            _thresholds_json(e), from_ns(e.threshold_from))


async def write_episodes(conn: Conn, mine_id: int, inserted: Sequence[EpisodeRow],
                         updated: Sequence[tuple[Stored, EpisodeRow]], deleted: Sequence[Stored]) -> dict[tuple[int, int], int]:
    """Apply an episode diff; returns the ids of the inserted and updated rows by (point, start)."""
    if deleted:
        await conn.execute("DELETE FROM episodes WHERE id = ANY($1::bigint[])", [s.id for s in deleted])
    ids: dict[tuple[int, int], int] = {}
    for old, new in updated:
        await conn.execute(
            "UPDATE episodes SET end_ts = $3, end_reason = $4, peak = $5, peak_ts = $6, level = $7, "
            "thresholds = $8::jsonb, threshold_from = $9, updated_at = now() WHERE id = $1 AND point_id = $2",
            old.id, new.point_id, *_episode_args(new)[2:])
        ids[new.key] = old.id
    for e in inserted:
        ids[e.key] = await conn.fetchval(
            "INSERT INTO episodes (mine_id, point_id, start_ts, end_ts, end_reason, peak, peak_ts, level, thresholds, "
            "threshold_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10) RETURNING id",
            mine_id, *_episode_args(e))
    return ids


async def link_episodes(conn: Conn, links: Sequence[tuple[int, int]]) -> None:
    """Set episodes.event_id where it differs: (episode id, event id) pairs."""
    if links:
        await conn.execute(
            "UPDATE episodes e SET event_id = l.event_id FROM unnest($1::bigint[], $2::bigint[]) AS l(id, event_id) "
            "WHERE e.id = l.id AND e.event_id IS DISTINCT FROM l.event_id",
            [a for a, _ in links], [b for _, b in links])


async def episode_ids(conn: Conn, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], int]:
    """Ids of episodes by (point, start)."""
    rows = await conn.fetch(
        "SELECT e.id, e.point_id, e.start_ts FROM episodes e JOIN unnest($1::int[], $2::timestamptz[]) AS k(p, s) "
        "ON e.point_id = k.p AND e.start_ts = k.s", [p for p, _ in keys], [from_ns(s) for _, s in keys])
    return {(r["point_id"], to_ns(r["start_ts"])): r["id"] for r in rows}


# --- events -------------------------------------------------------------------------------

_SELECT_EVENTS = ("SELECT id, gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, tier, order_id "
                  "FROM exceedance_events ")


def _event(r: asyncpg.Record) -> Stored:
    row = EventRow(r["gas"], r["scope"], r["scope_key"], to_ns(r["start_ts"]), _ns(r["end_ts"]), r["peak"],
                   to_ns(r["peak_ts"]), r["level"], r["tier"], ())
    return Stored(r["id"], row, r["order_id"])


async def events_near(conn: Conn, mine_id: int, gas: str, lo_ns: int, hi_ns: float) -> list[Stored]:
    """Events of a gas whose [start, end] (open: for ever) meets [lo, hi] (hi may be infinite)."""
    upper = "" if hi_ns == float("inf") else "AND start_ts <= $4 "
    args: list[Any] = [mine_id, gas, from_ns(lo_ns)] + ([] if upper == "" else [from_ns(int(hi_ns))])
    rows = await conn.fetch(
        _SELECT_EVENTS + "WHERE mine_id = $1 AND gas = $2 AND (end_ts IS NULL OR end_ts >= $3) " + upper
        + "ORDER BY start_ts", *args)
    return [_event(r) for r in rows]


async def write_events(conn: Conn, mine_id: int, inserted: Sequence[EventRow],
                       updated: Sequence[tuple[Stored, EventRow]], deleted: Sequence[Stored]) -> dict[tuple[str, str, int], int]:
    """Apply an event diff; returns ids of inserted and updated events by identity."""
    if deleted:
        await conn.execute("DELETE FROM exceedance_events WHERE id = ANY($1::bigint[])", [s.id for s in deleted])
    ids: dict[tuple[str, str, int], int] = {}
    for old, new in updated:
        await conn.execute(
            "UPDATE exceedance_events SET scope = $2, end_ts = $3, peak = $4, peak_ts = $5, level = $6, tier = $7, "
            "updated_at = now() WHERE id = $1", old.id, new.scope, _ts(new.end), new.peak, from_ns(new.peak_ts),
            new.level, new.tier)
        ids[new.key] = old.id
    for ev in inserted:
        ids[ev.key] = await conn.fetchval(
            "INSERT INTO exceedance_events (mine_id, gas, scope, scope_key, start_ts, end_ts, peak, peak_ts, level, tier) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            mine_id, ev.gas, ev.scope, ev.scope_key, from_ns(ev.start), _ts(ev.end), ev.peak, from_ns(ev.peak_ts),
            ev.level, ev.tier)
    return ids


async def methane_events(conn: Conn, mine_id: int) -> list[asyncpg.Record]:
    """(id, start_ts, order_id) of every methane event of a mine, by start: the count rules' input."""
    return list(await conn.fetch(
        "SELECT id, start_ts, order_id FROM exceedance_events WHERE mine_id = $1 AND gas = 'methane' "
        "ORDER BY start_ts, id", mine_id))


async def accidents_of(conn: Conn, mine_id: int) -> list[asyncpg.Record]:
    """(id, occurred_at, severity) of every accident of a mine, by time: the accident rules' input."""
    return list(await conn.fetch(
        "SELECT id, occurred_at, severity FROM accidents WHERE mine_id = $1 ORDER BY occurred_at, id", mine_id))


# --- orders -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StoredOrder:
    """A stored order with its trigger and attached events (ids, ascending)."""

    id: int
    row: OrderRow
    withdrawn: bool


async def orders_of(conn: Conn, mine_id: int, rules: Sequence[str]) -> list[StoredOrder]:
    """Every order of these rules of a mine, withdrawn ones included."""
    rows = await conn.fetch(
        "SELECT o.id, o.rule, o.start_ts, o.min_end_ts, o.ladder_step, o.withdrawn_at IS NOT NULL AS withdrawn, "
        "coalesce(array_agg(e.event_id ORDER BY e.event_id) FILTER (WHERE e.role = 'trigger'), '{}') AS triggers, "
        "coalesce(array_agg(e.event_id ORDER BY e.event_id) FILTER (WHERE e.role = 'attached'), '{}') AS attached "
        "FROM orders o LEFT JOIN order_events e ON e.order_id = o.id WHERE o.mine_id = $1 AND o.rule = ANY($2::text[]) "
        "GROUP BY o.id ORDER BY o.start_ts", mine_id, list(rules))
    return [StoredOrder(r["id"], OrderRow(r["rule"], to_ns(r["start_ts"]), to_ns(r["min_end_ts"]), r["ladder_step"],
                                          tuple(r["triggers"]), tuple(r["attached"])), r["withdrawn"]) for r in rows]


async def write_order(conn: Conn, mine_id: int, pack: str, order: OrderRow, stored: StoredOrder | None) -> int:
    """Insert an order, or bring a stored one (matched by start or by overlap) to this content.

    A restored order (withdrawn before) is active again; otherwise its lifecycle state,
    which alerting owns, is left alone.
    """
    if stored is None:
        oid: int = await conn.fetchval(
            "INSERT INTO orders (mine_id, rule, pack, start_ts, min_end_ts, ladder_step) VALUES ($1, $2, $3, $4, $5, $6) "
            "RETURNING id", mine_id, order.rule, pack, from_ns(order.start), from_ns(order.min_end), order.step)
    else:
        oid = stored.id
        await conn.execute(
            "UPDATE orders SET pack = $2, start_ts = $3, min_end_ts = $4, ladder_step = $5, withdrawn_at = NULL, "
            "state = CASE WHEN withdrawn_at IS NULL THEN state ELSE 'active' END, "
            "lifted_at = CASE WHEN withdrawn_at IS NULL THEN lifted_at END, updated_at = now() WHERE id = $1",
            oid, pack, from_ns(order.start), from_ns(order.min_end), order.step)
    await recheck_entries(conn, oid, since_ns=order.start if stored is None else min(order.start, stored.row.start))
    if stored is None or (sorted(order.triggers), sorted(order.attached)) != (
            list(stored.row.triggers), list(stored.row.attached)):
        await conn.execute("DELETE FROM order_events WHERE order_id = $1", oid)
        await conn.executemany(
            "INSERT INTO order_events (order_id, event_id, role) VALUES ($1, $2, $3)",
            [(oid, e, "trigger") for e in order.triggers] + [(oid, e, "attached") for e in order.attached])
    return oid


async def withdraw_order(conn: Conn, order_id: int) -> None:
    """An order whose count no longer holds: withdrawn and lifted, kept for the cases that cite it."""
    await conn.execute(
        "UPDATE orders SET withdrawn_at = now(), state = 'lifted', lifted_at = coalesce(lifted_at, now()), "
        "updated_at = now() WHERE id = $1", order_id)
    await conn.execute("DELETE FROM order_events WHERE order_id = $1", order_id)
    await recheck_entries(conn, order_id)


async def recheck_entries(conn: Conn, order_id: int, *, since_ns: int | None = None) -> None:
    """An order written, moved or withdrawn changes which card entries and production signals
    already judged are seal breaches (rules.md §7): ask the personnel rules to judge the mine
    again from the order's start (or ``since``) to now (a day on, for a clock ahead of the
    database's), as a card-read window, claimed ahead of the queue (a breach is reported at once)."""
    await conn.execute(
        "INSERT INTO dirty_windows (mine_id, kind, min_ts, max_ts, n_rows, urgent) "
        "SELECT mine_id, $2, coalesce($3, start_ts), greatest(start_ts, now()) + interval '1 day', 0, true "
        "FROM orders WHERE id = $1", order_id, CARDS_KIND, None if since_ns is None else from_ns(since_ns))
    await conn.execute("SELECT pg_notify($1, '')", DIRTY_CHANNEL)


async def set_event_orders(conn: Conn, pairs: Sequence[tuple[int, int | None]]) -> None:
    """Set exceedance_events.order_id: (event id, order id or None) pairs."""
    if pairs:
        await conn.execute(
            "UPDATE exceedance_events e SET order_id = p.order_id FROM unnest($1::bigint[], $2::bigint[]) AS p(id, order_id) "
            "WHERE e.id = p.id AND e.order_id IS DISTINCT FROM p.order_id",
            [a for a, _ in pairs], [b for _, b in pairs])


# --- findings -----------------------------------------------------------------------------

_SELECT_FINDINGS = ("SELECT id, rule, subject, start_ts, end_ts, level, tier, state, superseded_by, ref_table, ref_id, "
                    "evidence FROM findings ")


@dataclass(frozen=True)
class StoredFinding:
    """A stored finding: id, row, state and successor."""

    id: int
    row: FindingRow
    superseded_by: int | None

    @property
    def live(self) -> bool:
        return self.row.state != "superseded"


def _finding(r: asyncpg.Record) -> StoredFinding:
    row = FindingRow(r["rule"], r["subject"], to_ns(r["start_ts"]), _ns(r["end_ts"]), r["level"], r["tier"],
                     r["state"], r["ref_table"], r["ref_id"], json.loads(r["evidence"]))
    return StoredFinding(r["id"], row, r["superseded_by"])


async def findings_by_key(conn: Conn, mine_id: int, keys: Iterable[tuple[str, str, int]]) -> list[StoredFinding]:
    """Findings of a mine with these (rule, subject, start) identities."""
    k = sorted(set(keys))
    if not k:
        return []
    rows = await conn.fetch(
        _SELECT_FINDINGS + "JOIN unnest($2::text[], $3::text[], $4::timestamptz[]) AS k(rule, subject, start_ts) "
        "USING (rule, subject, start_ts) WHERE mine_id = $1",
        mine_id, [a for a, _, _ in k], [b for _, b, _ in k], [from_ns(c) for _, _, c in k])
    return [_finding(r) for r in rows]


async def findings_of_rule(conn: Conn, mine_id: int, rule: str) -> list[StoredFinding]:
    """Every finding of one rule of a mine (orders and mine flags are few)."""
    rows = await conn.fetch(_SELECT_FINDINGS + "WHERE mine_id = $1 AND rule = $2",
                            mine_id, rule)
    return [_finding(r) for r in rows]


async def findings_touching(conn: Conn, mine_id: int, rules: Sequence[str], lo_ns: int, hi_ns: int) -> list[StoredFinding]:
    """Live findings of these rules of a mine whose span [start, end] (open: for ever) touches [lo, hi]."""
    rows = await conn.fetch(
        _SELECT_FINDINGS + "WHERE mine_id = $1 AND rule = ANY($2::text[]) AND state <> 'superseded' "
        "AND start_ts <= $4 AND (end_ts IS NULL OR end_ts >= $3) ORDER BY start_ts",
        mine_id, list(rules), from_ns(lo_ns), from_ns(hi_ns))
    return [_finding(r) for r in rows]


async def upsert_finding(conn: Conn, mine_id: int, f: FindingRow) -> int:
    """Insert a finding or bring the row with its identity to this content (live again)."""
    fid: int = await conn.fetchval(
        "INSERT INTO findings (rule, mine_id, subject, start_ts, end_ts, level, tier, state, ref_table, ref_id, evidence) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb) ON CONFLICT (rule, mine_id, subject, start_ts) "
        "DO UPDATE SET end_ts = EXCLUDED.end_ts, level = EXCLUDED.level, tier = EXCLUDED.tier, state = EXCLUDED.state, "
        "superseded_by = NULL, ref_table = EXCLUDED.ref_table, ref_id = EXCLUDED.ref_id, evidence = EXCLUDED.evidence, "
        "updated_at = now() RETURNING id",
        f.rule, mine_id, f.subject, from_ns(f.start), _ts(f.end), f.level, f.tier, f.state, f.ref_table, f.ref_id,
        json.dumps(f.evidence))
    return fid


async def supersede(conn: Conn, finding_id: int, successor: int | None) -> None:
    """Mark a finding superseded by its successor, or withdrawn (no successor: its basis vanished)."""
    await conn.execute(
        "UPDATE findings SET state = 'superseded', superseded_by = $2, updated_at = now(), "
        "evidence = CASE WHEN $2::bigint IS NULL THEN evidence || '{\"withdrawn\": true}'::jsonb ELSE evidence END "
        "WHERE id = $1", finding_id, successor)


async def notify_findings(conn: Conn) -> None:
    """Wake alerting (delivered when the transaction commits)."""
    await conn.execute("SELECT pg_notify($1, '')", FINDINGS_CHANNEL)


# Where a finding no longer desired goes: the id of the desired finding now covering it, if any.
Successor = Callable[[FindingRow, Sequence[tuple[FindingRow, int]]], int | None]


class FindingTally(Protocol):
    """What `apply_findings` counts into (rules.backfill.Tally)."""

    findings: Counter[str]

    def same(self, kind: str, keys: Iterable[tuple[object, ...]]) -> None: ...


async def apply_findings(conn: Conn, mine_id: int, desired: Sequence[FindingRow], stored: Sequence[StoredFinding],
                         successor_of: Successor, tally: FindingTally) -> bool:
    """Make the stored findings of a span what the rules now find: upsert the desired findings
    that differ, supersede live stored ones no longer desired (pointing at `successor_of` them);
    returns whether anything was written. One owner for every rule family (methane, accidents,
    integrity, personnel); each family decides only what succeeds a vanished finding."""
    by_key = {s.row.key: s for s in stored}
    placed: list[tuple[FindingRow, int]] = []
    changed = False
    for f in desired:
        s = by_key.get(f.key)
        if s is not None and s.live and s.row == f:
            tally.same("findings", [(mine_id, *f.key)])
            placed.append((f, s.id))
            continue
        placed.append((f, await upsert_finding(conn, mine_id, f)))
        tally.findings["created" if s is None else "updated"] += 1
        changed = True
    wanted = {f.key for f in desired}
    for s in stored:
        if s.live and s.row.key not in wanted:
            await supersede(conn, s.id, successor_of(s.row, placed))
            tally.findings["superseded"] += 1
            changed = True
    return changed
