"""The registry's models: mines, stations, faces, points, areas and cards, validated when built."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from minewatch.registry.catalogue import GAS_UNITS, SENSOR_GAS, LocationType, effective_thresholds
from minewatch.registry.thresholds import Thresholds

Role = Literal["worker", "leader", "visitor"]
ValueType = Literal["MN", "KG", "LJ", "DT"]
MineKind = Literal["coal", "noncoal", "tailings", "openpit"]
RelationKind = Literal["B", "G", "K", "H", "Z", "D", "T"]

# Sensor types that may be production signals (rules.md §7): 3001 a counter, 1004 on-off.
PRODUCTION_SIGNAL_TYPES: frozenset[str] = frozenset({"3001", "1004"})

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z_\-]+$")]
PointCode = Annotated[str, Field(min_length=1, max_length=28, pattern=r"^[0-9A-Za-z_\-]+$")]


class Relation(BaseModel):
    """A relation of a point to another (CDDY `X-<point>-<name>:Y-<point>`); D is power-off."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: RelationKind
    target: PointCode
    name: str = ""


class Pair(BaseModel):
    """A configured pair for `implausible_pair` (rules.md §6): the downstream point (e.g. a face's
    return airway) must not read far below its upstream point (the face)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    upstream: PointCode
    downstream: PointCode
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
    # A production signal (rules.md §7, electronic seal): a coal-output counter (3001) rising,
    # or a shearer / conveyor / equipment on-off point (1004) switching on, while a shutdown
    # order is active or awaiting verification, is a `seal_breach`.
    production_signal: bool = False

    @property
    def gas(self) -> str:
        return SENSOR_GAS.get(self.sensor_type, "other")

    def effective_thresholds(self) -> Thresholds:
        """Own thresholds if declared, else the catalogue's location-type defaults (analog points only)."""
        return effective_thresholds(self.thresholds, gas=self.gas, value_type=self.value_type,
                                    location_type=self.location_type)

    @model_validator(mode="after")
    def _unit_fits(self) -> Point:
        allowed = GAS_UNITS.get(self.gas)
        if allowed and self.unit and self.unit not in allowed:
            raise ValueError(f"point {self.code}: unit {self.unit!r} does not fit {self.gas} "
                             f"(its thresholds are in {' or '.join(allowed)}); allowed: {', '.join(allowed)} or empty")
        return self

    @model_validator(mode="after")
    def _signal_kind(self) -> Point:
        if self.production_signal and self.sensor_type not in PRODUCTION_SIGNAL_TYPES:
            raise ValueError(f"point {self.code}: production_signal needs a coal-output counter (3001) or an "
                             f"equipment on-off point (1004), not sensor type {self.sensor_type}")
        return self

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


class Face(BaseModel):
    """A working face or ventilation district; points and areas are tagged with its code."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    code: Code
    name: str = ""


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
    # A disaster-severe mine (灾害严重矿井) has the higher national bound on its underground head
    # count (rules.md §7: 850 per shift, 450 otherwise). Unset: an outburst mine is one.
    disaster_severe: bool | None = None
    shift_hours: float = Field(default=8.0, gt=0)
    stations: tuple[Station, ...] = ()
    # Declared faces; when given, every point's and area's face must be one of them. Without
    # them the faces are those the points name, and an area's face must be one of those.
    faces: tuple[Face, ...] = ()
    points: tuple[Point, ...] = ()
    areas: tuple[Area, ...] = ()
    cards: tuple[Card, ...] = ()
    # Pairs (upstream, downstream) of points of this mine judged by `implausible_pair`.
    pairs: tuple[Pair, ...] = ()

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
        seen_pairs: set[tuple[str, str]] = set()
        for pair in self.pairs:
            for end in (pair.upstream, pair.downstream):
                if end not in known:
                    raise ValueError(f"pair {pair.upstream} -> {pair.downstream}: {end!r} is not a point of this mine")
            if pair.upstream == pair.downstream:
                raise ValueError(f"pair {pair.upstream} -> {pair.downstream}: a point cannot be its own pair")
            if (pair.upstream, pair.downstream) in seen_pairs:
                raise ValueError(f"pair {pair.upstream} -> {pair.downstream} appears twice")
            seen_pairs.add((pair.upstream, pair.downstream))
        self._faces_exist()
        return self

    def _faces_exist(self) -> None:
        declared = [f.code for f in self.faces]
        if len(set(declared)) != len(declared):
            raise ValueError("duplicate face code")
        if declared:
            for p in self.points:
                if p.face is not None and p.face not in declared:
                    raise ValueError(f"point {p.code}: face {p.face!r} is not a face of this mine "
                                     f"(faces: {', '.join(declared)})")
        known = set(declared) | {p.face for p in self.points if p.face is not None}
        for a in self.areas:
            if a.face is not None and a.face not in known:
                raise ValueError(f"area {a.code}: face {a.face!r} is not a face of this mine "
                                 f"(faces: {', '.join(sorted(known)) or 'none'})")


    @property
    def severe(self) -> bool:
        """Whether the mine is disaster-severe (explicit, else an outburst mine)."""
        return self.disaster_severe if self.disaster_severe is not None else self.gas_class == "outburst"


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
