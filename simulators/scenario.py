"""Scenario files: scripted events (methane rises, faults, outages, crowds, rain), expectations."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from minewatch.registry import Mine, Registry
from minewatch.timeutil import to_ns
from minewatch.validation import describe
from simulators.errors import SimulatorError
from simulators.params import ModelParams

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
GEOTECH_DISPLACEMENT = ("0021", "0034")


def parse_duration(value: object) -> int:
    """`"6m"`, `"1h30m"`, `"90s"`, `"2d"` or a number of seconds, as milliseconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is text like '6m', '1h30m', '90s' or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return round(float(value) * 1000)
    if not isinstance(value, str):
        raise ValueError("a duration is text like '6m', '1h30m', '90s' or a number of seconds")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration (allowed units: ms, s, m, h, d; e.g. '1h30m')")
    return round(total)


def _when(value: object) -> datetime | int:
    """An aware time, or `+<duration>` after the start of the run (returned as ms)."""
    if isinstance(value, str) and value.strip().startswith("+"):
        return parse_duration(value.strip()[1:])
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an RFC 3339 time nor '+<duration>'") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a time needs an offset, e.g. 2026-11-23T10:05:00+08:00")
        return value
    raise ValueError("expected an RFC 3339 time with offset or '+<duration>'")


Duration = Annotated[int, BeforeValidator(parse_duration)]
When = Annotated[datetime | int, BeforeValidator(_when)]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: When
    duration: Duration = 600_000

    def start_ms(self, run_start_ms: int) -> int:
        """Absolute start in epoch ms; relative times count from the start of the run."""
        if isinstance(self.at, datetime):
            return to_ns(self.at) // 1_000_000
        return run_start_ms + self.at

    def end_ms(self, run_start_ms: int) -> int:
        return self.start_ms(run_start_ms) + self.duration


class MethaneRise(_Event):
    """An analog value ramps to `to`, holds it for `duration`, ramps back (any analog point)."""

    kind: Literal["methane_rise"]
    point: str
    to: float
    ramp: Duration = 60_000
    # Crews of the point's face leave once the value is at alarm level; set
    # false to script "work continued after exceedance".
    evacuate: bool = True

    def hold_ms(self, run_start_ms: int) -> tuple[int, int]:
        """[first, last] ms during which the value is exactly `to`."""
        s = self.start_ms(run_start_ms) + self.ramp
        return s, s + self.duration

    def end_ms(self, run_start_ms: int) -> int:
        return self.start_ms(run_start_ms) + 2 * self.ramp + self.duration


class Calibrate(_Event):
    """Status bit 4 for `duration`; the value ramps to the test gas `to` if given."""

    kind: Literal["calibrate"]
    point: str
    to: float | None = None
    ramp: Duration = 60_000


class Fault(_Event):
    """Status bits (default 128, sensor fault) OR-ed into every reading for `duration`."""

    kind: Literal["fault"]
    point: str
    bits: int = Field(default=128, ge=1, le=255)


class StationDown(_Event):
    """Station state 1 (comm lost: its points go silent) or 2 (fault: its points carry bit 16)."""

    kind: Literal["station_down"]
    station: str
    state: Literal[1, 2, 9] = 1


class Stuck(_Event):
    """The value freezes at the last natural value before `at`."""

    kind: Literal["stuck"]
    point: str


class Silence(_Event):
    """The point stops reporting."""

    kind: Literal["silence"]
    point: str


# YCBJ abnormal types (formats.md) the simulated system reports; the alarm types 001 / 002 are
# the ones rules.md §6 `under_reporting` compares with the episodes it computes.
YcbjCode = Literal["001", "002", "004", "007", "008"]


class HideAlarm(_Event):
    """The mine's YCBJ upload leaves out the point's abnormal records (of `codes`) whose episode
    starts in [at, at + duration): neither its start nor its end is reported. The readings, and
    so CDSS and TJSJ, still show the values (file mode only: MQTT carries no YCBJ)."""

    kind: Literal["hide_alarm"]
    point: str
    codes: tuple[YcbjCode, ...] = Field(default=("001", "002"), min_length=1)

    def hides(self, run_start_ms: int, code: str, episode_start_ms: int) -> bool:
        """True when the record of type `code` of an episode starting at `episode_start_ms` is left out."""
        return code in self.codes and self.start_ms(run_start_ms) <= episode_start_ms < self.end_ms(run_start_ms)


class CardEnterRestricted(_Event):
    """A card walks into a restricted area (the mine's first one unless `area` is given)."""

    kind: Literal["card_enter_restricted"]
    mine: str
    area: str | None = None
    card: str | None = None


class Overcrowd(_Event):
    """`n` extra cards come down and stay in `area` for `duration`."""

    kind: Literal["overcrowd"]
    mine: str
    area: str
    n: int = Field(ge=1, le=10_000)


class Rainfall(_Event):
    """Rain of `mm_per_h` for `duration` at a mine (tailings pond or pit)."""

    kind: Literal["rainfall"]
    mine: str
    mm_per_h: float = Field(gt=0.0, le=500.0)


class SlopeAccelerate(_Event):
    """Displacement speeds up to `factor` × its creep rate over `duration`, then holds."""

    kind: Literal["slope_accelerate"]
    mine: str | None = None
    point: str | None = None
    factor: float = Field(default=50.0, gt=1.0, le=1e6)


class ProductionHalt(_Event):
    """The mine stops producing (coal output flat, equipment off, methane at its quiet level)."""

    kind: Literal["production_halt"]
    mine: str


Event = Annotated[
    MethaneRise
    | Calibrate
    | Fault
    | StationDown
    | Stuck
    | Silence
    | HideAlarm
    | CardEnterRestricted
    | Overcrowd
    | Rainfall
    | SlopeAccelerate
    | ProductionHalt,
    Field(discriminator="kind"),
]


class Scenario(BaseModel):
    """A scenario file: events, optional model overrides and free-form expectations for tests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    model: ModelParams | None = None
    events: tuple[Event, ...] = ()
    expect: dict[str, Any] = Field(default_factory=dict)

    def params(self, base: ModelParams | None = None) -> ModelParams:
        """The scenario's model overrides applied over `base` (defaults if None)."""
        if self.model is None:
            return base or ModelParams()
        merged = (base or ModelParams()).model_dump()
        merged.update(self.model.model_dump(exclude_unset=True))
        return ModelParams.model_validate(merged)


def parse_scenario(data: object, source: str = "<scenario>", registry: Registry | None = None) -> Scenario:
    """Validate a parsed scenario mapping; with a registry, also every code it names."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SimulatorError(f"{source}: a scenario is a mapping with an 'events' list")
    if "expect" in data and not isinstance(data["expect"], dict):
        raise SimulatorError(f"{source}: expect: must be a mapping (got {type(data['expect']).__name__})")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        # Events are named by their kind as well as their index (`events[2](kind=silence)`).
        raise SimulatorError(describe(exc, source=source, what="scenario", data=data, label="kind",
                                       model=Scenario)) from exc
    if registry is not None:
        problems = check_codes(scenario, registry)
        if problems:
            raise SimulatorError("\n".join([f"{source}: scenario names codes the registry lacks:", *problems]))
    return scenario


def load_scenario(path: Path, registry: Registry | None = None) -> Scenario:
    """Load and validate a scenario YAML file; errors name file, key and allowed values."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimulatorError(f"{path}: cannot read scenario: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SimulatorError(f"{path}: not valid YAML: {exc}") from exc
    return parse_scenario(data, str(path), registry)


def _allowed(codes: list[str], limit: int = 12) -> str:
    shown = ", ".join(codes[:limit])
    return f" (allowed: {shown}{', ...' if len(codes) > limit else ''})"


def check_codes(scenario: Scenario, registry: Registry) -> list[str]:
    """Every point, station, mine, area and card an event names must exist and fit the event."""
    points = {p.code: (m, p) for m, p in registry.iter_points()}
    stations = {s.code for m in registry.mines for s in m.stations}
    mines = {m.code: m for m in registry.mines}
    out: list[str] = []
    for i, ev in enumerate(scenario.events):
        at = f"  events[{i}](kind={ev.kind})"
        point = getattr(ev, "point", None)
        if point is not None:
            if point not in points:
                out.append(f"{at}.point: unknown point {point!r}")
            elif ev.kind in ("methane_rise", "calibrate") and points[point][1].value_type != "MN":
                out.append(f"{at}.point: {point} is not an analog (MN) point")
            elif ev.kind == "slope_accelerate" and points[point][1].sensor_type not in GEOTECH_DISPLACEMENT:
                out.append(f"{at}.point: {point} is not a displacement point (sensor 0021 / 0034)")
        if isinstance(ev, StationDown) and ev.station not in stations:
            out.append(f"{at}.station: unknown station {ev.station!r}")
        mine_code = getattr(ev, "mine", None)
        if mine_code is None:
            if isinstance(ev, SlopeAccelerate) and ev.point is None:
                out.append(f"{at}: give a mine or a point")
            continue
        if mine_code not in mines:
            out.append(f"{at}.mine: unknown mine {mine_code!r}" + _allowed(sorted(mines)))
            continue
        out.extend(_check_mine_event(at, ev, mines[mine_code]))
    return out


def _check_mine_event(at: str, ev: Any, mine: Mine) -> list[str]:
    areas = {a.code: a for a in mine.areas}
    out: list[str] = []
    if isinstance(ev, CardEnterRestricted | Overcrowd) and not any(a.shaft for a in mine.areas):
        out.append(f"{at}.mine: mine {mine.code} has no shaft area, cards cannot come down")
    if isinstance(ev, Overcrowd) and ev.area not in areas:
        out.append(f"{at}.area: unknown area {ev.area!r} of mine {mine.code}" + _allowed(sorted(areas)))
    if isinstance(ev, CardEnterRestricted):
        restricted = sorted(a.code for a in mine.areas if a.restricted)
        if ev.area is not None and ev.area not in restricted:
            out.append(f"{at}.area: {ev.area!r} is not a restricted area of mine {mine.code}" + _allowed(restricted))
        if ev.area is None and not restricted:
            out.append(f"{at}.mine: mine {mine.code} has no restricted area")
        if ev.card is not None and ev.card not in {c.code for c in mine.cards}:
            out.append(f"{at}.card: unknown card {ev.card!r} of mine {mine.code}")
    if (
        isinstance(ev, SlopeAccelerate)
        and ev.point is None
        and not any(p.sensor_type in GEOTECH_DISPLACEMENT for p in mine.points)
    ):
        out.append(f"{at}.mine: mine {mine.code} has no displacement point (sensor 0021 / 0034)")
    return out
