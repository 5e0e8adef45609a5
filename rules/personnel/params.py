"""The tunable numbers of the personnel rules, each with its rules.md default (a rule pack may override).

Durations are int64 nanoseconds. The per-mine facts (approved head counts, the approved shift
length, the zone) come from the registry and are arguments of the kernels, not fields here.
"""

from __future__ import annotations

from dataclasses import dataclass

from rules.errors import RulesError

S = 1_000_000_000
MIN = 60 * S
HOUR = 60 * MIN


@dataclass(frozen=True)
class PersonnelParams:
    """Defaults of rules.md §7 and §4; validated when built."""

    # §7 over-capacity: "exceeds its approved limit continuously for >= 5 min (configurable;
    # shift changes produce short surges)", and the major level needs the same duration.
    over_capacity_min_ns: int = 5 * MIN
    # §7: warning "while the excess is <= 20 % of the limit", major above 1.2 x the limit
    # (the at-a-glance table: exactly 1.2 x is warning). A whole percentage keeps the
    # comparison in integers: count * 100 > limit * (100 + pct), no float rounding at 1.2 x 10.
    major_excess_pct: int = 20
    # §7 leader on shift: "ignoring the first and last 30 min of the shift (travel)".
    leader_travel_ns: int = 30 * MIN
    # §7: "each maximal span of >= 30 min with workers and no leader underground".
    leader_min_span_ns: int = 30 * MIN
    # §7 overtime: "the mine's approved shift length plus a grace (default 8 h + 2 h)"; the
    # shift length is the registry's (`shift_hours`), the grace is the pack's.
    overtime_grace_ns: int = 2 * HOUR
    # §7: "Shifts default to 00–08, 08–16, 16–24 local time": local start minutes of day.
    shift_starts_min: tuple[int, ...] = (0, 8 * 60, 16 * 60)
    # §4 evacuate: cards present at t must have left the face's areas "by t + 30 min
    # (configurable)".
    evacuate_ns: int = 30 * MIN

    def __post_init__(self) -> None:
        for name in ("over_capacity_min_ns", "leader_travel_ns", "leader_min_span_ns",
                     "overtime_grace_ns", "evacuate_ns"):
            if getattr(self, name) < 0:
                raise RulesError(f"personnel parameter {name} must not be negative, got {getattr(self, name)}")
        if self.major_excess_pct < 0:
            raise RulesError(f"personnel parameter major_excess_pct must not be negative, got {self.major_excess_pct}")
        starts = self.shift_starts_min
        if not starts or list(starts) != sorted(set(starts)) or starts[0] < 0 or starts[-1] >= 24 * 60:
            raise RulesError("personnel parameter shift_starts_min must be strictly increasing minutes "
                             f"of the day in 0..1439, got {starts!r}")


DEFAULT_PARAMS = PersonnelParams()
