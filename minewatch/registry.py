"""The registry: mines, stations, points, areas and cards, declared in YAML and validated at load."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from minewatch.errors import ConfigError

Role = Literal["worker", "leader", "visitor"]
ValueType = Literal["MN", "KG", "LJ", "DT"]
MineKind = Literal["coal", "noncoal", "tailings", "openpit"]
LocationType = Literal[
    "T0", "T1", "T2", "intake", "return_middle", "shearer", "heading", "heading_return",
    "main_return", "chamber", "face_intake", "other",
]
RelationKind = Literal["B", "G", "K", "H", "Z", "D", "T"]

# Sensor-type code (formats.md) -> the gas / quantity name the rules speak of.
SENSOR_GAS: dict[str, str] = {
    "0001": "methane", "0011": "methane", "0043": "methane", "0022": "pipe_methane",
    "0002": "wind_speed", "0003": "temperature", "0004": "co", "0005": "wind_pressure",
    "0006": "negative_pressure", "0009": "h2s", "0012": "o2", "0013": "co2", "0014": "dust",
    "0018": "humidity", "0019": "air_volume", "0020": "roof_separation",
    "0021": "dam_displacement", "0029": "water_level", "0030": "phreatic_depth",
    "0031": "rainfall", "0032": "beach_length", "0033": "freeboard", "0034": "slope_displacement",
    "1001": "local_fan", "1002": "air_door", "1004": "equipment", "1005": "switch",
    "1009": "poweroff_relay", "1010": "main_fan", "1011": "feed", "1015": "feed",
    "3001": "coal_output", "3002": "drained_gas", "4001": "station", "4002": "power_supply",
}

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z_\-]+$")]
PointCode = Annotated[str, Field(min_length=1, max_length=28, pattern=r"^[0-9A-Za-z_\-]+$")]


class Thresholds(BaseModel):
    """The six (eight, with both restore sides) thresholds of an analog point; None = absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alarm_hi: float | None = None
    clear_hi: float | None = None
    poweroff_hi: float | None = None
    restore_hi: float | None = None
    alarm_lo: float | None = None
    clear_lo: float | None = None
    poweroff_lo: float | None = None
    restore_lo: float | None = None

    def as_tuple(self) -> tuple[float | None, ...]:
        return (self.alarm_hi, self.clear_hi, self.poweroff_hi, self.restore_hi,
                self.alarm_lo, self.clear_lo, self.poweroff_lo, self.restore_lo)

    def is_empty(self) -> bool:
        return all(v is None for v in self.as_tuple())


# rules.md §1, methane (%CH4) by location type: (alarm, power-off, restore).
# Clear (解报) defaults to the restore value, or to the alarm value where the
# table gives no restore: a reading under it ends the episode.
METHANE_DEFAULTS: dict[str, tuple[float, float | None, float | None]] = {
    "T0": (1.0, 1.5, 1.0), "T1": (1.0, 1.5, 1.0), "T2": (1.0, 1.0, 1.0),
    "intake": (0.5, 0.5, 0.5), "face_intake": (0.5, 0.5, 0.5), "return_middle": (1.0, 1.0, 1.0),
    "shearer": (1.0, 1.5, 1.0), "heading": (1.0, 1.5, 1.0), "heading_return": (1.0, 1.0, 1.0),
    "main_return": (0.75, None, None), "chamber": (0.5, 0.5, 0.5), "other": (1.0, 1.5, 1.0),
}


def default_thresholds(gas: str, location_type: str) -> Thresholds:
    """Location-type defaults of rules.md §1 for a point that declares none."""
    if gas == "methane":
        alarm, poweroff, restore = METHANE_DEFAULTS.get(location_type, METHANE_DEFAULTS["other"])
        return Thresholds(alarm_hi=alarm, clear_hi=restore if restore is not None else alarm,
                          poweroff_hi=poweroff, restore_hi=restore)
    if gas == "co":
        return Thresholds(alarm_hi=24.0, clear_hi=24.0)
    if gas == "o2":
        return Thresholds(alarm_lo=20.0, clear_lo=20.0)
    if gas == "co2":
        return Thresholds(alarm_hi=0.5, clear_hi=0.5)
    return Thresholds()


class Relation(BaseModel):
    """A relation of a point to another (CDDY `X-<point>-<name>:Y-<point>`); D is power-off."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: RelationKind
    target: PointCode
    name: str = ""


class GeoLevels(BaseModel):
    """Four warning levels of a slope / tailings quantity and which direction is worse."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    blue: float | None = None
    yellow: float | None = None
    orange: float | None = None
    red: float | None = None
    worse: Literal["higher", "lower"] = "higher"


class Point(BaseModel):
    """One sensor channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: PointCode
    station: Code
    sensor_type: Annotated[str, Field(pattern=r"^\d{4}$")]
    value_type: ValueType = "MN"
    unit: str = ""
    range_low: float | None = None
    range_high: float | None = None
    location_type: LocationType = "other"
    location: str = ""
    face: Code | None = None
    thresholds: Thresholds | None = None
    thresholds_effective_from: datetime | None = None
    relations: tuple[Relation, ...] = ()
    expected_period_s: float = Field(default=30.0, gt=0)
    max_gap_s: float = Field(default=300.0, gt=0)
    levels: GeoLevels | None = None
    slope_height_m: float | None = None

    @property
    def gas(self) -> str:
        return SENSOR_GAS.get(self.sensor_type, "other")

    def effective_thresholds(self) -> Thresholds:
        """Own thresholds if declared, else the location-type defaults (analog points only)."""
        if self.thresholds is not None and not self.thresholds.is_empty():
            return self.thresholds
        if self.value_type != "MN":
            return Thresholds()
        return default_thresholds(self.gas, self.location_type)

    @field_validator("thresholds_effective_from")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("thresholds_effective_from needs an offset (e.g. +08:00)")
        return v


class Station(BaseModel):
    """An outstation; its fault makes all its points untrustworthy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    location: str = ""


class Area(BaseModel):
    """A personnel-location area: the stations that see it, its approved head count and flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    name: str = ""
    stations: tuple[Code, ...] = ()
    approved: int | None = Field(default=None, ge=0)
    restricted: bool = False
    shaft: bool = False
    face: Code | None = None


class Card(BaseModel):
    """A personnel card and the role of its holder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    role: Role = "worker"
    name: str = ""


class Mine(BaseModel):
    """One mine (or tailings pond / open pit) and everything it owns."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    name: str
    kind: MineKind = "coal"
    timezone: str = "Asia/Shanghai"
    county: Code
    city: Code
    province: Code
    # WGS-84 position of the mine (the console's map); optional, a mine without one is not drawn.
    longitude: float | None = Field(default=None, ge=-180, le=180)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    gas_class: Literal["low", "high", "outburst"] = "low"
    approved_underground: int | None = Field(default=None, ge=0)
    shift_hours: float = Field(default=8.0, gt=0)
    stations: tuple[Station, ...] = ()
    points: tuple[Point, ...] = ()
    areas: tuple[Area, ...] = ()
    cards: tuple[Card, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Mine:
        stations = {s.code for s in self.stations}
        if len(stations) != len(self.stations):
            raise ValueError("duplicate station code")
        for p in self.points:
            if p.station not in stations:
                raise ValueError(f"point {p.code}: station {p.station!r} is not a station of this mine")
        for a in self.areas:
            for s in a.stations:
                if s not in stations:
                    raise ValueError(f"area {a.code}: station {s!r} is not a station of this mine")
        codes = [p.code for p in self.points]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate point code")
        known = set(codes)
        for p in self.points:
            for r in p.relations:
                if r.target not in known:
                    raise ValueError(f"point {p.code}: relation target {r.target!r} is not a point of this mine")
        return self


class Region(BaseModel):
    """A county, city or province: the unit a regulator's scope is drawn in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    name: str
    level: Literal["county", "city", "province"]
    parent: Code | None = None


class Registry(BaseModel):
    """The whole registry file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Literal[1] = 1
    regions: tuple[Region, ...] = ()
    mines: tuple[Mine, ...]

    @model_validator(mode="after")
    def _unique(self) -> Registry:
        for kind, items in (
            ("mine", [m.code for m in self.mines]),
            ("point", [p.code for m in self.mines for p in m.points]),
            ("station", [s.code for m in self.mines for s in m.stations]),
            ("card", [c.code for m in self.mines for c in m.cards]),
        ):
            seen: set[str] = set()
            for code in items:
                if code in seen:
                    raise ValueError(f"{kind} code {code!r} appears twice (codes are national)")
                seen.add(code)
        return self

    def mine(self, code: str) -> Mine:
        for m in self.mines:
            if m.code == code:
                return m
        raise KeyError(code)

    def iter_points(self) -> Iterator[tuple[Mine, Point]]:
        for m in self.mines:
            for p in m.points:
                yield m, p


def _where(loc: tuple[int | str, ...], data: object) -> str:
    """Render a pydantic error location with the entry's code, so the message names the entry."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and 0 <= item < len(node):
            node = node[item]
            code = node.get("code") if isinstance(node, dict) else None
            parts.append(f"[{item}]" + (f"(code={code})" if code else ""))
        else:
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(f".{item}")
    return "".join(parts).lstrip(".")


def load_registry(path: Path) -> tuple[Registry, str]:
    """Load and validate a registry file; returns the registry and the file's sha256.

    Raises ConfigError naming the file, the entry and the problem.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read registry: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the registry must be a mapping with a 'mines' list")
    try:
        reg = Registry.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: invalid registry:"]
        for err in exc.errors():
            where = _where(tuple(err["loc"]), data)
            allowed = err.get("ctx", {}).get("expected")
            lines.append(f"  {where or '<root>'}: {err['msg']}" + (f" (allowed: {allowed})" if allowed else ""))
        raise ConfigError("\n".join(lines)) from exc
    return reg, hashlib.sha256(raw).hexdigest()


def thresholds_equal(a: Thresholds, b: Thresholds) -> bool:
    """Compare two threshold sets treating None and NaN alike."""
    def norm(v: float | None) -> float | None:
        return None if v is None or math.isnan(v) else v
    return [norm(x) for x in a.as_tuple()] == [norm(y) for y in b.as_tuple()]
