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
    since: datetime = Field(description="First read of the card's current run in this area")
    entered: datetime = Field(description="When the card went underground: its first read after its last shaft "
                                          "read (rules.md §7 presence)")


class OvertimeOut(ApiModel):
    """A card in overtime: an open `overtime` finding of the rules worker (rules.md §7)."""

    card: str
    entry: datetime | None = Field(description="When the card went underground")
    since: datetime = Field(description="When its approved shift plus grace ran out (the finding's start)")
    finding: int = Field(description="Id of the open overtime finding")


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
    underground: int
    approved: int | None = Field(description="The mine's approved underground head count (registry)")
    limit: int = Field(description="The underground limit `over_capacity` judges by (rules.md §7): the approved "
                                   "count capped by the national bound, 450, or 850 for a disaster-severe mine")
    over: bool = Field(description="underground exceeds limit")
    areas: list[AreaCount]
    unassigned: int = Field(description="Cards underground at a station that belongs to no area")
    leader_underground: bool = Field(description="A leader card (矿领导带班) is underground now")
    leaders: list[str] = Field(description="Leader cards underground now")
    overtime: list[OvertimeOut] = Field(description="Cards in overtime (open overtime findings), by card")
    items: list[PersonOut]
    next_cursor: str | None = Field(description="Opaque; pass as `cursor` for the next page")
