"""Shared builders for alerting tests: a case, actors and findings at fixed times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from alerting.checklist import Checklist
from alerting.lifecycle import (
    Actor,
    CaseKind,
    CaseState,
    CaseView,
    Level,
    Reason,
    Regions,
    Role,
    Severity,
)
from alerting.pipeline.types import ChannelKind, FindingRef, Notification

T0 = datetime(2026, 11, 23, 0, 15, tzinfo=UTC)
MINE = "140100000001"
REGIONS = Regions(county="141122", city="141100", province="140000")


ROUTING_YAML = """
version: 1
start_levels:
  default: county
  rules: {stale: mine, seal_breach: city}
mines:
  "140100000001":
    receivers:
      - {id: m1-duty, name: 调度室, sms: ["13800000001", "+86 138-0000-0002"]}
    workforce:
      - {id: m1-union, name: 职工代表, sms: ["13800000009"]}
regions:
  county:
    "141122":
      - id: jc-county
        name: 交城县应急管理局
        sms: ["13900000001"]
        webhook: {url: "https://hooks.example.cn/jc", secret_env: MINEWATCH_HOOK_SECRET_JC}
  city:
    "141100":
      - {id: ll-city, name: 吕梁市, lang: en, webhook: {url: "http://127.0.0.1:9/x", secret_env: S}}
  province:
    "140000":
      - {id: sx-prov, name: 山西省, sms: ["13700000001"]}
"""


def make_case(**changes: Any) -> CaseView:
    """An open normal-severity case raised at county level at T0."""
    case = CaseView(
        id="C1001", mine=MINE, regions=REGIONS, rule="offline", kind=CaseKind.OTHER,
        severity=Severity.NORMAL, state=CaseState.OPEN, level=Level.COUNTY, opened_at=T0,
        level_since=T0, state_since=T0,
    )
    return replace(case, **changes)


def methane_case(**changes: Any) -> CaseView:
    fields: dict[str, Any] = {"rule": "methane_exceedance", "kind": CaseKind.METHANE,
                              "checklist": Checklist.new()}
    return make_case(**(fields | changes))


ACTORS: dict[Role, Actor] = {
    Role.MINE: Actor("zhang.san", Role.MINE, frozenset({MINE})),
    Role.COUNTY: Actor("li.county", Role.COUNTY, frozenset({REGIONS.county})),
    Role.CITY: Actor("wang.city", Role.CITY, frozenset({REGIONS.city})),
    Role.PROVINCE: Actor("zhao.prov", Role.PROVINCE, frozenset({REGIONS.province})),
    Role.ADMIN: Actor("root", Role.ADMIN),
    Role.SYSTEM: Actor("minewatch", Role.SYSTEM),
}


def finding(n: int, *, rule: str = "methane_exceedance", kind: str = "methane",
            case_id: str | None = None, subject: str | None = None,
            at: datetime = T0) -> FindingRef:
    return FindingRef(
        id=f"F{n}", case_id=case_id or f"C{n}", rule=rule, kind=kind,
        subject=subject or f"{MINE}_01MN{n:04d}_T0101", started_at=at, label=f"T{n:04d}",
        value=1.62, unit="%",
    )


def note(n: int, *, receiver: str = "county-duty", address: str = "13900000001",
         channel: ChannelKind = ChannelKind.SMS, reason: Reason = Reason.RAISED,
         at: datetime = T0, mine: str = MINE, severity: Severity = Severity.NORMAL,
         findings: tuple[FindingRef, ...] | None = None, **changes: Any) -> Notification:
    fs = findings if findings is not None else (finding(n, at=at),)
    fields: dict[str, Any] = dict(
        id=f"N{n}-{receiver}-{address}", case_ids=tuple(dict.fromkeys(f.case_id for f in fs)),
        mine=mine, mine_name="山西某某煤业有限公司", level=Level.COUNTY, severity=severity,
        receiver_id=receiver, lang="zh", channel=channel, address=address, reason=reason,
        occasion="raised", findings=fs, created_at=at, case_state=CaseState.OPEN,
    )
    fields.update(changes)  # through the constructor, so the dedup key follows the fields
    return Notification(**fields)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
