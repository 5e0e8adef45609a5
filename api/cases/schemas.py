"""Response and request models of the cases domain (contract: id, mine, rule, level, state, opened_at, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import ApiModel, Page, SafeText, UtcTime

CaseStateName = Literal["open", "acknowledged", "rectifying", "rectified", "verified", "closed"]
LevelName = Literal["mine", "county", "city", "province"]
ActionName = Literal["acknowledge", "plan", "submit", "verify", "reject", "close"]


class CaseSummary(ApiModel):
    """A case as lists show it."""

    id: int
    mine: str
    rule: str
    level: str = Field(description="Supervising level now: mine | county | city | province")
    severity: str
    state: str
    title: str
    opened_at: datetime
    deadline: datetime | None
    acknowledged_at: datetime | None
    closed_at: datetime | None
    order_id: int | None
    withdrawn: bool = Field(description=(
        "Every finding of the case was withdrawn: re-evaluation (late data, a corrected threshold) no "
        "longer shows it. Its timers stop and the supervising regulator may close it from any state, "
        "with a comment (docs/alerting.md)"))


class CasePage(Page[CaseSummary]):
    """A page of cases, newest first."""


class FindingOut(ApiModel):
    """A finding the case tracks."""

    id: int
    rule: str
    subject: str
    start: datetime
    end: datetime | None
    level: str
    tier: str | None
    state: str
    withdrawn: bool = Field(description="Superseded with no successor: re-evaluation no longer shows it")
    evidence: dict[str, Any] | list[Any]


class ChecklistItemOut(ApiModel):
    """One of the four measures of a methane case."""

    measure: str
    recorded: bool
    by: str | None
    at: datetime | None
    note: str | None
    by_data: bool


class NotificationOut(ApiModel):
    """A notification of the case in the outbox (the target address is not shown)."""

    id: str
    reason: str
    level: str
    receiver: str
    channel: str
    state: str
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None


class HistoryOut(ApiModel):
    """One line of the audit trail."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    from_state: str | None
    to_state: str | None
    comment: str
    detail: dict[str, Any] | list[Any]


class CaseDetail(CaseSummary):
    """One case with everything about it."""

    level_since: datetime
    order_min_end: datetime | None
    findings: list[FindingOut]
    checklist: list[ChecklistItemOut]
    notifications: list[NotificationOut]
    history: list[HistoryOut]


class CaseActionIn(BaseModel):
    """A user's action on a case; `deadline` (RFC 3339 with offset) goes with plan and reject."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    comment: Annotated[SafeText, Field(max_length=4000)] | None = None
    deadline: UtcTime | None = None
