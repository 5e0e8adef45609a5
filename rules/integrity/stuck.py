"""Equal-value runs: an analog methane point whose considered readings all keep exactly the
same value for a long time while the mine's other analog points move (`stuck`).

rules.md §6: "an analog methane point whose considered readings all have exactly the same
value for ≥ 2 h (window configurable) while at least one other analog point of the same
mine changed value in that window. Start at the first of the equal readings; end at the
first different value."

- Considered readings (§1): the first row of a (point, ts), no bit of ``exclude_mask``,
  and a value (NaN rows are skipped: they neither break nor extend a run).
- A run is a maximal sequence of consecutive considered readings of one point with the
  same value. Its window is [first, last] (the first and the last equal reading); it
  qualifies when ``last - first >= min_duration_ns`` (1 h 59 min: no; 2 h: yes).
- A point *changes value* at a considered reading whose value differs from its previous
  considered reading. The run is a finding only when some *other* analog point of the same
  mine changes value inside the window [first, last]; a mine that is flat everywhere (the
  fans stopped, a quiet Sunday) raises nothing.
- ``end`` is the time of the first different considered reading, -1 while the run lasts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.integrity.common import (
    CONSIDERED_EXCLUDE_MASK,
    F64,
    HOUR,
    I64,
    NO_END,
    Bools,
    as_i64,
    checked_readings,
    considered,
    ranges,
    segment_bounds,
    segment_searchsorted,
)


@dataclass(frozen=True)
class StuckParams:
    """Defaults of rules.md §6 `stuck`."""

    min_duration_ns: int = 2 * HOUR  # §6: "exactly the same value for ≥ 2 h (window configurable)"
    exclude_mask: int = CONSIDERED_EXCLUDE_MASK  # §1: which readings are considered


@dataclass(frozen=True, eq=False)
class StuckRuns:
    """Stuck runs as struct-of-arrays, ordered by (point, start)."""

    point_idx: I64
    start: I64  # the first of the equal readings
    last: I64  # the last of the equal readings
    end: I64  # the first different value, -1 while the run lasts
    value: F64
    n_readings: I64
    witness: I64  # another analog point of the mine that changed value in [start, last]

    def __len__(self) -> int:
        return len(self.start)

    @property
    def is_open(self) -> Bools:
        """Per run: no different value yet."""
        return np.asarray(self.end == NO_END, dtype=np.bool_)


def stuck_runs(
    point_idx: I64,
    ts: I64,
    values: F64,
    status: NDArray[np.integer],
    *,
    point_mine: I64,
    analog: Bools,
    methane: Bools,
    params: StuckParams = StuckParams(),
) -> StuckRuns:
    """Stuck runs of readings sorted by (point, ts); see the module docstring.

    Per point (indexed by point index): ``point_mine`` its mine, ``analog`` whether it is an
    analog point (a witness), ``methane`` whether it is an analog methane point (a subject).
    """
    if params.min_duration_ns <= 0:
        raise RulesError(f"a stuck run needs a positive duration, got {params.min_duration_ns} ns")
    p, t = checked_readings(point_idx, ts, values, status)
    v = np.asarray(values, dtype=np.float64)
    ok = considered(p, t, v, status, params.exclude_mask)
    rows = None if bool(ok.all()) else np.flatnonzero(ok)
    cp, ct, cv = (p, t, v) if rows is None else (p[rows], t[rows], v[rows])
    m = len(cp)
    same_point = cp[1:] == cp[:-1]
    # Rows that repeat their predecessor's value are few in live data (values move), so runs
    # are built from them alone: a block of consecutive repeating rows [a..b] is the run
    # a-1..b. A run of one reading lasts 0 s and never qualifies.
    cont = np.flatnonzero(same_point & (cv[1:] == cv[:-1])) + 1
    block = np.concatenate(([True], cont[1:] != cont[:-1] + 1)) if len(cont) else np.zeros(0, np.bool_)
    first = (cont[block] - 1).astype(np.int64)
    last = cont[np.append(np.flatnonzero(block)[1:] - 1, len(cont) - 1)].astype(np.int64) if len(cont) else first
    subject = np.asarray(methane, dtype=np.bool_)[cp[first]]
    long_enough = subject & (ct[last] - ct[first] >= params.min_duration_ns)
    first, last = first[long_enough], last[long_enough]
    mine = as_i64(point_mine)
    is_analog = np.asarray(analog, dtype=np.bool_)
    witness = np.full(len(first), -1, np.int64)
    if len(first):
        # Pair each run with every other analog point of its mine: does that point change
        # value inside [start, last]? Runs are rare, so the pairs are few; the changes are
        # counted with a prefix sum over the rows (a change: same point, different value).
        analog_ids = np.flatnonzero(is_analog).astype(np.int64)
        by_mine = analog_ids[np.argsort(mine[analog_ids], kind="stable")]
        lo_m, hi_m = segment_bounds(mine[by_mine], mine[cp[first]])
        n_cand = hi_m - lo_m
        run_of = np.repeat(np.arange(len(first)), n_cand)
        other = by_mine[np.repeat(lo_m, n_cand) + ranges(n_cand)]
        keep = other != cp[first][run_of]
        run_of, other = run_of[keep], other[keep]
        changes = np.zeros(m + 1, np.int64)
        np.cumsum(same_point & (cv[1:] != cv[:-1]), out=changes[2:])
        lo_p, hi_p = segment_bounds(cp, other)
        i = segment_searchsorted(ct, lo_p, hi_p, ct[first][run_of], side="left")
        j = segment_searchsorted(ct, lo_p, hi_p, ct[last][run_of], side="right")
        hit = changes[j] - changes[i] > 0
        # The witness named in the evidence: the lowest point index that moved.
        witness[:] = _min_by_group(run_of[hit], other[hit], len(first))
    found = witness >= 0
    first, last, witness = first[found], last[found], witness[found]
    nxt = last + 1
    has_next = nxt < m
    probe = np.minimum(nxt, max(m - 1, 0))
    ended = has_next & (cp[probe] == cp[first]) if m else has_next
    return StuckRuns(
        point_idx=cp[first],
        start=ct[first],
        last=ct[last],
        end=np.where(ended, ct[probe], NO_END).astype(np.int64),
        value=cv[first],
        n_readings=(last - first + 1).astype(np.int64),
        witness=witness,
    )


def _min_by_group(group: I64, value: I64, n: int) -> I64:
    """Per group 0..n-1, the minimum value (-1 for a group with none)."""
    out = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(out, group, value)
    return np.where(out == np.iinfo(np.int64).max, -1, out).astype(np.int64)
