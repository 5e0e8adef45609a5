"""Severity routing by peak concentration: who investigates an exceedance, and its flags.

Shanxi tiers (rules.md §5), the defaults: peak < 2.0 %CH4 → "county", 2.0 <= peak <= 3.0 →
"city", peak > 3.0 → "province"; a high-value flag at peak >= 3.0. Every bound is
configurable (rule pack ``severity`` / ``flags``): a tier starts at its lower bound, either
inclusive ("from": peak >= bound) or exclusive ("above": peak > bound). The
frequent-exceedance flag is a window count: see `rules.windows.frequent`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True)
class Tier:
    """One tier: its name and where it starts (the first tier starts at -inf)."""

    name: str
    bound: float = -math.inf
    inclusive: bool = True  # True: peak >= bound enters the tier; False: peak > bound


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("county"),
    Tier("city", 2.0, inclusive=True),
    Tier("province", 3.0, inclusive=False),
)
DEFAULT_HIGH_VALUE = 3.0


def check_tiers(tiers: Sequence[Tier]) -> None:
    """Raise unless the tiers start at -inf and their bounds strictly ascend.

    Equal bounds are allowed only as inclusive-then-exclusive (">= 3" then "> 3"), the one
    order in which both tiers can be reached.
    """
    if not tiers or tiers[0].bound != -math.inf:
        raise RulesError("the first severity tier must have no lower bound")
    for a, b in itertools.pairwise(tiers):
        if not (b.bound > a.bound or (b.bound == a.bound and a.inclusive and not b.inclusive)):
            raise RulesError(f"severity tier {b.name!r} must start above tier {a.name!r}")


def tier_index(peak: F64, tiers: Sequence[Tier] = DEFAULT_TIERS) -> I64:
    """Per peak, the index of its tier in ``tiers`` (a NaN peak falls in the first tier)."""
    check_tiers(tiers)
    p = np.asarray(peak, dtype=np.float64)
    idx = np.zeros(p.shape, np.int64)
    for tier in tiers[1:]:
        idx += (p >= tier.bound) if tier.inclusive else (p > tier.bound)
    return idx


def tier_names(peak: F64, tiers: Sequence[Tier] = DEFAULT_TIERS) -> list[str]:
    """Per peak, the name of its tier (e.g. the supervising level of a methane case)."""
    names = [t.name for t in tiers]
    return [names[i] for i in tier_index(peak, tiers).tolist()]


def high_value(peak: F64, at_least: float = DEFAULT_HIGH_VALUE) -> Bools:
    """Per peak: at or above the high-value level (flagged for root-cause measures)."""
    return np.asarray(peak, dtype=np.float64) >= at_least
