"""Slopes and tailings dams (rules.md §8): pure kernels for levels, the GB 50863 ladder, rates,
the improved tangent angle and the inverse-velocity forecast.

Every kernel takes int64 ns UTC times and numpy arrays and returns arrays; none reads a clock,
a connection or the environment. Readings are sorted by (point index, ts); `windows.usable_rows`
drops what no geotech kernel reads (repeated times, excluded status bits, NaN values) and
`windows.trailing_bounds` gives each reading's trailing window as (start, end) row bounds.
Levels are small integers 0..4, `NONE` … `RED`, as the contract names them (`LEVEL_NAMES`).
"""

from __future__ import annotations

NONE, BLUE, YELLOW, ORANGE, RED = 0, 1, 2, 3, 4
LEVELS: tuple[int, ...] = (BLUE, YELLOW, ORANGE, RED)
# The contract's spelling of the four warning levels (contract.md "Rule ids"; rules.md §8).
LEVEL_NAMES: tuple[str, ...] = ("none", "blue", "yellow", "orange", "red")

NS_PER_HOUR = 3_600 * 1_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR
