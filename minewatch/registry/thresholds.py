"""A point's threshold set and the order its levels must keep (rules.md §1), checked wherever one is built."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, model_validator

THRESHOLD_FIELDS: tuple[str, ...] = ("alarm_hi", "clear_hi", "poweroff_hi", "restore_hi",
                                     "alarm_lo", "clear_lo", "poweroff_lo", "restore_lo")

# (lower, higher) pairs that must hold when both are present. Upper side (higher is worse):
# clear <= alarm <= power-off, and power comes back (restore) at or below the power-off level.
# Lower side (oxygen, lower is worse) mirrored. Across the sides the lower alarm lies strictly
# below the upper one, or every value would be in alarm.
_ORDER: tuple[tuple[str, str], ...] = (
    ("clear_hi", "alarm_hi"), ("alarm_hi", "poweroff_hi"), ("restore_hi", "poweroff_hi"),
    ("alarm_lo", "clear_lo"), ("poweroff_lo", "alarm_lo"), ("poweroff_lo", "restore_lo"),
)


def order_problems(values: Mapping[str, float | None]) -> list[str]:
    """What is wrong with a threshold set's order, one sentence each; empty when it is sound.

    The one check of threshold order: the registry file, CDDY definitions and every writer of
    versions go through it, so a disordered set is refused, never repaired.
    """
    problems: list[str] = []
    for name in THRESHOLD_FIELDS:
        v = values.get(name)
        if v is not None and not math.isfinite(v):
            problems.append(f"{name}={v} is not a finite number")
    if problems:
        return problems
    for low, high in _ORDER:
        a, b = values.get(low), values.get(high)
        if a is not None and b is not None and a > b:
            problems.append(f"{low}={a} must be at or below {high}={b}")
    lo, hi = values.get("alarm_lo"), values.get("alarm_hi")
    if lo is not None and hi is not None and lo >= hi:
        problems.append(f"alarm_lo={lo} must be below alarm_hi={hi} (else every value is in alarm)")
    return problems


class Thresholds(BaseModel):
    """The eight thresholds of an analog point (alarm, clear, power-off, restore per side); None = absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alarm_hi: float | None = None
    clear_hi: float | None = None
    poweroff_hi: float | None = None
    restore_hi: float | None = None
    alarm_lo: float | None = None
    clear_lo: float | None = None
    poweroff_lo: float | None = None
    restore_lo: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        problems = order_problems(self.as_dict())
        if problems:
            raise ValueError("thresholds out of order: " + "; ".join(problems))
        return self

    def as_tuple(self) -> tuple[float | None, ...]:
        """The eight values in `THRESHOLD_FIELDS` order (the column order of `point_thresholds`)."""
        return (self.alarm_hi, self.clear_hi, self.poweroff_hi, self.restore_hi,
                self.alarm_lo, self.clear_lo, self.poweroff_lo, self.restore_lo)

    def as_dict(self) -> dict[str, float | None]:
        """The eight values by name."""
        return dict(zip(THRESHOLD_FIELDS, self.as_tuple(), strict=True))

    def is_empty(self) -> bool:
        """True when no threshold is set."""
        return all(v is None for v in self.as_tuple())


def same_values(a: tuple[float | None, ...], b: tuple[float | None, ...]) -> bool:
    """Compare two threshold tuples treating None and NaN alike (stored rows may hold either)."""
    def norm(v: float | None) -> float | None:
        return None if v is None or math.isnan(v) else v
    return [norm(x) for x in a] == [norm(y) for y in b]


def thresholds_equal(a: Thresholds, b: Thresholds) -> bool:
    """Compare two threshold sets treating None and NaN alike."""
    return same_values(a.as_tuple(), b.as_tuple())
