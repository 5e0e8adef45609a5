"""The four measures (四项措施) every methane case must record before it can be verified and closed.

Each item holds the person's record (who, when it was recorded, when it was done, what was
done). Measure 1 (power off and evacuate) also carries the data's verdict, one `DataCheck`
per rule that can confirm it from data (rules.md §4): `power_off_failure` (the feed point
reported off in time) and `work_continued` (everyone left the face's areas in time). Until
those rules fill them, both checks are `not_checked`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Measure(StrEnum):
    """The four measures after a methane exceedance, in the order the regulations list them."""

    POWER_OFF_EVACUATE = "power_off_evacuate"  # 停电撤人
    ANALYSE_CAUSE = "analyse_cause"  # 分析原因
    STOP_RECTIFY = "stop_rectify"  # 停产整改
    HOLD_ACCOUNTABLE = "hold_accountable"  # 追究责任


MEASURES: tuple[Measure, ...] = tuple(Measure)

# Who a data-driven check is attributed to in the audit trail.
BY_DATA_ACTOR = "system"


class CheckStatus(StrEnum):
    """The data's verdict on one half of measure 1."""

    NOT_CHECKED = "not_checked"  # no rule has looked yet (or the rule does not exist yet)
    CONFIRMED = "confirmed"  # the data show it was done in time
    FAILED = "failed"  # the data show it was not: the rule's finding says so


class DataCheckName(StrEnum):
    """The two halves of measure 1 the data can confirm, each owned by one rule of rules.md §4."""

    POWER_OFF = "power_off"  # the feed / relay point reported off within 2 patrol cycles
    EVACUATION = "evacuation"  # every card left the face's areas within 30 min


# The rule id that decides each half (contract rule ids; see minewatch.rule_ids).
DATA_CHECK_RULES: dict[DataCheckName, str] = {
    DataCheckName.POWER_OFF: "power_off_failure",
    DataCheckName.EVACUATION: "work_continued",
}


@dataclass(frozen=True, slots=True)
class DataCheck:
    """The data's verdict on one half of measure 1: which rule decides it, its status, and (once
    checked) when, the finding that shows a failure, and a readable detail."""

    name: DataCheckName
    status: CheckStatus = CheckStatus.NOT_CHECKED
    checked_at: datetime | None = None
    finding_id: int | None = None
    detail: str | None = None

    @property
    def rule(self) -> str:
        """The rule id that decides this check."""
        return DATA_CHECK_RULES[self.name]


def unchecked() -> tuple[DataCheck, ...]:
    """Measure 1's data checks before any rule has looked: both `not_checked`."""
    return tuple(DataCheck(name) for name in DataCheckName)


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One measure: whether it is recorded, by whom, when it was recorded (`at`) and done
    (`done_at`, as the person states it), with what note, and whether it was recorded by data
    instead of a person. `data` holds the data's verdict: measure 1's two checks, empty for the
    other three (human acts no data can confirm)."""

    measure: Measure
    recorded: bool = False
    by: str | None = None
    at: datetime | None = None
    note: str | None = None
    by_data: bool = False
    done_at: datetime | None = None
    data: tuple[DataCheck, ...] = ()

    def __post_init__(self) -> None:
        if self.measure is Measure.POWER_OFF_EVACUATE and not self.data:
            object.__setattr__(self, "data", unchecked())
        names = tuple(c.name for c in self.data)
        expected = tuple(DataCheckName) if self.measure is Measure.POWER_OFF_EVACUATE else ()
        if names != expected:
            raise ValueError(f"measure {self.measure.value} carries the data checks "
                             f"{[n.value for n in expected]}, not {[n.value for n in names]}")


@dataclass(frozen=True, slots=True)
class Checklist:
    """The four measures of one methane case; immutable, every change returns a new checklist."""

    items: tuple[ChecklistItem, ...]

    def __post_init__(self) -> None:
        if tuple(item.measure for item in self.items) != MEASURES:
            names = [m.value for m in MEASURES]
            raise ValueError(f"a checklist holds exactly the measures {names}")

    @classmethod
    def new(cls) -> Checklist:
        """An empty checklist: nothing recorded yet."""
        return cls(tuple(ChecklistItem(m) for m in MEASURES))

    def item(self, measure: Measure) -> ChecklistItem:
        """The item of one measure."""
        return self.items[MEASURES.index(measure)]

    def missing(self) -> tuple[Measure, ...]:
        """The measures not yet recorded, in regulation order."""
        return tuple(item.measure for item in self.items if not item.recorded)

    def is_complete(self) -> bool:
        """True when all four measures are recorded (the condition for closing the case)."""
        return not self.missing()

    def record(self, measure: Measure, *, by: str, now: datetime, note: str | None,
               done_at: datetime | None = None) -> Checklist:
        """Record one measure as done by a person (at `done_at`, default `now`); recording it
        again replaces the earlier entry. The data's verdict stays as it was: it is the data's,
        not the person's.

        Who may record is decided by `alerting.lifecycle.record_measure`, which checks the actor.
        """
        data = self.item(measure).data
        return self._with(ChecklistItem(measure, recorded=True, by=by, at=now, note=note,
                                        done_at=done_at or now, data=data))

    def with_data_check(self, check: DataCheck) -> Checklist:
        """The checklist with one of measure 1's data checks replaced by `check` (what the
        `power_off_failure` and `work_continued` rules report once they exist)."""
        item = self.item(Measure.POWER_OFF_EVACUATE)
        data = tuple(check if c.name is check.name else c for c in item.data)
        return self._with(replace(item, data=data))

    def record_by_data(self, *, now: datetime, note: str) -> Checklist:
        """Check measure 1 (power off & evacuate) from data: the feed point reported off in time
        and the affected areas emptied. Only measure 1 can be confirmed by data; the other three
        are human acts. A person's later record of measure 1 replaces this one.
        """
        item = ChecklistItem(
            Measure.POWER_OFF_EVACUATE, recorded=True, by=BY_DATA_ACTOR, at=now, note=note,
            by_data=True, done_at=now, data=self.item(Measure.POWER_OFF_EVACUATE).data,
        )
        return self._with(item)

    def _with(self, new_item: ChecklistItem) -> Checklist:
        index = MEASURES.index(new_item.measure)
        items = list(self.items)
        items[index] = new_item
        return Checklist(tuple(items))
