"""Response models of the personnel domain."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas import ApiModel


class PersonOut(ApiModel):
    """A card counted underground."""

    card: str
    role: str
    name: str
    area: str | None = Field(description="Area code of the last read's station; null if in no area")
    station: str
    last_seen: datetime


class AreaCount(ApiModel):
    """Head count of one area against its approved limit."""

    area: str
    name: str
    count: int
    approved: int | None
    restricted: bool
    shaft: bool
    over: bool = Field(description="count exceeds approved")


class PersonnelOut(ApiModel):
    """Who is underground now (one page of people; counts are always over everyone)."""

    mine: str
    as_of: datetime
    window_hours: int = Field(description="Only cards read within this many hours are considered")
    underground: int
    approved: int | None = Field(description="The mine's approved underground head count")
    over: bool
    areas: list[AreaCount]
    unassigned: int = Field(description="Cards underground at a station that belongs to no area")
    items: list[PersonOut]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")
