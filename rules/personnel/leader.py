"""Leader on shift (`no_leader`, 矿领导带班下井, rules.md §7): workers underground with no leader.

Input: the stays of a mine's cards (`presence.find_presence`), each card's role (0 worker,
1 leader, 2 visitor: only worker and leader cards count), the mine's shifts as int64 UTC
bounds (`shifts.shift_bounds`, computed in the mine's zone) and ``now_ns``. Per shift:

- the checked window is the shift without its first and last ``leader_travel_ns`` (default
  30 min each, the travel to and from the face): [start + travel, end − travel);
- within it, the condition is "at least one worker card underground and no leader card";
  each maximal span of it inside the window (cut at the window's bounds, never merged across
  shifts) that lasts at least ``leader_min_span_ns`` (default 30 min) is a finding;
- a span still running at ``now_ns`` is open (``end == -1``) and counts ``now_ns − start``,
  so the finding is raised as soon as 30 min have passed, without waiting for a read.

So with a 08–16 shift, a leader who surfaces at 15:01 while workers stay below leaves a 29 min
span before the closing margin starts at 15:30 (no finding); one who surfaces at 14:59 leaves
31 min (a finding, 14:59 → 15:30).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.params import DEFAULT_PARAMS, PersonnelParams
from rules.personnel.presence import Stays, head_counts

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
RULE = "no_leader"
WORKER, LEADER, VISITOR = 0, 1, 2
ROLE_NAMES = {WORKER: "worker", LEADER: "leader", VISITOR: "visitor"}  # as the registry spells them


@dataclass(frozen=True, eq=False)
class NoLeader:
    """no_leader findings ordered by start; ``shift`` indexes the shift bounds given."""

    shift: I64
    start: I64
    end: I64  # -1 while open
    is_open: Bools

    def __len__(self) -> int:
        return len(self.start)


def no_leader(stays: Stays, role_by_card: I64, shift_start: I64, shift_end: I64, *, now_ns: int,
              params: PersonnelParams = DEFAULT_PARAMS) -> NoLeader:
    """no_leader findings of one mine; see the module docstring."""
    roles = np.asarray(role_by_card, dtype=np.int64)
    ss = np.asarray(shift_start, dtype=np.int64)
    se = np.asarray(shift_end, dtype=np.int64)
    if len(ss) != len(se):
        raise RulesError("shift starts and ends must have the same length")
    if len(ss) > 1 and bool(np.any(ss[1:] < se[:-1])):
        raise RulesError("shifts must be sorted and must not overlap")
    if len(stays) and int(stays.card.max()) >= len(roles):
        raise RulesError("every stay's card must index the roles")
    ws = ss + params.leader_travel_ns
    we = se - params.leader_travel_ns
    role = roles[stays.card]
    counted = np.flatnonzero((role == WORKER) | (role == LEADER))
    steps = head_counts(role[counted], stays.start[counted], stays.end[counted], stays.is_open[counted])
    w_time, w_count = steps.of(WORKER)
    l_time, l_count = steps.of(LEADER)
    # Every instant where the condition can change: a count changes, a window opens or closes,
    # and now (nothing is known after it).
    marks = np.unique(np.concatenate((w_time, l_time, ws, we, [now_ns])))
    marks = marks[marks <= now_ns]
    workers = _value_at(w_time, w_count, marks)
    leaders = _value_at(l_time, l_count, marks)
    win = np.searchsorted(ws, marks, side="right") - 1
    inside = (win >= 0) & (marks < we[np.maximum(win, 0)]) if len(ws) else np.zeros(len(marks), np.bool_)
    cond = inside & (workers > 0) & (leaders == 0)
    n = len(marks)
    same = np.zeros(n, np.bool_)  # this mark continues the previous mark's run
    same[1:] = cond[1:] & cond[:-1] & (win[1:] == win[:-1])
    first = np.flatnonzero(cond & ~same)
    ends_here = cond.copy()
    ends_here[:-1] &= ~same[1:]
    last = np.flatnonzero(ends_here)
    is_open = last == n - 1  # still true at now_ns
    end = np.where(is_open, now_ns, marks[np.minimum(last + 1, n - 1)])
    start = marks[first]
    keep = end - start >= params.leader_min_span_ns
    return NoLeader(
        shift=win[first][keep].astype(np.int64),
        start=start[keep],
        end=np.where(is_open, -1, end)[keep].astype(np.int64),
        is_open=is_open[keep],
    )


def _value_at(time: I64, count: I64, at: I64) -> I64:
    """A step function's value at each instant (0 before its first step)."""
    i = np.searchsorted(time, at, side="right") - 1
    return np.where(i >= 0, count[np.maximum(i, 0)] if len(count) else 0, 0).astype(np.int64)
