"""Count N findings of one kind for one mine within a window, then act: shutdown orders.

The primitive behind rules.md §3 (and the accident rule): a pure function of one mine's
findings, so streaming and back-fill produce the same orders and re-running creates none
twice. Findings are scanned in time order (ties in index order):

1. A finding whose start lies inside the last order's ``[start, min_end)`` attaches to that
   order and is not counted. (Orders never overlap: a new one starts at a finding outside
   the previous one, so only the last order can contain a later finding.)
2. Otherwise it is countable. For each clause in turn (``any_of``: "≥ 2 in 3 months or ≥ 3
   in 6 months"), the countable, not yet consumed findings of its window — the bounds come
   from `rules.windows`, the finding itself included — are counted; when they reach the
   clause's N, an order starts at this finding's start with ``min_end = start + duration``,
   and those findings become its triggers: consumed, never counted again.
3. Ladder: the k-th order within one cycle (a calendar period id per finding, e.g. 2-month
   cycles) lasts ``durations[k-1]``; the last duration repeats. Without cycles every order
   is step 1 and lasts ``durations[0]``. An action with no duration (a special inspection)
   has ``min_end == start``: nothing attaches to it.

Whether an order is lifted at its minimum end depends on verification, not on counting.
The scan is a loop over findings (tens to thousands per mine); each step is array work.
Evaluate a mine's whole history (or from a point no window or order straddles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.calendar import cycle_id
from rules.errors import RulesError
from rules.packs import CountRule

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]
ROLE_NONE, ROLE_TRIGGER, ROLE_ATTACHED = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Orders:
    """Orders of one mine and one rule as struct-of-arrays, in time order."""

    start: I64
    min_end: I64
    step: I64  # 1-based rank of the order within its cycle
    clause: I64  # which clause of the rule completed the count
    trigger_ptr: I64  # triggers of order k: triggers[trigger_ptr[k]:trigger_ptr[k + 1]]
    triggers: I64  # finding indices
    attached_ptr: I64
    attached: I64  # finding indices
    order_of: I64  # per finding: the order it triggered or attached to, -1 when none
    role: I8  # per finding: ROLE_NONE / ROLE_TRIGGER / ROLE_ATTACHED

    def __len__(self) -> int:
        return len(self.start)

    def triggers_of(self, order: int) -> I64:
        """The findings that completed the count for one order."""
        return self.triggers[self.trigger_ptr[order] : self.trigger_ptr[order + 1]]

    def attached_of(self, order: int) -> I64:
        """The findings that started inside one order."""
        return self.attached[self.attached_ptr[order] : self.attached_ptr[order + 1]]


def scan_orders(
    times: I64,
    clauses: Sequence[tuple[I64, int]],
    durations_ns: Sequence[int],
    cycle: I64 | None = None,
) -> Orders:
    """Orders from sorted finding start times; each clause is (window start per finding, N)."""
    t = np.asarray(times, dtype=np.int64)
    n = len(t)
    if n > 1 and bool(np.any(t[1:] < t[:-1])):
        raise RulesError("finding times must be sorted ascending")
    if not clauses or any(need < 1 or len(ws) != n for ws, need in clauses):
        raise RulesError("each clause needs N >= 1 and one window start per finding")
    if not durations_ns or any(d < 0 for d in durations_ns):
        raise RulesError("an order needs at least one duration, none negative")
    if cycle is not None and len(cycle) != n:
        raise RulesError("cycle needs one id per finding")
    starts = [np.asarray(ws, dtype=np.int64) for ws, _ in clauses]

    countable = np.zeros(n, np.bool_)
    order_of = np.full(n, -1, np.int64)
    role = np.zeros(n, np.int8)
    o_start: list[int] = []
    o_end: list[int] = []
    o_step: list[int] = []
    o_clause: list[int] = []
    o_cycle: list[int] = []
    triggers: list[I64] = []
    for i in range(n):
        ti = int(t[i])
        if o_start and o_start[-1] <= ti < o_end[-1]:
            order_of[i], role[i] = len(o_start) - 1, ROLE_ATTACHED
            continue
        countable[i] = True
        for c, (_, need) in enumerate(clauses):
            lo = int(starts[c][i])
            members = np.flatnonzero(countable[lo : i + 1]) + lo
            if len(members) < need:
                continue
            cyc = 0 if cycle is None else int(cycle[i])
            step = o_step[-1] + 1 if cycle is not None and o_cycle and o_cycle[-1] == cyc else 1
            k = len(o_start)
            o_start.append(ti)
            o_end.append(ti + int(durations_ns[min(step, len(durations_ns)) - 1]))
            o_step.append(step)
            o_clause.append(c)
            o_cycle.append(cyc)
            triggers.append(members)
            countable[members] = False
            order_of[members], role[members] = k, ROLE_TRIGGER
            break

    attached = np.flatnonzero(role == ROLE_ATTACHED)
    att_order = order_of[attached]
    n_orders = len(o_start)
    return Orders(
        start=np.array(o_start, np.int64),
        min_end=np.array(o_end, np.int64),
        step=np.array(o_step, np.int64),
        clause=np.array(o_clause, np.int64),
        trigger_ptr=np.concatenate(([0], np.cumsum([len(m) for m in triggers]))).astype(np.int64),
        triggers=np.concatenate(triggers).astype(np.int64) if triggers else np.zeros(0, np.int64),
        attached_ptr=np.searchsorted(att_order, np.arange(n_orders + 1)).astype(np.int64),
        attached=attached.astype(np.int64),
        order_of=order_of,
        role=role,
    )


def apply_count_rule(rule: CountRule, times: I64, tz: str) -> Orders:
    """Run one rule-pack count rule over one mine's sorted finding times of the rule's kind."""
    t = np.asarray(times, dtype=np.int64)
    clauses = [(clause.window.bounds(t, tz)[0], clause.n) for clause in rule.any_of]
    action = rule.action
    cycle = None
    if action.ladder is not None:
        ladder = action.ladder
        cycle = cycle_id(t, ladder.cycle_months, tz, ladder.anchor_month)
        durations = list(ladder.durations)
    else:
        durations = [action.duration or 0]
    return scan_orders(t, clauses, durations, cycle)
