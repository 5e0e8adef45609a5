"""Response models of the orders domain (contract: id, mine, rule, start, min_end, state, events)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from api.schemas import ApiModel, Page

OrderState = Literal["active", "awaiting_verification", "lifted"]


class OrderOut(ApiModel):
    """A shutdown order."""

    id: int
    mine: str
    rule: str
    pack: str
    start: datetime
    min_end: datetime = Field(description="The order lasts at least until this time")
    state: OrderState
    ladder_step: int
    lifted_at: datetime | None
    events: list[int] = Field(description="Ids of the exceedance events that triggered or attached to it")
    trigger_events: list[int] = Field(description="The events that completed the count")


class OrderPage(Page[OrderOut]):
    """A page of orders, newest first."""
