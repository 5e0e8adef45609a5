"""Overtime (`overtime`, rules.md §7): a card underground longer than the shift plus a grace.

Input: stays (`presence.find_presence`), the mine's approved shift length (registry
`shift_hours`, default 8 h) and ``now_ns``. The limit is shift length + ``overtime_grace_ns``
(default 2 h). A stay is in overtime when it lasts strictly longer than the limit: the finding
starts at entry + limit and ends when the card leaves (an exit exactly at entry + limit is no
finding). A stay still open is a finding once ``now_ns`` is past entry + limit, with no new read
needed: a silent card underground may be a trapped person, so this kernel runs on the clock.
A late shaft read that closes the stay before the limit makes the finding disappear here; the
worker withdraws what it had raised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.params import DEFAULT_PARAMS, PersonnelParams
from rules.personnel.presence import Stays

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
RULE = "overtime"


@dataclass(frozen=True, eq=False)
class Overtime:
    """Overtime findings ordered by (card, start); ``stay`` indexes the stays given."""

    card: I64
    stay: I64
    entry: I64
    start: I64  # entry + limit
    end: I64  # the exit, -1 while underground
    is_open: Bools

    def __len__(self) -> int:
        return len(self.start)


def overtime(stays: Stays, *, shift_ns: int, now_ns: int, params: PersonnelParams = DEFAULT_PARAMS) -> Overtime:
    """Overtime findings of a mine's stays; see the module docstring."""
    if shift_ns <= 0:
        raise RulesError(f"the approved shift length must be positive, got {shift_ns} ns")
    limit = shift_ns + params.overtime_grace_ns
    due = stays.start + limit
    lasted = np.where(stays.is_open, now_ns, stays.end) - stays.start
    sel = np.flatnonzero(lasted > limit)
    return Overtime(
        card=stays.card[sel],
        stay=sel.astype(np.int64),
        entry=stays.start[sel],
        start=due[sel],
        end=stays.end[sel],
        is_open=stays.is_open[sel],
    )
