"""The personnel rules' findings as rows (no IO): a mine's personnel layout as arrays, and the
kernels of `rules.personnel` turned into `findings` rows with the contract's rule ids, the
subjects and levels of rules.md's table "Findings of §4 and §6–§8 at a glance" and evidence.

`rules.personnel_worker` loads the arrays from PostgreSQL, calls `evaluate` and writes the rows.
Evidence holds nothing that moves with the clock alone, so a later pass at a later clock
rewrites nothing while a span stays open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rules.evaluate import FindingRow, iso
from rules.packs import PersonnelSettings
from rules.personnel import (
    PersonnelParams,
    area_counts,
    capacity,
    card_breaches,
    evacuation,
    find_presence,
    leader,
    mine_counts,
    no_leader,
    over_capacity,
    overtime,
    restricted,
    restricted_visits,
    seal,
    shift_bounds,
    work_continued,
)
from rules.personnel.capacity import LEVEL_NAMES
from rules.personnel.leader import ROLE_NAMES
from rules.personnel.overtime import RULE as OVERTIME_RULE
from rules.personnel.presence import Presence, Stays
from rules.personnel.seal import SignalSpans, signal_breaches, signal_spans

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
S = 1_000_000_000
FOREVER = 2**62

OVER_CAPACITY = capacity.RULE
NO_LEADER = leader.RULE
OVERTIME = OVERTIME_RULE
RESTRICTED_AREA = restricted.RULE
SEAL_BREACH = seal.RULE
WORK_CONTINUED = evacuation.RULE
# Level of each finding: rules.md, "Findings of §4 and §6–§8 at a glance" (over_capacity's
# is per finding: warning, or major).
LEVELS: dict[str, str] = {
    NO_LEADER: "warning",
    OVERTIME: "warning",
    RESTRICTED_AREA: "warning",
    SEAL_BREACH: "major",
    WORK_CONTINUED: "major",
}
PERSONNEL_RULES: tuple[str, ...] = (OVER_CAPACITY, NO_LEADER, OVERTIME, RESTRICTED_AREA, SEAL_BREACH, WORK_CONTINUED)
# Rules whose subject is a card: a card's findings follow from its own stays alone.
CARD_RULES: tuple[str, ...] = (OVERTIME, RESTRICTED_AREA, SEAL_BREACH)
# Rules judged from head counts: exact only from the first instant every present card is read.
COUNT_RULES: tuple[str, ...] = (OVER_CAPACITY, NO_LEADER, WORK_CONTINUED)
ROLE_CODES = {name: code for code, name in ROLE_NAMES.items()}


def params_of(settings: PersonnelSettings) -> PersonnelParams:
    """The kernels' parameters from the rule pack's `personnel` section."""
    return PersonnelParams(
        over_capacity_min_ns=settings.over_capacity_min,
        major_excess_pct=settings.major_excess_pct,
        leader_travel_ns=settings.leader_travel,
        leader_min_span_ns=settings.leader_min_span,
        overtime_grace_ns=settings.overtime_grace,
        shift_starts_min=settings.shift_starts_min,
        evacuate_ns=settings.evacuate,
    )


@dataclass(frozen=True, eq=False)
class PersonnelLayout:
    """One mine's areas, cards and faces as arrays (area / card index = position).

    The last area is the mine's stations that belong to no area ("" code): underground, with
    no limit, no face and no flags."""

    mine_id: int
    mine_code: str
    timezone: str
    shift_ns: int  # the registry's approved shift length
    mine_limit: int  # approved underground head count capped by the national bound, -1 none
    area_codes: tuple[str, ...]
    area_limit: I64  # -1: no approved count
    area_restricted: Bools
    area_shaft: Bools
    area_face: I64  # face index, -1 none
    face_codes: tuple[str, ...]
    station_area: dict[int, int]  # station id -> area index
    card_ids: I64  # ascending
    card_codes: tuple[str, ...]
    card_role: I64  # rules.personnel.leader role codes
    # Production-signal points (rules.md §7): ids ascending, codes, and whether each is a
    # coal-output counter (3001; else an equipment on-off point, 1004).
    signal_ids: I64 = field(default_factory=lambda: np.zeros(0, np.int64))
    signal_codes: tuple[str, ...] = ()
    signal_counter: Bools = field(default_factory=lambda: np.zeros(0, np.bool_))

    @property
    def shaft_station_ids(self) -> list[int]:
        return [s for s, a in self.station_area.items() if bool(self.area_shaft[a])]

    def card_index(self, card_ids: I64) -> I64:
        return np.searchsorted(self.card_ids, card_ids).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Orders:
    """Shutdown orders as spans [start, lifted) while active or awaiting verification (-1: not lifted)."""

    ids: I64
    rules: tuple[str, ...]
    start: I64
    end: I64

    @staticmethod
    def empty() -> Orders:
        return Orders(np.zeros(0, np.int64), (), np.zeros(0, np.int64), np.zeros(0, np.int64))


@dataclass(frozen=True, eq=False)
class Signals:
    """Readings of the production-signal points sorted by (point, ts): point as an index into
    the layout's signal points, and the first instant loaded (a span that may have begun before
    it was not judged: no order covers its start, see `rules.personnel_worker.load_signals`)."""

    point: I64
    ts: I64
    value: NDArray[np.float64]

    @staticmethod
    def empty() -> Signals:
        return Signals(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


@dataclass(frozen=True, eq=False)
class Triggers:
    """Power-off triggers (§4): the time of each episode's first considered reading at or above
    power-off, the face of its point (index into the layout's faces) and the point's code."""

    time: I64
    face: I64
    point: tuple[str, ...]

    @staticmethod
    def empty() -> Triggers:
        return Triggers(np.zeros(0, np.int64), np.zeros(0, np.int64), ())


@dataclass
class Judged:
    """What one evaluation found: rows per rule, and the presence they came from."""

    rows: dict[str, list[FindingRow]] = field(default_factory=dict)
    presence: Presence | None = None
    stays: Stays | None = None


def finding(rule: str, subject: str, start: int, end: int, evidence: dict[str, Any], level: str | None = None) -> FindingRow:
    """A row; ``end`` -1 is open."""
    e = None if end == -1 else int(end)
    return FindingRow(rule, subject, int(start), e, level or LEVELS[rule], None, "open" if e is None else "closed",
                      None, None, evidence)


def span_of(f: FindingRow) -> tuple[int, int]:
    return (f.start, FOREVER if f.end is None else f.end)


def touches(f: FindingRow, lo: int, hi: int) -> bool:
    a, b = span_of(f)
    return a <= hi and b >= lo


def seconds(ns: int) -> float:
    return round(ns / S, 3)


def evaluate(layout: PersonnelLayout, card: I64, ts: I64, area: I64, *, triggers: Triggers, orders: Orders,
             now_ns: int, params: PersonnelParams, shifts_from: int, signals: Signals | None = None) -> Judged:
    """Every personnel finding of reads sorted by (card, ts) (card and area as layout indexes),
    and of the production signals' readings, as of ``now_ns``; no_leader is judged for the
    local shifts from ``shifts_from`` on."""
    out = Judged()
    presence, stays = find_presence(card, ts, area, shaft=layout.area_shaft, now_ns=now_ns)
    out.presence, out.stays = presence, stays
    out.rows = {rule: [] for rule in PERSONNEL_RULES}
    _capacity(layout, presence, stays, now_ns, params, out.rows[OVER_CAPACITY])
    _leader(layout, stays, now_ns, params, shifts_from, out.rows[NO_LEADER])
    _overtime(layout, stays, now_ns, params, out.rows[OVERTIME])
    _restricted(layout, presence, out.rows[RESTRICTED_AREA])
    _seal(layout, stays, orders, out.rows[SEAL_BREACH])
    _signal_seal(layout, signals or Signals.empty(), orders, out.rows[SEAL_BREACH])
    _evacuation(layout, presence, triggers, now_ns, params, out.rows[WORK_CONTINUED])
    return out


def _capacity(layout: PersonnelLayout, presence: Presence, stays: Stays, now_ns: int, params: PersonnelParams,
              rows: list[FindingRow]) -> None:
    for scope, steps, limits in (("area", area_counts(presence), layout.area_limit),
                                 ("mine", mine_counts(stays), np.array([layout.mine_limit], np.int64))):
        oc = over_capacity(steps, limits, now_ns=now_ns, params=params)
        for k in range(len(oc)):
            key = int(oc.key[k])
            subject = layout.area_codes[key] if scope == "area" else layout.mine_code
            level = LEVEL_NAMES[int(oc.level[k])]
            rows.append(finding(OVER_CAPACITY, subject, int(oc.start[k]), int(oc.end[k]), {
                "scope": scope,
                "area": subject if scope == "area" else None,
                "limit": int(oc.limit[k]),
                "peak": int(oc.peak[k]),
                "peak_at": iso(int(oc.peak_ts[k])),
                "major_from": iso(int(oc.major_start[k])) if int(oc.major_start[k]) >= 0 else None,
                "major_above": int(oc.limit[k]) * (100 + params.major_excess_pct) / 100,
                "min_duration_s": seconds(params.over_capacity_min_ns),
            }, level=level))


def _leader(layout: PersonnelLayout, stays: Stays, now_ns: int, params: PersonnelParams, shifts_from: int,
            rows: list[FindingRow]) -> None:
    if len(stays) == 0 or now_ns <= shifts_from:
        return
    ss, se = shift_bounds(shifts_from, now_ns, layout.timezone, params.shift_starts_min)
    nl = no_leader(stays, layout.card_role, ss, se, now_ns=now_ns, params=params)
    for k in range(len(nl)):
        j = int(nl.shift[k])
        rows.append(finding(NO_LEADER, layout.mine_code, int(nl.start[k]), int(nl.end[k]), {
            "shift": [iso(int(ss[j])), iso(int(se[j]))],
            "checked": [iso(int(ss[j]) + params.leader_travel_ns), iso(int(se[j]) - params.leader_travel_ns)],
            "min_span_s": seconds(params.leader_min_span_ns),
        }))


def _overtime(layout: PersonnelLayout, stays: Stays, now_ns: int, params: PersonnelParams,
              rows: list[FindingRow]) -> None:
    ot = overtime(stays, shift_ns=layout.shift_ns, now_ns=now_ns, params=params)
    for k in range(len(ot)):
        c = int(ot.card[k])
        rows.append(finding(OVERTIME, layout.card_codes[c], int(ot.start[k]), int(ot.end[k]), {
            "card": layout.card_codes[c],
            "role": ROLE_NAMES[int(layout.card_role[c])],
            "entry": iso(int(ot.entry[k])),
            "left": iso(int(ot.end[k])) if int(ot.end[k]) >= 0 else None,
            "limit_s": seconds(layout.shift_ns + params.overtime_grace_ns),
            "shift_s": seconds(layout.shift_ns),
            "grace_s": seconds(params.overtime_grace_ns),
        }))


def _restricted(layout: PersonnelLayout, presence: Presence, rows: list[FindingRow]) -> None:
    rv = restricted_visits(presence, layout.area_restricted)
    for k in range(len(rv)):
        c = int(rv.card[k])
        rows.append(finding(RESTRICTED_AREA, layout.card_codes[c], int(rv.start[k]), int(rv.end[k]), {
            "card": layout.card_codes[c],
            "role": ROLE_NAMES[int(layout.card_role[c])],
            "area": layout.area_codes[int(rv.area[k])],
            "entered": iso(int(rv.start[k])),
            "left": iso(int(rv.end[k])) if int(rv.end[k]) >= 0 else None,
        }))


def _seal(layout: PersonnelLayout, stays: Stays, orders: Orders, rows: list[FindingRow]) -> None:
    if len(orders.ids) == 0:
        return
    sb = card_breaches(stays, orders.start, orders.end)
    for k in range(len(sb)):
        c, o = int(sb.subject[k]), int(sb.order[k])
        rows.append(finding(SEAL_BREACH, layout.card_codes[c], int(sb.start[k]), int(sb.end[k]), {
            "source": "card",
            "card": layout.card_codes[c],
            "role": ROLE_NAMES[int(layout.card_role[c])],
            "entry": iso(int(sb.start[k])),
            "left": iso(int(sb.end[k])) if int(sb.end[k]) >= 0 else None,
            "order": int(orders.ids[o]),
            "order_rule": orders.rules[o],
            "order_start": iso(int(orders.start[o])),
            "order_lifted": iso(int(orders.end[o])) if int(orders.end[o]) >= 0 else None,
        }))


def production_spans(layout: PersonnelLayout, signals: Signals, orders: Orders) -> SignalSpans:
    """The producing spans of the signal points' readings (`rules.personnel.seal.signal_spans`),
    counters cut at the orders' starts."""
    return signal_spans(signals.point, signals.ts, signals.value, layout.signal_counter[signals.point],
                        split_at=orders.start)


def _signal_seal(layout: PersonnelLayout, signals: Signals, orders: Orders, rows: list[FindingRow]) -> None:
    if len(orders.ids) == 0 or len(signals.ts) == 0:
        return
    spans = production_spans(layout, signals, orders)
    # A span that may have begun before the readings loaded began before every order that
    # could cover it (the loader reads back far enough): not a switching-on under an order.
    keep = np.flatnonzero(~spans.truncated)
    sb = signal_breaches(spans.point[keep], spans.start[keep], spans.end[keep], orders.start, orders.end)
    for k in range(len(sb)):
        j, o = int(keep[int(sb.source[k])]), int(sb.order[k])
        p = int(sb.subject[k])
        first = int(spans.first[j])
        counter = bool(layout.signal_counter[p])
        readings = [{"ts": iso(int(signals.ts[i])), "value": float(signals.value[i])}
                    for i in range(max(first - 1, 0), first + 1) if int(signals.point[i]) == p]
        rows.append(finding(SEAL_BREACH, layout.signal_codes[p], int(sb.start[k]), int(sb.end[k]), {
            "source": "signal",
            "point": layout.signal_codes[p],
            "signal": "counter" if counter else "on_off",
            "started": iso(int(sb.start[k])),
            "stopped": iso(int(sb.end[k])) if int(sb.end[k]) >= 0 else None,
            "readings": readings,
            "order": int(orders.ids[o]),
            "order_rule": orders.rules[o],
            "order_start": iso(int(orders.start[o])),
            "order_lifted": iso(int(orders.end[o])) if int(orders.end[o]) >= 0 else None,
        }))


def _evacuation(layout: PersonnelLayout, presence: Presence, triggers: Triggers, now_ns: int,
                params: PersonnelParams, rows: list[FindingRow]) -> None:
    if len(triggers.time) == 0:
        return
    wc = work_continued(presence, layout.area_face, triggers.time, triggers.face, now_ns=now_ns, params=params)
    for k in range(len(wc)):
        f = int(wc.face[k])
        mine_triggers = np.flatnonzero(wc.trigger_of == k)
        a, n = int(wc.first[k]), int(wc.count[k])
        rows.append(finding(WORK_CONTINUED, layout.face_codes[f], int(wc.start[k]), int(wc.end[k]), {
            "face": layout.face_codes[f],
            "triggers": [{"point": triggers.point[int(j)], "at": iso(int(triggers.time[int(j)]))}
                         for j in mine_triggers.tolist()],
            "cards": [{"card": layout.card_codes[int(wc.cards[i])], "area": layout.area_codes[int(wc.areas[i])],
                       "left": iso(int(wc.left[i])) if int(wc.left[i]) >= 0 else None}
                      for i in range(a, a + n)],
            "evacuate_s": seconds(params.evacuate_ns),
        }))
