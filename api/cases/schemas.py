"""Response and request models of the cases domain (contract: id, mine, rule, level, state, opened_at, ...)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import ApiModel, Page, SafeText, UtcTime

CaseStateName = Literal["open", "acknowledged", "rectifying", "rectified", "verified", "closed"]
LevelName = Literal["mine", "county", "city", "province"]
ActionName = Literal["acknowledge", "plan", "submit", "verify", "reject", "close"]
# The four measures of rules.md §4 (alerting.checklist.Measure), in regulation order.
MeasureName = Literal["power_off_evacuate", "analyse_cause", "stop_rectify", "hold_accountable"]
CheckStatusName = Literal["not_checked", "confirmed", "failed"]


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
    late_report: bool = Field(description=(
        "Opened from a finding already older than the late-report age when first found (a back-fill, "
        "a late upload; default 24 h): recorded and routed, but not urgent, so no ack-window escalation "
        "(docs/alerting.md)"))
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


class DataCheckOut(ApiModel):
    """The data's verdict on one half of measure 1 (rules.md §4)."""

    status: CheckStatusName = Field(description=(
        "not_checked: no rule has judged it (yet); confirmed: the data show it done in time; "
        "failed: the rule's finding (`finding_id`) shows it was not"))
    rule: str = Field(description="The rule that decides it: power_off_failure or work_continued")
    checked_at: datetime | None
    finding_id: int | None
    detail: str | None


class DataVerdictOut(ApiModel):
    """Measure 1 checked by data: the feed point's power-off and the personnel's evacuation."""

    power_off: DataCheckOut
    evacuation: DataCheckOut


class ChecklistItemOut(ApiModel):
    """One of the four measures of a methane case: the person's record and, for measure 1, the data's verdict."""

    measure: str
    recorded: bool
    by: str | None = Field(description="Who recorded it (the token's name), null while missing")
    at: datetime | None = Field(description="When it was recorded")
    done_at: datetime | None = Field(description="When it was done, as the person stated it")
    note: str | None = Field(description="What was done (the comment)")
    by_data: bool = Field(description=(
        "Recorded by the data check instead of a person (only measure 1 can be); false for every "
        "measure a person recorded"))
    data_verdict: DataVerdictOut | None = Field(description=(
        "power_off_evacuate only (null for the others): the data's verdict beside the person's word"))


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


class MeasureIn(BaseModel):
    """The mine records one of the four measures; `done_at` (RFC 3339 with offset, not in the
    future) defaults to now."""

    model_config = ConfigDict(extra="forbid")

    measure: MeasureName
    comment: Annotated[SafeText, Field(max_length=4000)] | None = None
    done_at: UtcTime | None = None
