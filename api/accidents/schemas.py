"""Request and response models of accident records."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import ApiModel, Page, SafeText, UtcTime

AccidentSeverity = Literal["general", "major", "serious", "especially_serious"]


class AccidentIn(BaseModel):
    """An accident to record against a mine."""

    model_config = ConfigDict(extra="forbid")

    occurred_at: UtcTime
    severity: AccidentSeverity
    description: Annotated[SafeText, Field(max_length=4000)] = ""


class AccidentOut(ApiModel):
    """A recorded accident."""

    id: int
    mine: str
    occurred_at: datetime
    severity: AccidentSeverity
    description: str
    created_by: str
    created_at: datetime


class AccidentPage(Page[AccidentOut]):
    """A page of accidents, most recent first."""
