"""Personnel: shaft → areas → shaft stays, leaders on every shift, limits, and scripted crowds."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from minewatch.registry import Mine, Registry
from simulators.personnel import generate_cards
from tests.simulators.conftest import COAL, CST, START, Flat, flatten, ms, run

DAY0 = datetime(2026, 11, 23, 0, 0, tzinfo=CST)
HOUR = 3_600_000


def _stays(reads: Flat) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per card, its stays underground: runs of reads with no gap over 30 min."""
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for card in np.unique(reads.code).tolist():
        r = reads.of(card)
        order = np.argsort(r.ts)
        ts, st = r.ts[order], r.other[order]
        cuts = np.flatnonzero(np.diff(ts) > 30 * 60_000) + 1
        out[card] = list(zip(np.split(ts, cuts), np.split(st, cuts), strict=True))
    return out


def _area_of(mine: Mine) -> dict[str, str]:
    return {s: a.code for a in mine.areas for s in a.stations}


def test_stays_go_shaft_areas_shaft_and_stay_within_shift_plus_grace(coal: Registry) -> None:
    mine = coal.mines[0]
    area = _area_of(mine)
    shaft = {a.code for a in mine.areas if a.shaft}
    restricted = {a.code for a in mine.areas if a.restricted}
    reads = flatten(run(coal, DAY0, 48), "cards")
    complete = 0
    for card, stays in _stays(reads).items():
        for ts, st in stays:
            areas = [area[s] for s in st.tolist()]
            assert not restricted & set(areas), card
            if ts[0] < ms(DAY0) + HOUR or ts[-1] > ms(DAY0) + 47 * HOUR:
                continue  # cut by the edges of the run
            complete += 1
            in_shaft = [a in shaft for a in areas]
            # shaft reads only at the start and the end of a stay: one walk in, one walk out
            first_out = in_shaft.index(False)
            last_out = len(in_shaft) - 1 - in_shaft[::-1].index(False)
            assert first_out > 0 and last_out < len(in_shaft) - 1, card
            assert not any(in_shaft[first_out : last_out + 1]), card
            assert ts[-1] - ts[0] <= 10 * HOUR, card  # shift 8 h + 2 h grace
            assert np.diff(ts).max() <= 70_000  # read about once a minute
    assert complete > 150


def test_every_shift_has_a_leader_and_a_third_of_the_crew(coal: Registry) -> None:
    mine = coal.mines[0]
    roles = {c.code: c.role for c in mine.cards}
    workers = sum(1 for r in roles.values() if r == "worker")
    reads = flatten(run(coal, DAY0, 72), "cards")
    for shift in range(1, 8):
        t0 = ms(DAY0) + shift * 8 * HOUR
        early = set(reads.code[(reads.ts >= t0 + 10 * 60_000) & (reads.ts < t0 + 15 * 60_000)].tolist())
        late = set(reads.code[(reads.ts >= t0 + 7 * HOUR) & (reads.ts < t0 + 7 * HOUR + 5 * 60_000)].tolist())
        assert any(roles[c] == "leader" for c in early & late), shift  # a leader for the shift
        crew = sum(1 for c in late if roles[c] == "worker")
        assert 0.25 * workers <= crew <= 0.36 * workers, (shift, crew)


def test_area_head_counts_stay_under_their_limits_by_default(coal: Registry) -> None:
    mine = coal.mines[0]
    area = _area_of(mine)
    reads = flatten(run(coal, DAY0, 24), "cards")
    for minute in range(0, 24 * 60, 7):
        t0 = ms(DAY0) + minute * 60_000
        m = (reads.ts >= t0) & (reads.ts < t0 + 60_000)
        for a in mine.areas:
            if a.approved is None:
                continue
            here = {c for c, s in zip(reads.code[m].tolist(), reads.other[m].tolist(), strict=True) if area[s] == a.code}
            assert len(here) <= a.approved, (minute, a.code)


def test_visitors_come_down_occasionally(coal: Registry) -> None:
    roles = {c.code: c.role for c in coal.mines[0].cards}
    always = flatten(run(coal, DAY0, 48, visitor_probability=1.0), "cards")
    never = flatten(run(coal, DAY0, 48, visitor_probability=0.0), "cards")
    assert {c for c in always.code.tolist() if roles[c] == "visitor"}
    assert not {c for c in never.code.tolist() if roles[c] == "visitor"}


def test_restricted_entry_and_overcrowding_are_scripted(coal: Registry) -> None:
    mine = coal.mines[0]
    area = _area_of(mine)
    at = START + timedelta(hours=1)
    events = [
        {"at": at.isoformat(), "mine": COAL, "kind": "card_enter_restricted", "duration": "10m"},
        {
            "at": at.isoformat(),
            "mine": COAL,
            "area": "A01",
            "kind": "overcrowd",
            "n": 40,
            "duration": "20m",
        },
    ]
    reads = flatten(run(coal, START, 3, events), "cards")
    during = reads.between(at + timedelta(minutes=2), at + timedelta(minutes=8))
    areas = np.array([area[s] for s in during.other.tolist()])
    assert len(set(during.code[areas == "A05"].tolist())) == 1
    in_a01 = len(set(during.code[areas == "A01"].tolist()))
    assert in_a01 > 40  # approved 40: natural crew plus 40 extra
    after = reads.between(at + timedelta(minutes=30), at + timedelta(minutes=40))
    areas_after = np.array([area[s] for s in after.other.tolist()])
    assert not (areas_after == "A05").any() and (areas_after == "A01").sum() < 20 * 10


def test_crews_walk_out_after_a_scripted_exceedance(coal: Registry) -> None:
    mine = coal.mines[0]
    area = _area_of(mine)
    at = START + timedelta(hours=1)
    ev = {
        "at": at.isoformat(),
        "point": f"{COAL}_01MN0001_T0003",
        "kind": "methane_rise",
        "to": 1.6,
        "duration": "10m",
    }
    reads = flatten(run(coal, START, 6, [ev]), "cards")
    areas = np.array([area[s] for s in reads.other.tolist()])
    before = (reads.ts < ms(at)) & (reads.ts >= ms(at) - 600_000) & (areas == "A01")
    assert before.sum() > 0
    leavers = set(reads.code[before].tolist())
    gone = reads.ts >= ms(at + timedelta(minutes=30))
    assert not ((areas == "A01") & gone & (reads.ts < ms(START + timedelta(hours=6)))).any()
    shaft_after = set(reads.code[(areas == "A00") & (reads.ts > ms(at))].tolist())
    assert leavers <= shaft_after  # they left through the shaft
    no_evac = dict(ev, evacuate=False)
    stay = flatten(run(coal, START, 3, [no_evac]), "cards")
    stay_areas = np.array([area[s] for s in stay.other.tolist()])
    assert ((stay_areas == "A01") & (stay.ts >= ms(at + timedelta(minutes=30)))).any()


def test_mines_without_cards_or_shaft_report_no_reads(registry: Registry) -> None:
    batches = list(generate_cards(registry, 1, START, START + timedelta(hours=2)))
    assert {b.mine for b in batches} == {m.code for m in registry.mines if m.cards}
