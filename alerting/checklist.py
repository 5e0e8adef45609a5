"""The four measures (四项措施) every methane case must record before it can be closed."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One measure: whether it is recorded, by whom, when, with what note, and whether by data."""

    measure: Measure
    recorded: bool = False
    by: str | None = None
    at: datetime | None = None
    note: str | None = None
    by_data: bool = False


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

    def record(self, measure: Measure, *, by: str, now: datetime, note: str | None) -> Checklist:
        """Record one measure as done by a person; recording it again replaces the earlier entry.

        Who may record is decided by `alerting.lifecycle.record_measure`, which checks the actor.
        """
        return self._with(ChecklistItem(measure, recorded=True, by=by, at=now, note=note))

    def record_by_data(self, *, now: datetime, note: str) -> Checklist:
        """Check measure 1 (power off & evacuate) from data: the feed point reported off in time
        and the affected areas emptied. Only measure 1 can be confirmed by data; the other three
        are human acts. A person's later record of measure 1 replaces this one.
        """
        item = ChecklistItem(
            Measure.POWER_OFF_EVACUATE, recorded=True, by=BY_DATA_ACTOR, at=now, note=note,
            by_data=True,
        )
        return self._with(item)

    def _with(self, new_item: ChecklistItem) -> Checklist:
        index = MEASURES.index(new_item.measure)
        items = list(self.items)
        items[index] = new_item
        return Checklist(tuple(items))
