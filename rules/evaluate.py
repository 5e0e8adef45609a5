"""From a mine's readings to its findings: episodes, events, orders and flags as plain rows (no IO).

The kernels work on arrays; this module turns their output into rows shaped like the
stored ones (`rules.store`), so that re-evaluating a window is a diff of two row sets by
stable identity:

- an episode is identified by (point, start), an event by (gas, scope key, start), an
  order by (rule, start), a finding by (rule, subject, start) within its mine;
- an event holds one gas; its scope key is the point's, face's or mine's code (a point
  with no face is its own scope under ``face``); methane events carry the peak tier;
- orders come from the count rules of kind ``methane_event`` over the mine's whole
  methane event history; the frequent-exceedance flag is one finding per run of
  consecutive methane events whose window holds at least N of them.

Times are int64 ns UTC; stored timestamps are µs, so every time here is a multiple of 1000.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray

from minewatch import rule_ids
from minewatch.rule_ids import exceedance_rule as exceedance_rule  # re-exported: backfill uses it
from minewatch.timeutil import from_ns, rfc3339
from rules.episodes import END_REASONS, LEVEL_NAMES, Episodes, find_episodes_by_version
from rules.events import merge_events
from rules.inputs import MinePoints, Readings, Versions
from rules.orders import apply_count_rule
from rules.packs import RulePack
from rules.severity import high_value, tier_names

I64 = NDArray[np.int64]
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

METHANE = "methane"
ORDER_KIND = "methane_event"  # the count-rule kind these rules count: methane exceedance events
# The rule ids this module emits (defined once, in minewatch.rule_ids).
FREQUENT_RULE = rule_ids.FREQUENT_EXCEEDANCE
HIGH_VALUE_RULE = rule_ids.HIGH_VALUE_EXCEEDANCE
ORDER_RULE = rule_ids.SHUTDOWN_ORDER
THRESHOLD_KEYS = ("alarm_hi", "clear_hi", "poweroff_hi", "restore_hi",
                  "alarm_lo", "clear_lo", "poweroff_lo", "restore_lo")
_LEVEL_CODE = {name: code for code, name in LEVEL_NAMES.items()}


def iso(ns: int | None) -> str | None:
    """An int64 ns time as RFC 3339 UTC (evidence is JSON)."""
    return None if ns is None else rfc3339(from_ns(ns))


@dataclass(frozen=True)
class EpisodeRow:
    """One episode as stored; ``end`` None while open."""

    point_id: int
    start: int
    end: int | None
    end_reason: str | None
    peak: float
    peak_ts: int
    level: str
    threshold_from: int
    thresholds: tuple[float | None, ...]

    @property
    def key(self) -> tuple[int, int]:
        return (self.point_id, self.start)

    @property
    def lower(self) -> bool:
        """Judged by a lower limit (oxygen): its peak is a minimum."""
        return self.thresholds[0] is None and self.thresholds[4] is not None


@dataclass(frozen=True)
class EventRow:
    """One exceedance event as stored, with the identities of its episodes."""

    gas: str
    scope: str
    scope_key: str
    start: int
    end: int | None
    peak: float
    peak_ts: int
    level: str
    tier: str | None
    episodes: tuple[tuple[int, int], ...] = field(compare=False)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.gas, self.scope_key, self.start)

    def reach(self) -> tuple[int, float]:
        """[start, end] as numbers, an open event reaching for ever."""
        return (self.start, math.inf if self.end is None else self.end)


@dataclass(frozen=True)
class OrderRow:
    """One order of one count rule; triggers and attached are event ids."""

    rule: str
    start: int
    min_end: int
    step: int
    triggers: tuple[int, ...]
    attached: tuple[int, ...]


@dataclass(frozen=True)
class FindingRow:
    """A finding as alerting reads it; ``ref_id`` is the typed row's id."""

    rule: str
    subject: str
    start: int
    end: int | None
    level: str
    tier: str | None
    state: str
    ref_table: str | None
    ref_id: int | None
    evidence: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.rule, self.subject, self.start)


# --- episodes -----------------------------------------------------------------------------

def find_episode_rows(readings: Readings, points: MinePoints, versions: Versions, *, exclude_mask: int) -> list[EpisodeRow]:
    """Episodes of readings sorted by (point, ts), with the threshold set each was judged by."""
    if len(readings) == 0:
        return []
    gaps = points.max_gap_ns
    max_gap: I64 | int = int(gaps[0]) if bool(np.all(gaps == gaps[0])) else gaps[readings.point_idx]
    ep = find_episodes_by_version(
        readings.point_idx, readings.ts, readings.value, readings.status, table=versions.table,
        version_point=versions.point_idx, version_from=versions.effective_from, max_gap_ns=max_gap,
        lower_by_point=versions.lower_by_point, exclude_mask=exclude_mask)
    out = []
    for i in range(len(ep)):
        v = int(ep.version[i])
        is_open = bool(ep.is_open[i])
        out.append(EpisodeRow(
            point_id=int(points.ids[ep.point_idx[i]]), start=int(ep.start[i]),
            end=None if is_open else int(ep.end[i]),
            end_reason=None if is_open else END_REASONS[int(ep.end_reason[i])],
            peak=float(ep.peak[i]), peak_ts=int(ep.peak_ts[i]), level=LEVEL_NAMES[int(ep.level[i])],
            threshold_from=int(versions.effective_from[v]), thresholds=versions.values(v)))
    return out


def start_bounds(lo: int, stored: Sequence[EpisodeRow], points: MinePoints) -> I64:
    """Per point, where its recomputation must start so that a window from ``lo`` on is right.

    Readings before ``lo`` are unchanged, so what was decided before ``lo`` stands, except an
    episode still running at ``lo``: open, cleared at or after ``lo``, or ended by a gap that
    a reading in ``[end, end + max_gap]`` would have bridged. Such an episode is recomputed
    from its start (at most one per point: a point's episodes do not overlap).
    """
    bound = np.full(len(points), lo, np.int64)
    for e in stored:
        i = points.index_of(e.point_id)
        if e.start < lo and (e.end is None or e.end + int(points.max_gap_ns[i]) >= lo):
            bound[i] = min(int(bound[i]), e.start)
    return bound


# --- events -------------------------------------------------------------------------------

def scope_of(pack: RulePack, points: MinePoints, point_id: int) -> tuple[str, str]:
    """(scope, key) an episode of this point merges in: the pack's scope, per rules.md §2."""
    i = points.index_of(point_id)
    scope = pack.events.scope
    if scope == "mine":
        return "mine", points.mine_code
    face = points.face_codes[i]
    if scope == "face" and face is not None:
        return "face", face
    return "point", points.codes[i]


def build_events(episodes: Sequence[EpisodeRow], points: MinePoints, pack: RulePack) -> list[EventRow]:
    """Merge episodes into events, one gas at a time (the gas is part of the scope key)."""
    if not episodes:
        return []
    eps = sorted(episodes, key=lambda e: (e.start, e.point_id))
    scopes = [scope_of(pack, points, e.point_id) for e in eps]
    gases = [points.gases[points.index_of(e.point_id)] for e in eps]
    key_of: dict[tuple[str, str], int] = {}
    keys = np.array([key_of.setdefault((g, s[1]), len(key_of)) for g, s in zip(gases, scopes, strict=True)], np.int64)
    n = len(eps)
    is_open = np.array([e.end is None for e in eps])
    start = np.array([e.start for e in eps], np.int64)
    zeros = np.zeros(n, np.int64)
    kernel_eps = Episodes(
        point_idx=zeros, start=start, end=np.array([-1 if e.end is None else e.end for e in eps], np.int64),
        is_open=is_open, peak=np.array([e.peak for e in eps], np.float64),
        peak_ts=np.array([e.peak_ts for e in eps], np.int64),
        level=np.array([_LEVEL_CODE[e.level] for e in eps], np.int8),
        lower=np.array([e.lower for e in eps]), version=zeros, first_row=zeros, last_row=zeros,
        end_row=zeros, end_reason=zeros.astype(np.int8))
    ev = merge_events(kernel_eps, keys, zeros, gap_ns=pack.events.gap)
    tiers = tier_names(ev.peak, pack.severity.kernel_tiers())
    out = []
    for k in range(len(ev)):
        members = ev.episodes_of(k).tolist()
        first = members[0]
        gas = gases[first]
        out.append(EventRow(
            gas=gas, scope=scopes[first][0], scope_key=scopes[first][1], start=int(ev.start[k]),
            end=None if bool(ev.is_open[k]) else int(ev.end[k]), peak=float(ev.peak[k]),
            peak_ts=int(ev.peak_ts[k]), level=LEVEL_NAMES[int(ev.level[k])],
            tier=tiers[k] if gas == METHANE else None, episodes=tuple(eps[j].key for j in members)))
    return out


def event_span(episodes: Sequence[EpisodeRow]) -> tuple[int, float] | None:
    """[earliest start, latest end] of episodes (an open one reaches for ever), None if none."""
    if not episodes:
        return None
    return (min(e.start for e in episodes), max(math.inf if e.end is None else e.end for e in episodes))


# --- orders and flags (over a mine's whole methane event history) --------------------------

def compute_orders(pack: RulePack, event_ids: Sequence[int], event_starts: I64, tz: str) -> list[OrderRow]:
    """Orders of every count rule of kind ``methane_event`` over events sorted by start."""
    out: list[OrderRow] = []
    ids = np.asarray(event_ids, np.int64)
    for rule in pack.count_rules:
        if rule.kind != ORDER_KIND or len(ids) == 0:
            continue
        orders = apply_count_rule(rule, event_starts, tz)
        for k in range(len(orders)):
            out.append(OrderRow(
                rule=rule.id, start=int(orders.start[k]), min_end=int(orders.min_end[k]), step=int(orders.step[k]),
                triggers=tuple(ids[orders.triggers_of(k)].tolist()),
                attached=tuple(ids[orders.attached_of(k)].tolist())))
    return out


def frequent_runs(pack: RulePack, event_starts: I64, tz: str) -> list[tuple[int, int]]:
    """Runs [first, last] (indices) of consecutive events whose window holds >= N events."""
    flag = pack.flags.frequent
    if flag.kind != ORDER_KIND or len(event_starts) == 0:
        return []
    lo, hi = flag.window.bounds(event_starts, tz)
    hot = (hi - lo) >= flag.n
    runs: list[tuple[int, int]] = []
    for i in np.flatnonzero(hot).tolist():
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


# --- findings -----------------------------------------------------------------------------

def event_findings(ev: EventRow, event_id: int, points: MinePoints, pack: RulePack) -> list[FindingRow]:
    """The exceedance finding of an event, and its high-value flag (methane at or above the level)."""
    codes = sorted({points.codes[points.index_of(p)] for p, _ in ev.episodes})
    evidence: dict[str, Any] = {
        "gas": ev.gas, "scope": ev.scope, "scope_key": ev.scope_key, "peak": ev.peak, "peak_ts": iso(ev.peak_ts),
        "level": ev.level, "points": codes, "episodes": len(ev.episodes)}
    if ev.tier is not None:
        evidence["tier"] = ev.tier
    state = "open" if ev.end is None else "closed"
    out = [FindingRow(exceedance_rule(ev.gas), ev.scope_key, ev.start, ev.end, ev.level, ev.tier, state,
                      "exceedance_events", event_id, evidence)]
    level = pack.flags.high_value.peak_at_least
    if ev.gas == METHANE and bool(high_value(np.array([ev.peak]), level)[0]):
        out.append(FindingRow(HIGH_VALUE_RULE, ev.scope_key, ev.start, ev.end, "warning", ev.tier, state,
                              "exceedance_events", event_id,
                              {"peak": ev.peak, "peak_at_least": level, "points": codes, "event_id": event_id}))
    return out


def order_finding(order: OrderRow, order_id: int, pack_name: str, starts: Mapping[int, int]) -> FindingRow:
    """The finding of one order; its subject is the count rule id."""
    evidence = {
        "pack": pack_name, "rule": order.rule, "min_end": iso(order.min_end), "ladder_step": order.step,
        "trigger_event_ids": list(order.triggers), "trigger_starts": [iso(starts[i]) for i in order.triggers],
        "attached_event_ids": list(order.attached)}
    return FindingRow(ORDER_RULE, order.rule, order.start, None, "order", None, "open", "orders", order_id, evidence)


def frequent_finding(mine_code: str, pack: RulePack, ids: Sequence[int], starts: Sequence[int]) -> FindingRow:
    """The frequent-exceedance flag of one run of events (mine-wide; subject = the mine code)."""
    flag = pack.flags.frequent
    evidence = {"n": flag.n, "window": flag.window.model_dump(exclude_none=True), "event_ids": list(ids),
                "event_starts": [iso(s) for s in starts]}
    return FindingRow(FREQUENT_RULE, mine_code, starts[0], None, "warning", None, "open", None, None, evidence)


# --- diffs --------------------------------------------------------------------------------

@dataclass
class Diff(Generic[K, V]):
    """Two row sets by identity: what to insert, update (old, new), delete, and what is equal."""

    inserted: list[V] = field(default_factory=list)
    updated: list[tuple[V, V]] = field(default_factory=list)
    deleted: list[V] = field(default_factory=list)
    unchanged: list[V] = field(default_factory=list)


def diff_rows(old: Sequence[V], new: Sequence[V], key: Callable[[V], K],
              same: Callable[[V, V], bool] | None = None) -> Diff[K, V]:
    """Compare stored rows with recomputed ones by identity."""
    equal = same or (lambda a, b: a == b)
    by_key = {key(r): r for r in old}
    d: Diff[K, V] = Diff()
    seen: set[K] = set()
    for r in new:
        k = key(r)
        seen.add(k)
        before = by_key.get(k)
        if before is None:
            d.inserted.append(r)
        elif equal(before, r):
            d.unchanged.append(r)
        else:
            d.updated.append((before, r))
    d.deleted = [r for r in old if key(r) not in seen]
    return d


def successor(interval: tuple[int, float], candidates: Sequence[tuple[tuple[int, float], V]]) -> V | None:
    """The first candidate (by start) whose [start, end] overlaps an interval: where a vanished
    identity went (merged into a larger event, its start moved, ...)."""
    a, b = interval
    best: tuple[int, V] | None = None
    for (s, e), value in candidates:
        if s <= b and e >= a and (best is None or s < best[0]):
            best = (s, value)
    return None if best is None else best[1]


def plan_spans(windows: Sequence[tuple[int, int]], *, slack_ns: int, piece_ns: int) -> list[tuple[int, int]]:
    """Claimed windows [lo, hi] as the spans to evaluate, in time order: windows closer than
    ``slack_ns`` are evaluated together (one pass over a little more data beats two passes),
    and a span longer than ``piece_ns`` is cut into pieces so that memory stays bounded."""
    merged: list[list[int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1] + slack_ns:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    out: list[tuple[int, int]] = []
    for lo, hi in merged:
        while hi - lo > piece_ns:
            out.append((lo, lo + piece_ns - 1_000))
            lo += piece_ns
        out.append((lo, hi))
    return out
