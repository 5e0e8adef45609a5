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

    Method: a read can only start or end something where its (card, area) differs from the
    read before it (entering means going from a shaft area, or nothing, to an underground one;
    leaving the reverse), so a few whole-array passes find those candidate rows and all further
    work is on them — a few per cent of the reads. Repeated (card, ts) rows are few: each run of
    them is skipped by comparing the row after it with the row before it, the one that counts.
    """
    c = np.asarray(card, dtype=np.int64)
    t = np.asarray(ts, dtype=np.int64)
    a = np.asarray(area, dtype=np.int64)
    sh_by_area = np.asarray(shaft, dtype=np.bool_)
    n = len(c)
    if len(t) != n or len(a) != n:
        raise RulesError("card, ts and area of the card reads must have the same length")
    if n == 0:
        return _empty_presence(), _empty_stays()
    # Repeats of the previous row's (card, ts): found from the few equal times.
    same_t = np.flatnonzero(t[1:] == t[:-1]) + 1
    dup = same_t[c[same_t] == c[same_t - 1]]
    # Candidates: the first row, rows whose card or area differs from the row before, and the
    # row after each run of repeats (it must be compared with the row before the run instead).
    mark = np.empty(n, np.bool_)
    mark[0] = True
    np.not_equal(c[1:], c[:-1], out=mark[1:])
    mark[1:] |= a[1:] != a[:-1]
    if len(dup):
        mark[dup[dup + 1 < n] + 1] = True
        mark[dup] = False
    cand = np.flatnonzero(mark)
    # Checked on the candidates, which hold every change of card and of area: cards ascend
    # there iff they ascend everywhere, and a row that is no candidate has its predecessor's
    # area (a repeat is ignored whatever its area). Time may only go back at a new card.
    cc = c[cand]
    back = np.flatnonzero(t[1:] < t[:-1]) + 1
    if bool(np.any(cc[1:] < cc[:-1])) or bool(np.any(c[back] == c[back - 1])):
        raise RulesError("card reads must be sorted by (card, ts); use a stable sort")
    ca = a[cand]
    if int(ca.min()) < 0 or int(ca.max()) >= len(sh_by_area):
        raise RulesError("every read's area must index the shaft flags")
    # Reads after now_ns are not seen yet. They end their card's rows, and one that is no
    # candidate starts or ends nothing, so dropping the late candidates is enough.
    seen = t[cand] <= now_ns
    if not bool(seen.all()):
        cand, cc, ca = cand[seen], cc[seen], ca[seen]
    prev = cand - 1  # the row that counts before each candidate: the row before a run of repeats
    if len(dup):
        is_end = np.append(dup[1:] != dup[:-1] + 1, True)  # last row of each run of repeats
        run_first = np.maximum.accumulate(np.where(np.append(True, is_end[:-1]), dup, 0))
        i = np.minimum(np.searchsorted(dup, prev), len(dup) - 1)
        prev = np.where(dup[i] == prev, run_first[i] - 1, prev)
    pp = np.maximum(prev, 0)
    same_card = (prev >= 0) & (c[pp] == cc)
    under = ~sh_by_area[ca]
    was_under = same_card & ~sh_by_area[a[pp]]
    moved = ~same_card | (a[pp] != ca)
    begins = under & (~was_under | moved)  # an interval starts here (entry or move)
    leaves = ~under & was_under  # a shaft read of an underground card: the stay ends here
    enters = under & ~was_under
    bound = np.flatnonzero(begins | leaves)  # positions in cand
    m = len(bound)
    if m == 0:
        return _empty_presence(), _empty_stays()
    rows, bc = cand[bound], cc[bound]
    is_begin = begins[bound]
    # Each interval ends at its card's next boundary (a move or a leave), else it is open.
    nxt = np.minimum(np.arange(1, m + 1), m - 1)
    closes = np.zeros(m, np.bool_)
    closes[:-1] = bc[1:] == bc[:-1]
    iv = np.flatnonzero(is_begin)
    iv_closes = closes[iv]
    iv_end = np.where(iv_closes, t[rows[nxt[iv]]], -1)
    # Stays: from an entry to the card's next leave, else open.
    b_enter = enters[bound]
    b_leave = leaves[bound]
    ent = np.flatnonzero(b_enter)
    lv = np.flatnonzero(b_leave)
    if len(lv):
        j = np.minimum(np.searchsorted(lv, ent), len(lv) - 1)
        st_closes = (lv[j] > ent) & (bc[lv[j]] == bc[ent])
        st_end = np.where(st_closes, t[rows[lv[j]]], -1)
    else:
        st_closes = np.zeros(len(ent), np.bool_)
        st_end = np.full(len(ent), -1, np.int64)
    stay_of = np.cumsum(b_enter) - 1
    presence = Presence(
        card=bc[iv],
        area=ca[bound][iv],
        start=t[rows[iv]],
        end=iv_end.astype(np.int64),
        is_open=~iv_closes,
        stay=stay_of[iv].astype(np.int64),
        start_row=rows[iv].astype(np.int64),
    )
    stays = Stays(card=bc[ent], start=t[rows[ent]], end=st_end.astype(np.int64), is_open=~st_closes)
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
    keys, times, delta = _sort_boundaries(keys, times, delta)
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


def area_counts(presence: Presence) -> Steps:
    """Head count per area (key = area index) over time."""
    return head_counts(presence.area, presence.start, presence.end, presence.is_open)


def mine_counts(stays: Stays) -> Steps:
    """Head count underground in the whole mine (key 0) over time: stays ignore moves."""
    return head_counts(np.zeros(len(stays), np.int64), stays.start, stays.end, stays.is_open)


def _sort_boundaries(keys: I64, times: I64, delta: I64) -> tuple[I64, I64, I64]:
    """Boundaries sorted by (key, time); the order among equal (key, time) does not matter
    (only the sum after the last of them is kept).

    When key, time and sign fit in one int64 — always for one mine's areas over years of ns —
    they are packed and sorted as values (no argsort, no gathers), about twice as fast as
    `np.lexsort`, which remains the fallback.
    """
    k0, t0 = int(keys.min()), int(times.min())
    span = int(times.max()) - t0 + 1
    if (int(keys.max()) - k0 + 1) * span * 2 < 2**62:
        code = ((keys - k0) * span + (times - t0)) * 2 + (delta > 0)
        code.sort()
        rest = code >> 1
        k, t = np.divmod(rest, span)
        return k + k0, t + t0, np.where(code & 1, 1, -1).astype(np.int64)
    order = np.lexsort((times, keys))
    return keys[order], times[order], delta[order]


def _empty_presence() -> Presence:
    z = np.zeros(0, np.int64)
    return Presence(z, z, z, z, np.zeros(0, np.bool_), z, z)


def _empty_stays() -> Stays:
    z = np.zeros(0, np.int64)
    return Stays(z, z, z, np.zeros(0, np.bool_))
