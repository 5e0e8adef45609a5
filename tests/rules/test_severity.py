"""Severity tiers by peak and the high-value flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rules.errors import RulesError
from rules.severity import DEFAULT_TIERS, Tier, high_value, tier_index, tier_names


def test_shanxi_tiers_at_their_bounds() -> None:
    peaks = np.array([1.0, 1.999, 2.0, 2.5, 3.0, 3.0001, 8.0, math.nan])
    assert tier_names(peaks) == ["county", "county", "city", "city", "city", "province",
                                 "province", "county"]
    assert high_value(peaks).tolist() == [False, False, False, False, True, True, True, False]


def test_tiers_are_configurable() -> None:
    tiers = (Tier("mine"), Tier("county", 1.5), Tier("province", 2.5, inclusive=False))
    assert tier_index(np.array([1.0, 1.5, 2.5, 2.6]), tiers).tolist() == [0, 1, 1, 2]
    assert high_value(np.array([2.0, 2.5]), at_least=2.5).tolist() == [False, True]


def test_tiers_must_ascend() -> None:
    with pytest.raises(RulesError, match="'city' must start above tier 'province'"):
        tier_index(np.array([1.0]), (Tier("county"), Tier("province", 3.0), Tier("city", 2.0)))
    with pytest.raises(RulesError, match="no lower bound"):
        tier_index(np.array([1.0]), (Tier("county", 1.0),))
    # ">= 3" then "> 3" is the one order in which equal bounds make sense.
    tiers = (Tier("a"), Tier("b", 3.0), Tier("c", 3.0, inclusive=False))
    assert tier_index(np.array([3.0, 3.1]), tiers).tolist() == [1, 2]
    assert DEFAULT_TIERS[1] == Tier("city", 2.0, True)
