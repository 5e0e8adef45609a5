"""Presence: card reads → where each card is underground and when, and head counts over time.

The model of rules.md §7, which every personnel rule reads. Input: reads sorted by
(card, ts) — a stable sort, so the first stored of two equal keys comes first — each with the
area of its station (the registry maps stations to areas) and, per area, whether it is a shaft
(井口) area. Per card, in time order:

- a read with the same (card, ts) as the previous row counts once: the first stored wins,
  whatever its station (two stations reading one card at one instant give one read);
- a read after ``now_ns`` is not seen yet (evaluation as of ``now_ns``);
- a read at an underground (non-shaft) area puts the card in that area from the read's time:
  if the card was above ground (no read yet, or a shaft read last) it enters the mine; if it was
  in another area it moves (one interval ends and the next starts at that instant); a read in
  the same area changes nothing;
- a read at a shaft area while underground ends the interval and the stay at its time; while
  above ground it changes nothing;
- silence changes nothing: a card with no read for hours while underground stays underground
  (a lost card is a person to look for, see overtime). An interval or stay still running at
  the last read is open: ``end == -1``, ``is_open``; for counting it lasts up to ``now_ns``.

Outputs: presence intervals (card, area, start, end) ordered by (card, start), each tagged with
its stay; stays (card, entry, exit) — the continuous underground spans, which ignore moves; and
`head_counts`, the step function of the number of cards present per key (area, role, or one
key for the mine) from +1 / −1 boundaries sorted and summed (no loop over time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.thresholds import sorted_by_point_time

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class Presence:
    """Presence intervals ordered by (card, start): a card in one area from start to end."""

    card: I64
    area: I64
    start: I64
    end: I64  # -1 while open
    is_open: Bools
    stay: I64  # index into the Stays of the same reads
    start_row: I64  # input row of the read that started the interval

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True, eq=False)
class Stays:
    """Continuous underground stays ordered by (card, start): entry at start, exit at end."""

    card: I64
    start: I64
    end: I64  # -1 while still underground
    is_open: Bools

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True, eq=False)
class Steps:
    """Step functions ordered by (key, time): ``count`` holds from ``time`` until the next step
    of the same key (the last one until ``now_ns``). Only changes are listed; a key starts at 0
    before its first step."""

    key: I64
    time: I64
    count: I64

    def __len__(self) -> int:
        return len(self.time)

    def of(self, key: int) -> tuple[I64, I64]:
        """(time, count) of one key."""
        lo, hi = np.searchsorted(self.key, [key, key + 1])
        return self.time[lo:hi], self.count[lo:hi]


def find_presence(card: I64, ts: I64, area: I64, *, shaft: Bools, now_ns: int) -> tuple[Presence, Stays]:
    """Presence intervals and stays of reads sorted by (card, ts); see the module docstring.

    ``area`` is per read (the area of its station); ``shaft`` is indexed by area.
    """
    c = np.asarray(card, dtype=np.int64)
    t = np.asarray(ts, dtype=np.int64)
    a = np.asarray(area, dtype=np.int64)
    sh_by_area = np.asarray(shaft, dtype=np.bool_)
    if len(t) != len(c) or len(a) != len(c):
        raise RulesError("card, ts and area of the card reads must have the same length")
    if not sorted_by_point_time(c, t):
        raise RulesError("card reads must be sorted by (card, ts); use a stable sort")
    if len(a) and (int(a.min()) < 0 or int(a.max()) >= len(sh_by_area)):
        raise RulesError("every read's area must index the shaft flags")
    # Rows that count: seen by now, and not a repeat of the previous row's (card, ts). A row
    # after now_ns can only be followed by rows after now_ns of the same card, so dropping it
    # never changes which row of a (card, ts) pair comes first.
    keep = t <= now_ns
    keep[1:] &= (t[1:] != t[:-1]) | (c[1:] != c[:-1])
    rows = np.flatnonzero(keep)
    c, t, a = c[rows], t[rows], a[rows]
    n = len(rows)
    if n == 0:
        return _empty_presence(), _empty_stays()
    under = ~sh_by_area[a]
    same_card = np.zeros(n, np.bool_)
    same_card[1:] = c[1:] == c[:-1]
    was_under = np.zeros(n, np.bool_)  # underground just before this read
    was_under[1:] = under[:-1]
    was_under &= same_card
    moved = np.ones(n, np.bool_)
    moved[1:] = a[1:] != a[:-1]
    begins = under & (~was_under | moved)  # an interval starts here (entry or move)
    leaves = ~under & was_under  # a shaft read of an underground card: the stay ends here
    enters = under & ~was_under

    # Each interval ends at its card's next boundary row (a move or a leave), else it is open.
    bound = np.flatnonzero(begins | leaves)
    is_begin = begins[bound]
    nxt = np.append(bound[1:], n)  # the boundary row after each boundary row
    probe = np.minimum(nxt, n - 1)
    closes = (nxt < n) & (c[probe] == c[bound])
    iv = is_begin
    iv_rows, iv_next, iv_closes = bound[iv], probe[iv], closes[iv]
    iv_end = np.where(iv_closes, t[iv_next], -1)

    # Stays: from an entry to the card's next leave row, else open.
    ent = np.flatnonzero(enters)
    lv = np.flatnonzero(leaves)
    j = np.searchsorted(lv, ent)  # the first leave row after each entry
    jp = np.minimum(j, max(len(lv) - 1, 0))
    st_closes = (j < len(lv)) & (c[lv[jp]] == c[ent]) if len(lv) else np.zeros(len(ent), np.bool_)
    st_end = np.where(st_closes, t[lv[jp]], -1) if len(lv) else np.full(len(ent), -1, np.int64)
    stay_of_row = np.cumsum(enters) - 1
    presence = Presence(
        card=c[iv_rows],
        area=a[iv_rows],
        start=t[iv_rows],
        end=iv_end.astype(np.int64),
        is_open=~iv_closes,
        stay=stay_of_row[iv_rows].astype(np.int64),
        start_row=rows[iv_rows].astype(np.int64),
    )
    stays = Stays(card=c[ent], start=t[ent], end=st_end.astype(np.int64), is_open=~st_closes)
    return presence, stays


def head_counts(key: I64, start: I64, end: I64, is_open: Bools) -> Steps:
    """Step functions of how many intervals of each key cover each instant.

    Intervals are [start, end), open ones [start, ∞). Every boundary is a +1 or a −1 at its
    key and time; sorted by (key, time) and summed, the count after the last boundary at each
    time is the step's value; steps that do not change the count are dropped. One card is in
    one area at a time, so per area (or per mine, from stays) the count is of distinct cards.
    """
    k = np.asarray(key, dtype=np.int64)
    s = np.asarray(start, dtype=np.int64)
    e = np.asarray(end, dtype=np.int64)
    op = np.asarray(is_open, dtype=np.bool_)
    closed = np.flatnonzero(~op)
    keys = np.concatenate((k, k[closed]))
    times = np.concatenate((s, e[closed]))
    delta = np.concatenate((np.ones(len(s), np.int64), np.full(len(closed), -1, np.int64)))
    if len(times) == 0:
        z = np.zeros(0, np.int64)
        return Steps(z, z, z)
    order = np.lexsort((times, keys))
    keys, times, delta = keys[order], times[order], delta[order]
    total = np.cumsum(delta)
    first = np.ones(len(keys), np.bool_)
    first[1:] = keys[1:] != keys[:-1]
    # Segmented sum: subtract what the keys before this one left in the running total.
    base = (total - delta)[first][np.cumsum(first) - 1]
    count = total - base
    last = np.ones(len(keys), np.bool_)
    last[:-1] = (keys[1:] != keys[:-1]) | (times[1:] != times[:-1])
    keys, times, count = keys[last], times[last], count[last]
    prev = np.zeros(len(count), np.int64)
    prev[1:] = count[:-1]
    starts_key = np.ones(len(keys), np.bool_)
    starts_key[1:] = keys[1:] != keys[:-1]
    prev[starts_key] = 0
    change = count != prev
    return Steps(keys[change], times[change], count[change])


def _empty_presence() -> Presence:
    z = np.zeros(0, np.int64)
    return Presence(z, z, z, z, np.zeros(0, np.bool_), z, z)


def _empty_stays() -> Stays:
    z = np.zeros(0, np.int64)
    return Stays(z, z, z, np.zeros(0, np.bool_))
