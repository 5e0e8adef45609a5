"""Personnel location (rules.md §7, and the §4 evacuation check): pure kernels over card reads.

`presence` turns card reads into presence intervals, underground stays and head-count step
functions; the rules read those: `capacity` (over_capacity), `leader` (no_leader, with the
local shifts of `shifts`), `overtime`, `restricted` (restricted_area), `seal` (seal_breach)
and `evacuation` (work_continued). `params` holds every tunable number with its rules.md
default. Time is int64 ns UTC; nothing here reads a clock (``now_ns`` is an argument), a
connection or the environment.
"""

from rules.personnel.capacity import OverCapacity, over_capacity
from rules.personnel.evacuation import WorkContinued, work_continued
from rules.personnel.leader import NoLeader, no_leader
from rules.personnel.overtime import Overtime, overtime
from rules.personnel.params import PersonnelParams
from rules.personnel.presence import Presence, Stays, Steps, area_counts, find_presence, head_counts, mine_counts
from rules.personnel.restricted import RestrictedVisits, restricted_visits
from rules.personnel.seal import SealBreaches, card_breaches, signal_breaches
from rules.personnel.shifts import shift_bounds

__all__ = [
    "NoLeader",
    "OverCapacity",
    "Overtime",
    "PersonnelParams",
    "Presence",
    "RestrictedVisits",
    "SealBreaches",
    "Stays",
    "Steps",
    "WorkContinued",
    "area_counts",
    "card_breaches",
    "find_presence",
    "head_counts",
    "mine_counts",
    "no_leader",
    "over_capacity",
    "overtime",
    "restricted_visits",
    "shift_bounds",
    "signal_breaches",
    "work_continued",
]
