"""Response models of the mines domain."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.cases.schemas import CaseSummary
from api.orders.schemas import OrderOut
from api.schemas import ApiModel, Page

MineStatus = Literal["normal", "warning", "under_order"]


class MineItem(ApiModel):
    """A mine as the list shows it."""

    code: str
    name: str
    kind: str
    county: str
    city: str
    province: str
    status: MineStatus = Field(description="under_order: an order is active or awaiting verification; "
                                           "warning: an exceedance event or a case is open")
    open_cases: int


class MinePage(Page[MineItem]):
    """A page of mines, by code."""


class RegistryCounts(ApiModel):
    """How much of the registry the mine holds."""

    stations: int
    points: int
    areas: int
    cards: int


class MineDetail(MineItem):
    """One mine: registry summary, status, open cases and active order."""

    timezone: str
    gas_class: str
    approved_underground: int | None
    shift_hours: float
    active: bool
    registry: RegistryCounts
    cases: list[CaseSummary] = Field(description="Cases not yet closed, newest first")
    active_order: OrderOut | None = Field(description="The order in force (active or awaiting verification)")
