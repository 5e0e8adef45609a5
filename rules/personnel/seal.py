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
- a production-signal span that starts at an instant an order covers is a breach, spanning the
  signal span. An on-off point already on when the order starts is not judged, like a card
  already underground: the rule speaks of switching on. A counter is judged by its rises: one
  still rising when an order starts breaches from its first rise at or after the start
  (`signal_spans` cuts its run there).

`signal_spans` turns the readings of the marked points into those spans: per point, in time
order, a counter reading above the point's previous reading, or an on-off reading other than 0,
is producing; a span is a maximal run of producing readings, from its first reading to the
first later reading that is not producing (-1 while none). A point's first reading starts
no counter span (nothing to compare it with); a span that begins at the first reading the
caller loaded may have begun earlier (``truncated``), and the caller loads further back.

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


@dataclass(frozen=True, eq=False)
class SignalSpans:
    """Production-signal spans, in (point, start) order."""

    point: I64
    start: I64
    end: I64  # -1 while still producing at the last reading
    first: I64  # index (into the input) of the span's first reading
    truncated: Bools  # the span may have begun before the first reading of its point given

    def __len__(self) -> int:
        return len(self.start)


def signal_spans(point: I64, ts: I64, value: NDArray[np.float64], counter: Bools,
                 split_at: I64 | None = None) -> SignalSpans:
    """Producing spans of readings sorted by (point, ts); ``counter`` per reading (a 3001
    counter; else an on-off point). Readings of one point at the same time count once (the
    first). A counter's run is also cut at its first reading at or after each ``split_at``
    instant (the orders' starts: a counter still rising when an order starts produces under
    it, from that reading on; an on-off point only breaches by switching on)."""
    p, t = (np.asarray(x, dtype=np.int64) for x in (point, ts))
    v = np.asarray(value, dtype=np.float64)
    c = np.asarray(counter, dtype=np.bool_)
    n = len(p)
    if len(t) != n or len(v) != n or len(c) != n:
        raise RulesError("point, ts, value and counter of the production-signal readings must have the same length")
    if n > 1 and np.any((np.diff(p) < 0) | ((np.diff(p) == 0) & (np.diff(t) < 0))):
        raise RulesError("production-signal readings must be sorted by (point, ts)")
    keep = np.ones(n, np.bool_)
    keep[1:] = (p[1:] != p[:-1]) | (t[1:] != t[:-1])
    idx = np.flatnonzero(keep)
    p, t, v, c = p[idx], t[idx], v[idx], c[idx]
    m = len(p)
    head = np.ones(m, np.bool_)  # first reading of its point
    head[1:] = p[1:] != p[:-1]
    rising = np.zeros(m, np.bool_)
    rising[1:] = v[1:] > v[:-1]
    on = np.where(c, rising & ~head, v != 0)
    splits = np.sort(np.asarray(split_at if split_at is not None else np.zeros(0), dtype=np.int64))
    k = np.searchsorted(splits, t, side="right")  # split instants at or before each reading
    cross = np.zeros(m, np.bool_)  # a counter reading that is the first at or after a split
    cross[1:] = c[1:] & ~head[1:] & (k[1:] != k[:-1])
    prev_on = np.zeros(m, np.bool_)
    prev_on[1:] = on[:-1] & ~head[1:]
    begins = on & (~prev_on | cross)
    stops = np.flatnonzero(prev_on & (~on | cross))  # where the run before ends
    starts = np.flatnonzero(begins)
    # Each span ends at the first stop after its start within its point, else stays open.
    j = np.searchsorted(stops, starts, side="right")
    jj = np.minimum(j, max(len(stops) - 1, 0))
    closed = (j < len(stops)) & (p[stops[jj]] == p[starts]) if len(stops) else np.zeros(len(starts), np.bool_)
    end = np.where(closed, t[stops[jj]] if len(stops) else 0, -1).astype(np.int64)
    # A span starting at its point's first reading (on-off), or at the second (a counter: the
    # first rise seen, unless a split starts it), may have begun before the readings given.
    second = np.zeros(m, np.bool_)
    second[1:] = head[:-1] & ~head[1:]
    truncated = np.where(c[starts], second[starts] & ~cross[starts], head[starts])
    return SignalSpans(p[starts], t[starts], end, idx[starts].astype(np.int64), truncated.astype(np.bool_))


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
