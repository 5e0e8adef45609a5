"""Electronic seal (`seal_breach`, 电子封条, rules.md §7): entries and production under an order.

Input: the mine's orders as the spans during which each is active or awaiting verification —
[start, lifted), ``end == -1`` while not lifted — and either the stays of its cards
(`presence.find_presence`) or its production-signal spans (a coal-output counter rising, an
equipment on-off point switched on: [on, off), -1 while on; turning readings of the points the
registry marks into these spans is the caller's).

- a card entry (a stay's start) at an instant some order covers, start ≤ entry < lifted, is a
  breach: an entry at the very instant the order starts counts, one at the instant it is lifted
  does not. The finding spans the entry → the card leaves the mine; a re-entry is a new breach.
  Cards leaving, and cards already underground when the order starts, are not breaches (they
  are evacuating): only entries are judged;
- a production-signal span that starts (switches on) at an instant an order covers is a breach,
  spanning the signal span. A signal already on when the order starts is not judged, like a card
  already underground: the rule speaks of switching on.

``order`` names the covering order; when orders overlap, the one reaching furthest (an unlifted
order first), the earliest started among equals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.presence import Stays

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
RULE = "seal_breach"
_FOREVER = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class SealBreaches:
    """seal_breach findings in input order of their source (stay or signal span)."""

    subject: I64  # the card, or the production-signal point
    source: I64  # index of the stay or signal span
    order: I64  # index of the covering order
    start: I64
    end: I64  # -1 while open
    is_open: Bools

    def __len__(self) -> int:
        return len(self.start)


def card_breaches(stays: Stays, order_start: I64, order_end: I64) -> SealBreaches:
    """Card entries while an order is active or awaiting verification."""
    order = covering_order(stays.start, order_start, order_end)
    sel = np.flatnonzero(order >= 0)
    return SealBreaches(stays.card[sel], sel.astype(np.int64), order[sel], stays.start[sel],
                        stays.end[sel], stays.is_open[sel])


def signal_breaches(point: I64, start: I64, end: I64, order_start: I64, order_end: I64) -> SealBreaches:
    """Production-signal spans that switch on while an order is active or awaiting verification."""
    p, s, e = (np.asarray(x, dtype=np.int64) for x in (point, start, end))
    if len(s) != len(p) or len(e) != len(p):
        raise RulesError("point, start and end of the production-signal spans must have the same length")
    order = covering_order(s, order_start, order_end)
    sel = np.flatnonzero(order >= 0)
    return SealBreaches(p[sel], sel.astype(np.int64), order[sel], s[sel], e[sel], e[sel] == -1)


def covering_order(at: I64, order_start: I64, order_end: I64) -> I64:
    """Per instant, the order whose [start, end) covers it (end -1: not lifted), else -1."""
    t = np.asarray(at, dtype=np.int64)
    os_ = np.asarray(order_start, dtype=np.int64)
    oe = np.asarray(order_end, dtype=np.int64)
    if len(os_) != len(oe):
        raise RulesError("order starts and ends must have the same length")
    if len(os_) == 0:
        return np.full(len(t), -1, np.int64)
    by_start = np.argsort(os_, kind="stable")
    s = os_[by_start]
    e = np.where(oe == -1, _FOREVER, oe)[by_start]
    # Among the orders started by t, the one reaching furthest covers t if any does.
    reach = np.maximum.accumulate(e)
    new_best = np.ones(len(e), np.bool_)
    new_best[1:] = e[1:] > reach[:-1]
    best = np.maximum.accumulate(np.where(new_best, np.arange(len(e)), 0))
    j = np.searchsorted(s, t, side="right") - 1
    jj = np.maximum(j, 0)
    covered = (j >= 0) & (reach[jj] > t)
    return np.where(covered, by_start[best[jj]], -1).astype(np.int64)
