"""The GB 50863 aggregation ladder: members' step functions → their group's step function.

rules.md §8 (GB 50863): within one monitored quantity of a pond, at any moment, 4 or more
points at blue-or-above raise the quantity to at least yellow, 3 or more at yellow-or-above
to at least orange, 2 or more at orange-or-above to red; the quantity's level is the higher of
that and its highest point. Across the pond's quantities the same ladder applies, and the
pond's level is the higher of that and its highest quantity. So one kernel serves both rungs:
points → quantity (members: points, groups: quantities), then quantity → pond (members:
quantities, groups: ponds); a slope is a pond of one quantity.

"At any moment" is a step function, evaluated at every instant a member changes, not on a grid
of minutes: all changes at one instant apply together before the group is judged (two
members that swap orange at the same nanosecond are never both orange; two that reach
orange at the same instant are). Method: a sweep. Each member step adds +1 / −1 to the count
of members at ≥ k for k = 1..4 (a member at ≥ k+1 is also at ≥ k, so the highest member is
the number of k with a nonzero count); steps sorted by (group, ts) are summed with one
cumsum per k; the state after the last step of each (group, instant) is the group's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.geotech import BLUE, LEVELS, ORANGE, RED, YELLOW
from rules.geotech.steps import Steps

I64 = NDArray[np.int64]
I8 = NDArray[np.int8]


@dataclass(frozen=True)
class Rung:
    """``count`` or more members at ``at_least`` or above raise the group to at least ``raises_to``."""

    at_least: int
    count: int
    raises_to: int

    def __post_init__(self) -> None:
        if self.at_least not in LEVELS or self.raises_to not in LEVELS or self.count < 1:
            raise RulesError(f"a ladder rung needs levels 1..4 and a count >= 1, got {self}")


# rules.md §8 (GB 50863): 4 at blue-or-above → yellow; 3 at yellow-or-above → orange;
# 2 at orange-or-above → red.
GB50863: tuple[Rung, ...] = (Rung(BLUE, 4, YELLOW), Rung(YELLOW, 3, ORANGE), Rung(ORANGE, 2, RED))


def ladder(steps: Steps, group_of_key: I64, rungs: tuple[Rung, ...] = GB50863) -> Steps:
    """The step function of each group from its members' step functions.

    ``steps`` is sorted by (member key, ts) — a point's `level_steps` or a lower `ladder` —
    and ``group_of_key[key]`` is each member's group. The result is keyed by group, with
    ``row`` the input step that completed the instant and ``raised`` where a rung, not the
    highest member, set the level.
    """
    n = len(steps)
    key, t = np.asarray(steps.key, np.int64), np.asarray(steps.ts, np.int64)
    groups = np.asarray(group_of_key, dtype=np.int64)
    if n == 0:
        return Steps.empty()
    if bool(np.any((key[1:] < key[:-1]) | ((key[1:] == key[:-1]) & (t[1:] < t[:-1])))):
        raise RulesError("member steps must be sorted by (key, ts)")
    if int(key.min()) < 0 or int(key.max()) >= len(groups):
        raise RulesError(f"a step's key is outside group_of_key of {len(groups)} members")
    new = np.asarray(steps.level, np.int8)
    old = np.empty_like(new)
    old[0] = 0
    old[1:] = new[:-1]
    old[1:][key[1:] != key[:-1]] = 0  # a member is at none before its first step
    g = groups[key]
    order = np.lexsort((t, g))  # stable: a member's steps at one instant keep their order
    g, t, new, old = g[order], t[order], new[order], old[order]
    group_start = np.empty(n, np.bool_)
    group_start[0] = True
    np.not_equal(g[1:], g[:-1], out=group_start[1:])
    # The last step of each (group, instant) is where the group's state is read.
    last = np.empty(n, np.bool_)
    last[-1] = True
    np.not_equal(t[1:], t[:-1], out=last[:-1])
    last[:-1] |= group_start[1:]
    at = np.flatnonzero(last)
    base_of = np.cumsum(group_start)[at] - 1  # group run of each read-out row
    firsts = np.flatnonzero(group_start)
    count = {}
    for k in LEVELS:
        delta = (new >= k).astype(np.int64) - (old >= k)
        run = np.cumsum(delta)
        # Counts restart at each group: subtract what the groups before had summed.
        before = run[firsts] - delta[firsts]
        count[k] = run[at] - before[base_of]
    top = sum((count[k] > 0).astype(np.int8) for k in LEVELS)
    by_rung = np.zeros(len(at), np.int8)
    for r in rungs:
        by_rung = np.maximum(by_rung, np.where(count[r.at_least] >= r.count, r.raises_to, 0).astype(np.int8))
    level = np.maximum(top, by_rung).astype(np.int8)
    ga = g[at]
    prev = np.empty_like(level)
    prev[0] = 0
    prev[1:] = level[:-1]
    prev[1:][ga[1:] != ga[:-1]] = 0  # a group is at none before its first step
    change = np.flatnonzero(level != prev)
    return Steps(ga[change], t[at][change], level[change], order[at][change].astype(np.int64),
                 (by_rung > top)[change])
