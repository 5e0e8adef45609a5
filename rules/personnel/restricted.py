"""Restricted areas (`restricted_area`, rules.md §7): every visit of a card to a restricted area.

Input: presence intervals (`presence.find_presence`) and, per area, whether it is restricted.
One finding per visit: a presence interval in a restricted area, from the card's first read
there until it is read elsewhere (another area, or a shaft); open while it has not been. Raised
immediately, at the first read. A card that goes straight from one restricted area to another
makes two visits, one per area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.presence import Presence

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
RULE = "restricted_area"


@dataclass(frozen=True, eq=False)
class RestrictedVisits:
    """restricted_area findings ordered by (card, start); ``interval`` indexes the presence."""

    card: I64
    area: I64
    interval: I64
    start: I64
    end: I64  # -1 while the card is still there
    is_open: Bools

    def __len__(self) -> int:
        return len(self.start)


def restricted_visits(presence: Presence, restricted: Bools) -> RestrictedVisits:
    """Visits of restricted areas (``restricted`` is indexed by area)."""
    flags = np.asarray(restricted, dtype=np.bool_)
    if len(presence) and int(presence.area.max()) >= len(flags):
        raise RulesError("every interval's area must index the restricted flags")
    sel = np.flatnonzero(flags[presence.area])
    return RestrictedVisits(
        card=presence.card[sel],
        area=presence.area[sel],
        interval=sel.astype(np.int64),
        start=presence.start[sel],
        end=presence.end[sel],
        is_open=presence.is_open[sel],
    )
