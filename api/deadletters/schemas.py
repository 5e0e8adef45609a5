"""Response models of the dead-letters domain."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from api.schemas import ApiModel, Page


class DeadLetterOut(ApiModel):
    """One rejected item or message, kept whole."""

    id: int
    received_at: datetime
    source: str = Field(description="mqtt | file | sparkplug")
    topic: str | None
    file: str | None
    line: int | None
    mine: str | None = Field(description="The mine the input claimed, when it could be told")
    reason: str
    detail: str
    payload: str
    reprocessed_at: datetime | None


class DeadLetterPage(Page[DeadLetterOut]):
    """A page of dead letters, newest first."""
