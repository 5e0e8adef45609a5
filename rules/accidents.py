"""From a mine's accident records to its special-inspection findings (no IO).

rules.md §3: "≥ 2 general accidents in 3 months or ≥ 3 in 6 months → special inspection",
where the findings counted are accident records entered through the API, not sensor
events. The count is the shutdown orders' kernel (`rules.orders.apply_count_rule`) over the
mine's accident times: the accidents that complete a count are consumed and never counted
again, and an inspection has no duration, so nothing attaches to it.

Every recorded accident counts, whatever its severity: "general" (一般事故) is the lowest of
the four classes, and a worse accident is at least a general one.

A finding per completed count, on the whole mine: rule ``special_inspection``, subject the
mine code (so alerting names it 全矿, as it does orders), start the time of the accident that
completed the count, level ``inspection`` (the action it demands, as an order's level is
``order``), ``ref_table = 'accidents'`` and ``ref_id`` that accident. Its evidence lists the
accidents counted. Because the subject is the mine, a pack holds at most one accident rule
(`rules.packs` checks): two would claim the same identities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from minewatch.rule_ids import SPECIAL_INSPECTION
from minewatch.timeutil import from_ns, rfc3339
from rules.evaluate import FindingRow
from rules.orders import apply_count_rule
from rules.packs import RulePack

I64 = NDArray[np.int64]

ACCIDENT_KIND = "accident"  # the count-rule kind of accident records
INSPECTION_RULE = SPECIAL_INSPECTION
INSPECTION_LEVEL = "inspection"
INSPECTION_REF = "accidents"


def inspection_findings(pack: RulePack, mine_code: str, ids: Sequence[int], times: I64,
                        severities: Sequence[str], tz: str) -> list[FindingRow]:
    """The special inspections of every accident rule of a pack, over one mine's accidents
    sorted by (time, id): ``ids``, ``times`` (int64 ns UTC) and ``severities`` align."""
    t = np.asarray(times, np.int64)
    out: list[FindingRow] = []
    if len(t) == 0:
        return out
    for rule in pack.count_rules:
        if rule.kind != ACCIDENT_KIND:
            continue
        counted = apply_count_rule(rule, t, tz)
        for k in range(len(counted)):
            members = counted.triggers_of(k).tolist()  # ascending; the last completed the count
            clause = rule.any_of[int(counted.clause[k])]
            evidence: dict[str, Any] = {
                "pack": pack.name, "rule": rule.id, "n": clause.n,
                "window": clause.window.model_dump(exclude_defaults=True),
                "accident_ids": [int(ids[i]) for i in members],
                "accident_times": [rfc3339(from_ns(int(t[i]))) for i in members],
                "severities": [severities[i] for i in members]}
            out.append(FindingRow(INSPECTION_RULE, mine_code, int(counted.start[k]), None, INSPECTION_LEVEL, None,
                                  "open", INSPECTION_REF, int(ids[members[-1]]), evidence))
    return out
