"""work_continued: the kernel against the loop reference, and a crew at a face after a power-off reading."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minewatch.rule_ids import KNOWN
from rules.personnel.evacuation import RULE, WorkContinued, work_continued
from rules.personnel.params import PersonnelParams
from tests.rules.personnel import reference as ref
from tests.rules.personnel.helpers import MIN, S, by_hand, kernel_presence, ref_presence
from tests.rules.personnel.strategies import T0, Reads, reads

# Areas 2 and 3 belong to face 0, area 4 to face 1, 5 and 6 to none (0 and 1 are shafts).
FACES = [-1, -1, 0, 0, 1, -1, -1]


def rows(w: WorkContinued) -> list[tuple[int, int, int, int, list[tuple[int, int, int]]]]:
    out = []
    for i in range(len(w)):
        a, n = int(w.first[i]), int(w.count[i])
        listed = list(zip(w.cards[a:a + n].tolist(), w.areas[a:a + n].tolist(), w.left[a:a + n].tolist(), strict=True))
        out.append((int(w.trigger[i]), int(w.face[i]), int(w.start[i]), int(w.end[i]), listed))
    return out


@settings(max_examples=300)
@given(st.data(), reads(), st.sampled_from([30 * MIN, 0, 5 * MIN]))
def test_work_continued_matches_reference(data: st.DataObject, r: Reads, evacuate: int) -> None:
    times = sorted({t for _, t, _ in r.arrival}) or [T0]
    when = st.one_of(st.sampled_from(times), st.integers(r.first - MIN, r.last + 2 * 3600 * S))
    triggers = data.draw(st.lists(st.tuples(when, st.sampled_from([0, 0, 1, -1])), max_size=4))
    p, _ = kernel_presence(r)
    intervals, _ = ref_presence(r)
    got = work_continued(p, np.array(FACES), np.array([t for t, _ in triggers], np.int64),
                         np.array([f for _, f in triggers], np.int64), now_ns=r.now,
                         params=PersonnelParams(evacuate_ns=evacuate))
    assert rows(got) == ref.work_continued(intervals, FACES, triggers, r.now, evacuate)
    assert got.is_open.tolist() == [e == -1 for _, _, _, e, _ in rows(got)]


def test_a_crew_at_the_face_after_a_power_off_reading() -> None:
    # Power-off reading at minute 10 on face 0 (areas 2, 3). Card 0 leaves at 39:59 (out in
    # time), card 1 at exactly 40:00 (out in time: gone at t + 30 min), card 2 stays till 55,
    # card 3 moves from area 2 to area 3 (the same face) and leaves at 70, card 4 arrives 1 s
    # after t (not present at t), card 5 is at face 1, card 6 moves to a faceless area at 20
    # and comes back at 35 (present at t and at t + 30: listed; it leaves at 45).
    r = by_hand([(0, 0, 2), (0, 39 + 59 / 60, 0), (1, 0, 2), (1, 40, 0), (2, 0, 3), (2, 55, 1),
                 (3, 0, 2), (3, 20, 3), (3, 70, 0), (4, 10 + 1 / 60, 2), (5, 0, 4),
                 (6, 0, 2), (6, 20, 5), (6, 35, 2), (6, 45, 0)], now_min=120)
    p, _ = kernel_presence(r)
    t = T0 + 10 * MIN

    def at(now: int) -> WorkContinued:
        return work_continued(p, np.array(FACES), np.array([t]), np.array([0]), now_ns=now)

    assert len(at(t + 30 * MIN - S)) == 0  # nothing is decided before t + 30 min
    got = at(r.now)
    assert rows(got) == [(0, 0, t + 30 * MIN, T0 + 70 * MIN,
                          [(2, 3, T0 + 55 * MIN), (3, 3, T0 + 70 * MIN), (6, 2, T0 + 45 * MIN)])]


def test_a_face_left_in_time_has_no_finding() -> None:
    r = by_hand([(0, 0, 2), (0, 20, 0)], now_min=120)
    p, _ = kernel_presence(r)
    assert len(work_continued(p, np.array(FACES), np.array([T0]), np.array([0]), now_ns=r.now)) == 0


def test_the_rule_id_is_the_contracts() -> None:
    assert RULE in KNOWN


def test_two_triggers_of_one_face_whose_spans_overlap_are_one_finding() -> None:
    # Two points of face 0 at power-off at minutes 0 and 10: spans 30 → 60 and 40 → 60 overlap,
    # so one finding from minute 30 listing cards 0 (from the first) and 1 (came at 5).
    # A third trigger at 100 on the same face, with card 2 staying till 150, is a second finding.
    r = by_hand([(0, 0, 2), (0, 60, 0), (1, 5, 3), (1, 50, 0), (2, 90, 2), (2, 150, 0)], now_min=200)
    p, _ = kernel_presence(r)
    got = work_continued(p, np.array(FACES), np.array([T0, T0 + 10 * MIN, T0 + 100 * MIN]), np.array([0, 0, 0]),
                         now_ns=r.now)
    assert rows(got) == [(0, 0, T0 + 30 * MIN, T0 + 60 * MIN, [(0, 2, T0 + 60 * MIN), (1, 3, T0 + 50 * MIN)]),
                         (2, 0, T0 + 130 * MIN, T0 + 150 * MIN, [(2, 2, T0 + 150 * MIN)])]
    assert got.trigger_of.tolist() == [0, 0, 1]


def test_spans_that_touch_are_one_finding() -> None:
    # The first span ends at 60 as card 0 leaves, the second starts at 60: one maximal span.
    r = by_hand([(0, 0, 2), (0, 60, 0), (1, 20, 3), (1, 70, 0)], now_min=200)
    p, _ = kernel_presence(r)
    got = work_continued(p, np.array(FACES), np.array([T0, T0 + 30 * MIN]), np.array([0, 0]), now_ns=r.now)
    assert rows(got) == [(0, 0, T0 + 30 * MIN, T0 + 70 * MIN, [(0, 2, T0 + 60 * MIN), (1, 3, T0 + 70 * MIN)])]
