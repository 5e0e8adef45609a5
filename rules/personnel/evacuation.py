"""Evacuation check (`work_continued`, rules.md §4): cards left at a face after a power-off reading.

Input: presence intervals (`presence.find_presence`), each area's face (-1: none), and the
triggers: per methane episode that reached its power-off threshold, the time t of its first
considered reading at or above power-off and the face of its point. Per trigger, with
D = ``evacuate_ns`` (default 30 min):

- the cards present at t in an area of the face (an interval with start ≤ t < end, or open;
  a card that moves at t counts where it moves to) must have left the face's areas by t + D;
- the cards present at t that are also present in an area of the face at t + D are listed,
  with their area at t + D; if any is, one finding starts at t + D;
- it ends when the last listed card leaves the face's areas: the end of its run of intervals
  in the face's areas (moving between two areas of the face is not leaving) covering t + D;
  open while one is still there;
- nothing is decided before ``now_ns`` reaches t + D (the worker runs it on the clock then);
  a trigger whose face has no cards at t gives no finding (the data half of the measure holds);
- one finding per maximal span of a face (the at-a-glance table): when two triggers of one face
  give spans that overlap or touch (two points of the face at power-off minutes apart), they
  are one finding, from the earlier t + D, listing every card of either (a card listed by both
  with its row of the later trigger) and ending when the last of them leaves.

Triggers are few (power-off readings are rare), so the kernel loops over them, each over its
face's intervals only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.errors import RulesError
from rules.personnel.params import DEFAULT_PARAMS, PersonnelParams
from rules.personnel.presence import Presence

I64 = NDArray[np.int64]
Bools = NDArray[np.bool_]
RULE = "work_continued"
_FOREVER = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class WorkContinued:
    """work_continued findings ordered by (face, start); the listed cards are grouped by finding."""

    trigger: I64  # index of the finding's first trigger (earliest t)
    face: I64
    start: I64  # t + D
    end: I64  # -1 while a listed card is still at the face
    is_open: Bools
    first: I64  # offset of the finding's cards in `cards` / `areas` / `left`
    count: I64
    cards: I64  # listed cards, by card within a finding
    areas: I64  # each listed card's area at t + D
    left: I64  # when each listed card left the face's areas, -1 while still there
    trigger_of: I64  # per trigger given, the finding it is part of, -1 if none

    def __len__(self) -> int:
        return len(self.start)


def work_continued(presence: Presence, area_face: I64, trigger_time: I64, trigger_face: I64, *,
                   now_ns: int, params: PersonnelParams = DEFAULT_PARAMS) -> WorkContinued:
    """work_continued findings; see the module docstring."""
    faces = np.asarray(area_face, dtype=np.int64)
    tt = np.asarray(trigger_time, dtype=np.int64)
    tf = np.asarray(trigger_face, dtype=np.int64)
    if len(tt) != len(tf):
        raise RulesError("trigger times and faces must have the same length")
    if len(presence) and int(presence.area.max()) >= len(faces):
        raise RulesError("every interval's area must index the area faces")
    face = faces[presence.area]
    run_end = _face_run_end(presence, face)
    end = np.where(presence.is_open, _FOREVER, presence.end)
    by_face = np.argsort(face, kind="stable")
    face_sorted = face[by_face]
    # Per trigger due by now: the cards present at t and still at the face at t + D.
    found: list[tuple[int, int, int, I64, I64, I64]] = []  # (face, due, trigger, cards, areas, left)
    for i in range(len(tt)):
        f, t = int(tf[i]), int(tt[i])
        due = t + params.evacuate_ns
        if f < 0 or now_ns < due:
            continue
        lo, hi = np.searchsorted(face_sorted, [f, f + 1])
        rows = by_face[lo:hi]
        s, e = presence.start[rows], end[rows]
        at_t = rows[(s <= t) & (e > t)]
        at_due = rows[(s <= due) & (e > due)]
        stayed = at_due[np.isin(presence.card[at_due], presence.card[at_t])]
        if len(stayed):
            found.append((f, due, i, presence.card[stayed], presence.area[stayed], run_end[stayed]))
    return _merged(sorted(found, key=lambda x: (x[0], x[1], x[2])), len(tt))


def _merged(found: list[tuple[int, int, int, I64, I64, I64]], n_triggers: int) -> WorkContinued:
    """One finding per maximal span of a face (the at-a-glance table): spans of one face that
    overlap or touch merge; a card listed twice keeps its row of the later trigger."""
    groups: list[list[tuple[int, int, int, I64, I64, I64]]] = []
    reach = 0
    for item in found:
        f, due, _, _, _, gone = item
        end = _FOREVER if bool(np.any(gone == -1)) else int(gone.max())
        if groups and groups[-1][0][0] == f and due <= reach:
            groups[-1].append(item)
            reach = max(reach, end)
        else:
            groups.append([item])
            reach = end
    out: dict[str, list[int]] = {k: [] for k in ("trigger", "face", "start", "end", "first", "count")}
    trigger_of = np.full(n_triggers, -1, np.int64)
    cards: list[I64] = []
    areas: list[I64] = []
    left: list[I64] = []
    offset = 0
    for g, group in enumerate(groups):
        c = np.concatenate([x[3] for x in group])
        # Later triggers' rows first, so the first row of each card (np.unique) is its latest.
        order = np.concatenate([np.arange(len(x[3])) + sum(len(y[3]) for y in group[:k])
                                for k, x in reversed(list(enumerate(group)))])
        cards_g, first_row = np.unique(c[order], return_index=True)
        pick = order[first_row]
        a = np.concatenate([x[4] for x in group])[pick]
        gone = np.concatenate([x[5] for x in group])[pick]
        for x in group:
            trigger_of[x[2]] = g
        out["trigger"].append(group[0][2])
        out["face"].append(group[0][0])
        out["start"].append(group[0][1])
        out["end"].append(-1 if bool(np.any(gone == -1)) else int(gone.max()))
        out["first"].append(offset)
        out["count"].append(len(cards_g))
        offset += len(cards_g)
        cards.append(cards_g.astype(np.int64))
        areas.append(a)
        left.append(gone)
    arr = {k: np.array(v, dtype=np.int64) for k, v in out.items()}
    z = np.zeros(0, np.int64)
    return WorkContinued(
        trigger=arr["trigger"], face=arr["face"], start=arr["start"], end=arr["end"],
        is_open=arr["end"] == -1, first=arr["first"], count=arr["count"],
        cards=np.concatenate(cards) if cards else z,
        areas=np.concatenate(areas) if areas else z,
        left=np.concatenate(left) if left else z,
        trigger_of=trigger_of,
    )


def _face_run_end(presence: Presence, face: I64) -> I64:
    """Per interval, the end of its card's run of back-to-back intervals in the same face
    (-1 while the run is open); intervals of a card are ordered and a move is back-to-back."""
    n = len(presence)
    if n == 0:
        return np.zeros(0, np.int64)
    joins = np.zeros(n, np.bool_)  # this interval continues the previous one's face run
    joins[1:] = ((presence.card[1:] == presence.card[:-1]) & (face[1:] == face[:-1])
                 & (presence.start[1:] == presence.end[:-1]) & ~presence.is_open[:-1])
    run = np.cumsum(~joins) - 1
    last = np.append(np.flatnonzero(~joins[1:]), n - 1)  # the last interval of each run
    return np.asarray(presence.end[last][run], dtype=np.int64)
