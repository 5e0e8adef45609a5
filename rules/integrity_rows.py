"""The integrity rules' findings as rows (no IO): parameters, a mine's layout as arrays, and
kernel output turned into `findings` rows with the contract's rule ids, the subjects and levels
of rules.md's table "Findings of §4 and §6–§8 at a glance" and their evidence.

`rules.integrity_worker` loads the arrays from PostgreSQL, calls these and writes the rows.
Evidence of an open span holds nothing that moves with the clock alone (so a later pass at a
later clock rewrites nothing).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minewatch import rule_ids
from rules.evaluate import FindingRow, iso
from rules.inputs import I64, Bools, MinePoints, Readings
from rules.integrity.calibration import CalibrationParams, shift_calibration
from rules.integrity.common import HOUR, MINUTE, NO_END, S
from rules.integrity.pairs import PairParams, implausible_spans
from rules.integrity.relation import PowerOffParams
from rules.integrity.shifts import DAY_START_HOURS, local_boundaries
from rules.integrity.silence import SilenceParams, offline_spans
from rules.integrity.stuck import StuckParams, stuck_runs
from rules.integrity.under_reporting import UnderReportingParams

US = 1_000
FOREVER = 2**62
OFFLINE = rule_ids.OFFLINE
STATION_FAULT = rule_ids.STATION_FAULT
STUCK = rule_ids.STUCK
CALIBRATION_ABUSE = rule_ids.CALIBRATION_ABUSE
IMPLAUSIBLE_PAIR = rule_ids.IMPLAUSIBLE_PAIR
POWER_OFF_FAILURE = rule_ids.POWER_OFF_FAILURE
UNDER_REPORTING = rule_ids.UNDER_REPORTING
# Level of each finding: rules.md, "Findings of §4 and §6–§8 at a glance".
LEVELS: dict[str, str] = {
    OFFLINE: "warning",
    STATION_FAULT: "warning",
    STUCK: "warning",
    CALIBRATION_ABUSE: "major",
    IMPLAUSIBLE_PAIR: "warning",
    POWER_OFF_FAILURE: "major",
    UNDER_REPORTING: "major",
}
INTEGRITY_RULES: tuple[str, ...] = tuple(LEVELS)
STATION_LOOKBACK_NS = HOUR  # bit-16 station states are derived from readings this far back
WITNESS_LOOKBACK_NS = HOUR  # a witness's change needs its previous reading


@dataclass(frozen=True)
class IntegrityParams:
    """The parameters of every integrity rule (each dataclass cites rules.md) and of the passes."""

    silence: SilenceParams = field(default_factory=SilenceParams)
    stuck: StuckParams = field(default_factory=StuckParams)
    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    pairs: PairParams = field(default_factory=PairParams)
    power_off: PowerOffParams = field(default_factory=PowerOffParams)
    under_reporting: UnderReportingParams = field(default_factory=UnderReportingParams)
    # The clock-driven pass re-judges the last `clock_tail_ns` of every mine, and the local
    # days whose upload grace ended within the last `clock_days` days (under-reporting).
    clock_tail_ns: int = 10 * MINUTE
    clock_days: int = 2


DEFAULT_PARAMS = IntegrityParams()


@dataclass(frozen=True, eq=False)
class MineLayout:
    """Every point and station of one mine as arrays (point index = position, ids ascending)."""

    mine_id: int
    mine_code: str
    timezone: str
    ids: I64
    codes: tuple[str, ...]
    active: Bools
    analog: Bools
    methane: Bools  # analog methane points: the subjects of stuck and under-reporting
    station: I64  # station index per point, -1 for none
    face: I64  # face index per point, -1 for none
    period_ns: I64  # expected reporting period (registry expected_period_s)
    station_ids: I64
    station_codes: tuple[str, ...]
    station_period_ns: I64
    relation_point: I64  # `D` relations: methane point index -> feed point index
    relation_feed: I64
    pair_up: I64
    pair_down: I64

    def __len__(self) -> int:
        return len(self.ids)

    def points(self) -> MinePoints:
        """The layout as the readings loader takes it (it reads the ids only)."""
        n = len(self.ids)
        return MinePoints(
            self.mine_id, self.mine_code, self.timezone, self.ids, self.codes, ("",) * n, (None,) * n, np.zeros(n, np.int64)
        )

    def index_of(self, point_id: int) -> int:
        i = int(np.searchsorted(self.ids, point_id))
        if i >= len(self.ids) or int(self.ids[i]) != point_id:
            raise KeyError(point_id)
        return i


# --- small helpers ---------------------------------------------------------------------------


def end_or_none(ns: int) -> int | None:
    return None if ns == NO_END else int(ns)


def seconds(ns: int) -> float:
    return round(ns / S, 3)


def finding(rule: str, subject: str, start: int, end: int | None, evidence: dict[str, Any]) -> FindingRow:
    return FindingRow(
        rule, subject, int(start), end, LEVELS[rule], None, "open" if end is None else "closed", None, None, evidence
    )


def span_of(f: FindingRow) -> tuple[int, int]:
    return (f.start, FOREVER if f.end is None else f.end)


def touches(f: FindingRow, lo: int, hi: int) -> bool:
    a, b = span_of(f)
    return a <= hi and b >= lo


def merge_same_key(rows: Sequence[FindingRow]) -> list[FindingRow]:
    """One finding per identity: rows that share (rule, subject, start) — two feeds of one
    trigger, a shift's calibration time and a neighbour's episode — become one whose
    evidence lists the others under ``also`` and whose end is the latest (open if any is)."""
    out: dict[tuple[str, str, int], FindingRow] = {}
    for f in rows:
        before = out.get(f.key)
        if before is None:
            out[f.key] = f
            continue
        end = None if before.end is None or f.end is None else max(before.end, f.end)
        evidence = dict(before.evidence)
        evidence["also"] = [*evidence.get("also", []), f.evidence]
        out[f.key] = FindingRow(
            f.rule, f.subject, f.start, end, before.level, None, "open" if end is None else "closed", None, None, evidence
        )
    return list(out.values())


def overlapping(old: FindingRow, placed: Sequence[tuple[FindingRow, int]]) -> int | None:
    """A vanished finding goes to the same rule's finding of the same subject now covering its time."""
    a, b = span_of(old)
    best: tuple[int, int] | None = None
    for f, fid in placed:
        s, e = span_of(f)
        if f.rule == old.rule and f.subject == old.subject and s <= b and e >= a and (best is None or s < best[0]):
            best = (s, fid)
    return None if best is None else best[1]


@dataclass
class Desired:
    """Findings recomputed per rule, and the range each rule owns in this evaluation."""

    rows: dict[str, list[FindingRow]] = field(default_factory=dict)
    own: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Rules judged for some subjects only (the others' stored findings are left alone).
    limits: dict[str, set[str]] = field(default_factory=dict)

    def add(self, rule: str, rows: Sequence[FindingRow], lo: int, hi: int) -> None:
        self.rows.setdefault(rule, []).extend(rows)
        a, b = self.own.get(rule, (lo, hi))
        self.own[rule] = (min(a, lo), max(b, hi))

    def limit(self, rule: str, subjects: set[str]) -> None:
        """This evaluation judged `rule` for these subjects only."""
        self.limits[rule] = subjects


def days_of(layout: MineLayout, lo: int, hi: int) -> list[int]:
    bounds = local_boundaries(lo, hi, layout.timezone, DAY_START_HOURS)
    return [int(bounds[j]) for j in range(len(bounds) - 1) if bounds[j] <= hi and bounds[j + 1] > lo]


def offline_rows(
    layout: MineLayout,
    r: Readings,
    seen: I64,
    now_ns: int,
    params: IntegrityParams,
    lo: int,
    hi: int,
    out: Desired,
    known: Container[tuple[str, str, int]] = (),
) -> None:
    """`offline` findings touching [lo, hi]; spans whose identity is in `known` are left out
    (the clock pass: open findings already stored)."""
    sp = offline_spans(
        r.point_idx,
        r.ts,
        n_points=len(layout),
        now_ns=now_ns,
        period_ns=layout.period_ns,
        last_seen_ns=seen,
        params=params.silence,
    )
    rows = []
    for k in range(len(sp.subject)):
        i = int(sp.subject[k])
        if not layout.active[i] or (OFFLINE, layout.codes[i], int(sp.start[k])) in known:
            continue
        end = end_or_none(int(sp.end[k]))
        st = int(layout.station[i])
        f = finding(
            OFFLINE,
            layout.codes[i],
            int(sp.start[k]),
            end,
            {
                "point": layout.codes[i],
                "station": layout.station_codes[st] if st >= 0 else None,
                "last_reading": iso(int(sp.start[k])),
                "next_reading": iso(end),
                "expected_period_s": seconds(int(layout.period_ns[i])),
                "limit_s": seconds(int(sp.limit_ns[k])),
                "seen_s": None if end is None else seconds(int(sp.seen_ns[k])),
                "raised_at": iso(int(sp.raised_at[k])),
            },
        )
        if touches(f, lo, hi):
            rows.append(f)
    out.add(OFFLINE, rows, lo, hi)


def stuck_rows(layout: MineLayout, r: Readings, params: IntegrityParams, lo: int, hi: int, out: Desired) -> None:
    runs = stuck_runs(
        r.point_idx,
        r.ts,
        r.value,
        r.status,
        point_mine=np.zeros(len(layout), np.int64),
        analog=layout.analog,
        methane=layout.methane,
        params=params.stuck,
    )
    rows = []
    for k in range(len(runs.point_idx)):
        i = int(runs.point_idx[k])
        end = end_or_none(int(runs.end[k]))
        evidence: dict[str, Any] = {
            "point": layout.codes[i],
            "value": float(runs.value[k]),
            "first_reading": iso(int(runs.start[k])),
            "min_duration_s": seconds(params.stuck.min_duration_ns),
            "witness": layout.codes[int(runs.witness[k])],
            "first_different": iso(end),
        }
        if end is not None:
            evidence.update(
                last_equal_reading=iso(int(runs.last[k])),
                n_readings=int(runs.n_readings[k]),
                seen_s=seconds(int(runs.last[k]) - int(runs.start[k])),
            )
        f = finding(STUCK, layout.codes[i], int(runs.start[k]), end, evidence)
        if touches(f, lo, hi):
            rows.append(f)
    out.add(STUCK, rows, lo, hi)


def pair_rows(layout: MineLayout, r: Readings, params: IntegrityParams, lo: int, hi: int, out: Desired) -> None:
    if len(layout.pair_up) == 0:
        return
    sp = implausible_spans(
        r.point_idx,
        r.ts,
        r.value,
        r.status,
        upstream=layout.pair_up,
        downstream=layout.pair_down,
        n_points=len(layout),
        period_ns=layout.period_ns,
        params=params.pairs,
    )
    rows = []
    for k in range(len(sp.pair)):
        j = int(sp.pair[k])
        up, down = layout.codes[int(layout.pair_up[j])], layout.codes[int(layout.pair_down[j])]
        end = end_or_none(int(sp.end[k]))
        evidence: dict[str, Any] = {
            "upstream": up,
            "downstream": down,
            "points": [up, down],
            "start": iso(int(sp.start[k])),
            "expected": f"downstream >= upstream - {params.pairs.min_difference}",
            "min_difference": params.pairs.min_difference,
            "min_duration_s": seconds(params.pairs.min_duration_ns),
            "worst_difference": round(float(sp.worst[k]), 6),
            "worst_at": iso(int(sp.worst_ts[k])),
            "end": iso(end),
        }
        if end is not None:
            evidence.update(last_holding=iso(int(sp.last[k])), n_times=int(sp.n_times[k]))
        f = finding(IMPLAUSIBLE_PAIR, down, int(sp.start[k]), end, evidence)
        if touches(f, lo, hi):
            rows.append(f)
    out.add(IMPLAUSIBLE_PAIR, rows, lo, hi)


def calibration_rows(
    layout: MineLayout, r: Readings, now_ns: int, params: IntegrityParams, s_lo: int, s_hi: int, out: Desired
) -> None:
    cp = dataclasses.replace(params.calibration, timezone=layout.timezone)
    sc = shift_calibration(r.point_idx, r.ts, r.status, now_ns=now_ns, params=cp)
    rows = []
    for k in range(len(sc.point_idx)):
        if not s_lo <= int(sc.shift_start[k]) < s_hi:
            continue
        i = int(sc.point_idx[k])
        end = None if bool(sc.is_open[k]) else int(sc.end[k])
        rows.append(
            finding(
                CALIBRATION_ABUSE,
                layout.codes[i],
                int(sc.start[k]),
                end,
                {
                    "kind": "shift",
                    "point": layout.codes[i],
                    "shift_start": iso(int(sc.shift_start[k])),
                    "shift_end": iso(int(sc.shift_end[k])),
                    "calibrating_from": iso(int(sc.start[k])),
                    "calibrating_until": iso(int(sc.end[k])),
                    "seen_s": seconds(int(sc.total_ns[k])),
                    "limit_s": seconds(cp.max_total_ns),
                },
            )
        )
    # A shift's findings start at or after its start; one of the shift before may end there.
    out.add(CALIBRATION_ABUSE, rows, s_lo + US, s_hi - US)
