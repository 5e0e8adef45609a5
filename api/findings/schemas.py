"""Response models of findings (contract: id, rule, mine, subject, start, end, level, evidence, withdrawn)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from api.schemas import ApiModel, Page


class MineFindingOut(ApiModel):
    """What a rule found at a mine: an exceedance event, an order, an integrity, personnel or
    geotech finding, with the evidence a regulator judges it by."""

    id: int
    rule: str = Field(description="The rule id (contract), e.g. methane_exceedance, offline, tailings_warning")
    mine: str
    subject: str = Field(description="The point, card, area, station, face, quantity or pond it is about, or the mine")
    start: datetime
    end: datetime | None = Field(description="null while open")
    level: str = Field(description="alarm / power_off, warning / major, blue … red, or order")
    tier: str | None = Field(description="The supervising level the rule asks for, where it names one")
    state: str = Field(description="open, closed, or superseded (re-evaluation replaced or withdrew it)")
    withdrawn: bool = Field(description="Superseded with no successor: re-evaluation no longer shows it")
    evidence: dict[str, Any] | list[Any] = Field(description="Keys depend on the rule")


class FindingPage(Page[MineFindingOut]):
    """A page of a mine's findings, newest first."""
