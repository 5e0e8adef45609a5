"""Response models of exceedance events (contract: id, mine, scope, start, end, peak, level, episodes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from api.schemas import ApiModel, Page

ExceedanceLevel = Literal["alarm", "power_off"]


class EpisodeOut(ApiModel):
    """One contiguous exceedance of one point."""

    id: int
    point: str
    location: str
    start: datetime
    end: datetime | None = Field(description="null while open")
    end_reason: str | None = Field(description="cleared, or gap (data stopped; silence is not a clearance)")
    peak: float
    peak_at: datetime
    level: ExceedanceLevel
    thresholds: dict[str, Any] = Field(description="The threshold set the episode was judged by")
    thresholds_from: datetime = Field(description="Effective time of that threshold set")


class ExceedanceOut(ApiModel):
    """An exceedance event: one or more episodes merged into the unit regulators count."""

    id: int
    mine: str
    gas: str
    scope: Literal["point", "face", "mine"]
    scope_key: str = Field(description="The point code, face code or mine code the event merges over")
    start: datetime
    end: datetime | None = Field(description="null while open")
    peak: float
    peak_at: datetime
    level: ExceedanceLevel
    tier: str | None = Field(description="Supervising tier by peak (county / city / province)")
    order_id: int | None
    episodes: list[EpisodeOut]


class ExceedancePage(Page[ExceedanceOut]):
    """A page of exceedance events, newest first."""
