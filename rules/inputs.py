"""What the rule kernels evaluate, as arrays: a mine's points, its readings and its threshold
versions. Pure: no connection, no IO (rules/load.py fills them from PostgreSQL)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minewatch.rule_ids import EXCEEDANCE_GASES
from rules.thresholds import ThresholdTable

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]
I16 = NDArray[np.int16]
Bools = NDArray[np.bool_]

# Gases the exceedance rules read (registry names, rules.md §1; the rule ids' own list); everything
# else is left to the health and geotech rules.
EVENT_GASES: tuple[str, ...] = EXCEEDANCE_GASES
THRESHOLD_COLUMNS = ("alarm_hi", "clear_hi", "poweroff_hi", "restore_hi",
                      "alarm_lo", "clear_lo", "poweroff_lo", "restore_lo")


@dataclass(frozen=True, eq=False)
class MinePoints:
    """The evaluated points of one mine, sorted by id; position in these arrays is the point index."""

    mine_id: int
    mine_code: str
    timezone: str
    ids: I64
    codes: tuple[str, ...]
    gases: tuple[str, ...]
    face_codes: tuple[str | None, ...]
    max_gap_ns: I64

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, point_id: int) -> int:
        """The index of a point id (raises KeyError for a point that is not evaluated)."""
        i = int(np.searchsorted(self.ids, point_id))
        if i >= len(self.ids) or int(self.ids[i]) != point_id:
            raise KeyError(point_id)
        return i


@dataclass(frozen=True, eq=False)
class Readings:
    """Readings sorted by (point index, ts); ts in int64 ns UTC."""

    point_idx: I64
    ts: I64
    value: F64
    status: I16

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> Readings:
        """No readings."""
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64), np.zeros(0, np.int16))

    def take(self, mask: Bools) -> Readings:
        """The readings a mask selects (order kept)."""
        return Readings(self.point_idx[mask], self.ts[mask], self.value[mask], self.status[mask])


@dataclass(frozen=True, eq=False)
class Versions:
    """Threshold versions of a mine's points, sorted by (point index, effective_from)."""

    table: ThresholdTable
    point_idx: I64
    effective_from: I64
    lower_by_point: Bools  # per point: a lower-limit point (oxygen), judged by its versions

    def values(self, version: int) -> tuple[float | None, ...]:
        """The eight thresholds of one version, None where absent (as stored)."""
        return tuple(None if math.isnan(v) else v for v in
                     (float(getattr(self.table, c)[version]) for c in THRESHOLD_COLUMNS))
