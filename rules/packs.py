"""Rule packs: the configurable numbers of the rule catalogue, validated when loaded.

A pack (YAML, see ``rules/packs/*.yaml``) holds the episode settings (excluded status bits,
default max gap), the event merge (scope point | face | mine, gap), the count rules (kind
of finding, ``any_of`` clauses of N within a window, an action), the severity tiers, the
frequent / high-value flags and the default time zone. Every key has the seed default of
rules.md, so a pack states only what it changes — except its count rules.

Durations are strings: a whole number and a unit, ``s`` ``m`` (minutes) ``h`` ``d`` ``w``;
rolling windows also take ``mo`` (local calendar months, e.g. ``3mo``). Errors raise
`PackError` naming the file, the key path and the allowed values or keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from minewatch.validation import describe
from rules.calendar import DEFAULT_ZONE, PeriodKind
from rules.episodes import STATUS_BITS
from rules.errors import PackError, RulesError
from rules.events import Scope
from rules.severity import DEFAULT_HIGH_VALUE, Tier, check_tiers
from rules.windows import calendar_bounds, rolling_bounds, rolling_month_bounds

I64 = NDArray[np.int64]
PACK_DIR = Path(__file__).with_name("packs")
_SPAN = re.compile(r"^(\d+)(s|m|h|d|w|mo)$")
_UNIT_NS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
StatusBit = Literal[
    "alarm", "power_off", "calibrating", "over_range",
    "station_fault", "not_polled", "paused", "sensor_fault",
]
_DEFAULT_EXCLUDE: list[StatusBit] = [
    "calibrating", "over_range", "station_fault", "not_polled", "paused", "sensor_fault",
]


def parse_span(text: object) -> tuple[int, str]:
    """A duration string as (count, unit); raises ValueError with the accepted form."""
    match = _SPAN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration; write a whole number and a unit "
            "(s, m = minutes, h, d, w; rolling windows also mo = months), e.g. '72h'"
        )
    return int(match.group(1)), match.group(2)


def parse_duration(text: object) -> int:
    """A duration string (s, m, h, d, w) as int64 nanoseconds."""
    count, unit = parse_span(text)
    if unit == "mo":
        raise ValueError(f"{text!r}: months are only allowed for rolling windows")
    return count * _UNIT_NS[unit] * 1_000_000_000


Duration = Annotated[int, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EpisodeSettings(_Model):
    """Which readings episodes ignore and the default max gap between readings."""

    exclude: list[StatusBit] = Field(default_factory=lambda: list(_DEFAULT_EXCLUDE))
    max_gap: Duration = Field(default=parse_duration("5m"), gt=0)

    @property
    def exclude_mask(self) -> int:
        """The excluded status bits as a mask for `find_episodes`."""
        mask = 0
        for bit in self.exclude:
            mask |= STATUS_BITS[bit]
        return mask


class EventSettings(_Model):
    """How episodes merge into events."""

    scope: Scope = "face"
    gap: Duration = Field(default=parse_duration("10m"), ge=0)


class Window(_Model):
    """Either ``{rolling: 7d}`` or ``{calendar: iso_week | month | cycle, months: n}``."""

    rolling: str | None = None
    calendar: PeriodKind | None = None
    months: Literal[1, 2, 3, 4, 6, 12] | None = None
    anchor_month: int = Field(default=1, ge=1, le=12)

    @field_validator("rolling")
    @classmethod
    def _span(cls, value: str | None) -> str | None:
        if value is not None:
            parse_span(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Window:
        if (self.rolling is None) == (self.calendar is None):
            raise ValueError("give exactly one of 'rolling' (a duration) or 'calendar' "
                             "(allowed: iso_week, month, cycle)")
        if (self.calendar == "cycle") != (self.months is not None):
            raise ValueError("'months' is required with calendar: cycle and allowed only there")
        return self

    def bounds(self, times: I64, tz: str) -> tuple[I64, I64]:
        """Per finding, its window's index bounds (see `rules.windows`)."""
        if self.calendar is not None:
            return calendar_bounds(times, self.calendar, tz, months=self.months or 1,
                                   anchor_month=self.anchor_month)
        count, unit = parse_span(self.rolling)
        if unit == "mo":
            return rolling_month_bounds(times, count, tz)
        return rolling_bounds(times, count * _UNIT_NS[unit] * 1_000_000_000)


class Clause(_Model):
    """N findings within a window."""

    n: int = Field(ge=1)
    window: Window


class Ladder(_Model):
    """Escalating order durations within a calendar cycle of ``cycle_months``."""

    cycle_months: Literal[1, 2, 3, 4, 6, 12]
    anchor_month: int = Field(default=1, ge=1, le=12)
    durations: list[Duration] = Field(min_length=1)


class Action(_Model):
    """What a completed count does: an order (fixed duration or ladder) or an inspection."""

    type: Literal["order", "special_inspection"]
    duration: Duration | None = None
    ladder: Ladder | None = None

    @model_validator(mode="after")
    def _shape(self) -> Action:
        if self.type == "order" and (self.duration is None) == (self.ladder is None):
            raise ValueError("an order needs exactly one of 'duration' or 'ladder'")
        if self.type == "special_inspection" and self.ladder is not None:
            raise ValueError("a special inspection takes no 'ladder'")
        return self


class CountRule(_Model):
    """Count findings of one kind for one mine; when any clause is met, act."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    any_of: list[Clause] = Field(min_length=1)
    action: Action

    @model_validator(mode="after")
    def _accidents_call_for_inspection(self) -> CountRule:
        # An order's triggers are exceedance events (order_events); orders from accident
        # records are not built, so a pack must not ask for one and be silently ignored.
        if self.kind == "accident" and self.action.type != "special_inspection":
            raise ValueError("a count rule of kind 'accident' calls for a special inspection; "
                             "allowed action type: special_inspection")
        return self


class TierSpec(_Model):
    """A severity tier: the first has no bound, the others ``from`` (>=) or ``above`` (>)."""

    name: str
    from_: float | None = Field(default=None, alias="from")
    above: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> TierSpec:
        if self.from_ is not None and self.above is not None:
            raise ValueError("give at most one of 'from' (>=) or 'above' (>)")
        return self

    def tier(self) -> Tier:
        """The kernel form of this tier."""
        if self.above is not None:
            return Tier(self.name, self.above, inclusive=False)
        if self.from_ is not None:
            return Tier(self.name, self.from_, inclusive=True)
        return Tier(self.name)


class Severity(_Model):
    """Tiers by peak, lowest first."""

    tiers: list[TierSpec] = Field(
        default_factory=lambda: [
            TierSpec(name="county"), TierSpec(name="city", **{"from": 2.0}),
            TierSpec(name="province", above=3.0),
        ]
    )

    @model_validator(mode="after")
    def _ascending(self) -> Severity:
        try:
            check_tiers(self.kernel_tiers())
        except RulesError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def kernel_tiers(self) -> tuple[Tier, ...]:
        """The tiers for `rules.severity`."""
        return tuple(t.tier() for t in self.tiers)


class FrequentFlag(_Model):
    """At least n findings of a kind within a window (default 3 methane events in 30 days)."""

    kind: str = "methane_event"
    n: int = Field(default=3, ge=1)
    window: Window = Field(default_factory=lambda: Window(rolling="30d"))


class HighValueFlag(_Model):
    """Peak at or above a level."""

    peak_at_least: float = DEFAULT_HIGH_VALUE


class Flags(_Model):
    """Mine flags for root-cause measures."""

    frequent: FrequentFlag = Field(default_factory=FrequentFlag)
    high_value: HighValueFlag = Field(default_factory=HighValueFlag)


class PersonnelSettings(_Model):
    """The personnel rules' numbers (rules.md §7, §4 evacuation); each default is rules.md's
    (`rules.personnel.params.PersonnelParams`). The approved head counts, shift length and zone
    are the registry's."""

    over_capacity_min: Duration = Field(default=parse_duration("5m"), ge=0)
    major_excess_pct: int = Field(default=20, ge=0)
    leader_travel: Duration = Field(default=parse_duration("30m"), ge=0)
    leader_min_span: Duration = Field(default=parse_duration("30m"), ge=0)
    overtime_grace: Duration = Field(default=parse_duration("2h"), ge=0)
    shift_starts: list[str] = Field(default_factory=lambda: ["00:00", "08:00", "16:00"], min_length=1)
    evacuate: Duration = Field(default=parse_duration("30m"), ge=0)
    # National upper bounds of a mine's underground head count per shift (rules.md §7): the
    # mine's limit is its approved count capped by these (the bound alone when none is approved).
    national_limit: int = Field(default=450, ge=0)
    national_limit_severe: int = Field(default=850, ge=0)  # disaster-severe mines (registry)

    @field_validator("shift_starts")
    @classmethod
    def _clock_times(cls, value: list[str]) -> list[str]:
        for v in value:
            if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
                raise ValueError(f"{v!r} is not a local time of day HH:MM")
        if [_minutes(v) for v in value] != sorted({_minutes(v) for v in value}):
            raise ValueError(f"shift starts must be strictly increasing, got {value}")
        return value

    @property
    def shift_starts_min(self) -> tuple[int, ...]:
        """The shift starts as minutes of the local day."""
        return tuple(_minutes(v) for v in self.shift_starts)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


class RulePack(_Model):
    """One rule pack, as loaded and validated."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    timezone: str = DEFAULT_ZONE
    episodes: EpisodeSettings = Field(default_factory=EpisodeSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    count_rules: list[CountRule] = Field(default_factory=list)
    severity: Severity = Field(default_factory=Severity)
    flags: Flags = Field(default_factory=Flags)
    personnel: PersonnelSettings = Field(default_factory=PersonnelSettings)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from exc
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> RulePack:
        ids = [r.id for r in self.count_rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"count rule ids must be unique, got {ids}")
        accident = [r.id for r in self.count_rules if r.kind == "accident"]
        if len(accident) > 1:
            # A special inspection is a finding on the whole mine (subject the mine code,
            # rules.accidents): two accident rules would claim the same identities.
            raise ValueError(f"a pack holds at most one count rule of kind 'accident' (any_of takes "
                             f"several clauses), got {accident}")
        return self


def parse_pack(data: object, source: str) -> RulePack:
    """Validate a loaded mapping as a pack; ``source`` names it in errors (usually the path)."""
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise PackError(f"{source}: a rule pack must be a mapping of keys, got {kind}")
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        raise PackError(describe(exc, source=source, what="rule pack", model=RulePack)) from exc


def load_pack(path: str | Path) -> RulePack:
    """Read, parse and validate one pack file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PackError(f"{p}: cannot read rule pack: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise PackError(f"{p}: not valid YAML: {exc}") from exc
    return parse_pack(data, str(p))


def builtin_packs() -> list[str]:
    """Names of the packs shipped in ``rules/packs``."""
    return sorted(f.stem for f in PACK_DIR.glob("*.yaml"))


def builtin_pack(name: str) -> RulePack:
    """A shipped pack by name (default, national_month, ladder)."""
    names = builtin_packs()
    if name not in names:
        raise PackError(f"unknown rule pack {name!r}; allowed: {', '.join(names)}")
    return load_pack(PACK_DIR / f"{name}.yaml")
