"""Personnel location: crews come down the shaft at shift change, work in areas, leave.

A card's stay underground is a list of segments (card, area, from, to); card
reads are the card's 60 s read grid sampled inside them. Segments of a shift
are a pure function of (seed, mine, day, shift), so any window is computed
directly. Scenario events (restricted-area entry, crowds, evacuation after a
methane rise) replace parts of those segments.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from minewatch.registry import Mine, Registry
from simulators.errors import SimulatorError
from simulators.model import DEFAULT_CHUNK_MS
from simulators.noise import I64, key, uniform, uniform1
from simulators.params import ModelParams
from simulators.scenario import CardEnterRestricted, MethaneRise, Overcrowd, Scenario
from simulators.segments import Override, Segments, evacuations, expand_reads
from simulators.timebase import MS_H, MS_MIN, SHIFT_MS, as_ms, shift_starts, windows

# Crews arrive in the 30 min before the shift and the outgoing crew leaves in
# the 35 min around its end, so at most 8 h 55 min underground (rules.md §7:
# shift + 2 h grace before "overtime").
_ARRIVE_SPREAD = 25 * MS_MIN
_LOOKBACK_MS = 10 * MS_H  # a shift starting this long before a window can still have people in it
# Crews fill an area to at most this share of its approved head count, so the
# outgoing and incoming crews together stay under the limit at shift change.
_AREA_SHARE = 0.45


@dataclass(frozen=True, slots=True)
class CardBatch:
    """One mine's card reads in one window, sorted by (ts, card); indexes `cards` / `stations`."""

    mine: str
    cards: tuple[str, ...]
    stations: tuple[str, ...]
    card: NDArray[np.int32]
    ts_ms: I64
    station: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.ts_ms.size)


class PersonnelModel:
    """The crews of one mine; `window(a, b)` gives the card reads in [a, b)."""

    def __init__(
        self,
        mine: Mine,
        seed: int,
        start_ms: int,
        end_ms: int | None,
        scenario: Scenario | None = None,
        params: ModelParams | None = None,
    ) -> None:
        scenario = scenario or Scenario()
        self.mine, self.seed, self.start_ms, self.end_ms = mine, seed, start_ms, end_ms
        self.params = scenario.params(params)
        self.cards = tuple(c.code for c in mine.cards)
        self.stations = tuple(s.code for s in mine.stations)
        st_index = {s: i for i, s in enumerate(self.stations)}
        self.area_stations = [np.array([st_index[s] for s in a.stations], np.int32) for a in mine.areas]
        self.shaft = [i for i, a in enumerate(mine.areas) if a.shaft and a.stations]
        self.work = [i for i, a in enumerate(mine.areas) if not a.shaft and not a.restricted and a.stations]
        self.active = bool(self.shaft and self.work and self.cards)
        roles = [c.role for c in mine.cards]
        self.leaders = [i for i, r in enumerate(roles) if r == "leader"]
        self.visitors = [i for i, r in enumerate(roles) if r == "visitor"]
        workers = [i for i, r in enumerate(roles) if r == "worker"]
        # thirds of the workforce, shuffled by the seed so crews mix card numbers
        ranked = sorted(workers, key=lambda c: uniform1(key(seed, self.cards[c], "crew"), 0))
        self.crews = [ranked[s::3] for s in range(3)]
        self.phase = np.array([int(uniform1(key(seed, c, "read-phase"), 0) * MS_MIN) for c in self.cards], np.int64)
        self._cache: dict[tuple[int, int], Segments] = {}
        self.overrides = self._overrides(scenario) if self.active else []

    # -- natural shifts -------------------------------------------------------------------

    def shift(self, day: int, s: int, start: int) -> Segments:
        """Everyone's segments of one shift: shaft, home area (maybe an excursion), shaft."""
        hit = self._cache.get((day, s))
        if hit is not None:
            return hit
        sk = key(self.seed, self.mine.code, "shift", day, s)
        people: list[int] = [
            c for c in self.crews[s] if uniform1(key(self.seed, self.cards[c], "attend"), day * 3 + s) < self.params.attendance
        ]
        # One leader per shift in rotation; a lone leader can only take every other shift.
        n_lead, turn = len(self.leaders), day * 3 + s
        if n_lead >= 2 or (n_lead == 1 and turn % 2 == 0):
            people.append(self.leaders[turn % n_lead])
        people.sort(key=lambda c: uniform1(sk, c))
        homes = self._homes(len(people))
        segs = Segments.empty()
        for j, (c, home) in enumerate(zip(people, homes, strict=True)):
            u = uniform(key(self.seed, self.cards[c], "shift", day, s), np.arange(8, dtype=np.int64))
            enter = start - 30 * MS_MIN + int(u[0] * _ARRIVE_SPREAD)
            leave = start + SHIFT_MS - 10 * MS_MIN + int(u[1] * 35 * MS_MIN)
            plan = [(home, enter + int((3 + 3 * u[2]) * MS_MIN), leave - int((3 + 3 * u[3]) * MS_MIN))]
            if u[4] < 0.3 and len(self.work) > 1:  # a trip to another area for 20-60 min
                other = [a for a in self.work if a != home][int(u[5] * (len(self.work) - 1))]
                t0 = enter + 90 * MS_MIN + int(u[6] * (SHIFT_MS - 4 * MS_H))
                t1 = t0 + int((20 + 40 * u[7]) * MS_MIN)
                plan = [(home, plan[0][1], t0), (other, t0, t1), (home, t1, plan[0][2])]
            segs = segs.plus(self._walk(c, enter, leave, plan, j))
        if s == 1 and self.visitors and uniform1(sk, 10_000 + day) < self.params.visitor_probability:
            v = self.visitors[int(uniform1(sk, 20_000 + day) * len(self.visitors))]
            enter = start + MS_H + int(uniform1(sk, 30_000 + day) * MS_H)
            leave = enter + int((1.5 + 1.5 * uniform1(sk, 40_000 + day)) * MS_H)
            road = max(self.work, key=lambda a: self.mine.areas[a].approved or 0)
            segs = segs.plus(self._walk(v, enter, leave, [(road, enter + 5 * MS_MIN, leave - 5 * MS_MIN)], 0))
        self._cache[(day, s)] = segs
        if len(self._cache) > 64:
            self._cache.pop(next(iter(self._cache)))
        return segs

    def _walk(self, card: int, enter: int, leave: int, plan: list[tuple[int, int, int]], j: int) -> Segments:
        shaft = self.shaft[j % len(self.shaft)]
        rows = [(shaft, enter, plan[0][1]), *plan, (shaft, plan[-1][2], leave)]
        return Segments.of(card, rows)

    def _homes(self, n: int) -> list[int]:
        """Home areas for n people: proportional to approved head counts, capped per area."""
        weights = np.array([float(self.mine.areas[a].approved or 20) for a in self.work])
        caps = np.array([int(_AREA_SHARE * a) if (a := self.mine.areas[w].approved) else n for w in self.work])
        share = weights / weights.sum() * n
        count = np.minimum(np.floor(share).astype(int), caps)
        order = np.argsort(-(share - np.floor(share)), kind="stable")
        i = 0
        while count.sum() < n and i < 10 * len(self.work) * (n + 1):
            a = order[i % len(order)]
            if count[a] < caps[a] or (count >= caps).all():
                count[a] += 1
            i += 1
        return [self.work[a] for a in np.repeat(np.arange(len(self.work)), count)]

    def natural(self, a: int, b: int) -> Segments:
        """Segments of every shift that can have people underground during [a, b)."""
        segs = Segments.empty()
        for day, s, start in shift_starts(a - _LOOKBACK_MS, b + MS_H, self.mine.timezone):
            segs = segs.plus(self.shift(day, s, start))
        return segs.overlapping(a, b)

    # -- scenario -------------------------------------------------------------------------

    def _overrides(self, scenario: Scenario) -> list[Override]:
        out: list[Override] = []
        used: set[int] = set()
        s0 = self.start_ms
        for e in scenario.events:
            if isinstance(e, CardEnterRestricted) and e.mine == self.mine.code:
                out.append(self._restricted(e, s0, used))
            elif isinstance(e, Overcrowd) and e.mine == self.mine.code:
                out.extend(self._crowd(e, s0, used))
        for e in scenario.events:
            if isinstance(e, MethaneRise) and e.evacuate:
                out.extend(evacuations(self, e, s0, used))
        return out

    def _restricted(self, e: CardEnterRestricted, s0: int, used: set[int]) -> Override:
        area = next(i for i, a in enumerate(self.mine.areas) if a.restricted and (e.area is None or a.code == e.area))
        t0, t1 = e.start_ms(s0), e.end_ms(s0)
        here = self.natural(t0, t0 + 1).covering(t0)
        if e.card is not None:
            card = self.cards.index(e.card)
        else:
            candidates = [c for c, ar in here if ar in self.work and c not in used]
            pool = (
                candidates or [c for c in self.visitors if c not in used] or [c for c in range(len(self.cards)) if c not in used]
            )
            card = min(pool, key=lambda c: self.cards[c])
        used.add(card)
        if any(c == card for c, _ in here):  # already underground: walks over and back
            return Override(card, t0, t1, [(area, t0, t1)])
        shaft = self.shaft[0]
        return Override(
            card,
            t0 - 4 * MS_MIN,
            t1 + 4 * MS_MIN,
            [(shaft, t0 - 4 * MS_MIN, t0), (area, t0, t1), (shaft, t1, t1 + 4 * MS_MIN)],
        )

    def _crowd(self, e: Overcrowd, s0: int, used: set[int]) -> list[Override]:
        area = next(i for i, a in enumerate(self.mine.areas) if a.code == e.area)
        t0, t1 = e.start_ms(s0), e.end_ms(s0)
        busy = set(self.natural(t0 - 10 * MS_MIN, t1 + 10 * MS_MIN).card.tolist())
        leaders = set(self.leaders)
        free = [c for c in range(len(self.cards)) if c not in busy and c not in used and c not in leaders]
        if len(free) < e.n:
            raise SimulatorError(
                f"overcrowd at {e.at}: mine {self.mine.code} has only {len(free)} cards"
                f" not underground"
                f" then, {e.n} asked (the registry needs more cards)"
            )
        free.sort(key=lambda c: uniform1(key(self.seed, "crowd", e.area, t0), c))
        out = []
        shaft = self.shaft[0]
        for j, c in enumerate(free[: e.n]):
            used.add(c)
            enter = t0 - 5 * MS_MIN - int(uniform1(key(self.seed, "crowd-in", t0), j) * 3 * MS_MIN)
            out.append(
                Override(
                    c,
                    enter,
                    t1 + 4 * MS_MIN,
                    [(shaft, enter, t0), (area, t0, t1), (shaft, t1, t1 + 4 * MS_MIN)],
                )
            )
        return out

    # -- reads ----------------------------------------------------------------------------

    def window(self, a: int, b: int) -> CardBatch:
        """Card reads with times in [a, b) (and inside the run)."""
        empty = np.zeros(0, np.int64)
        if not self.active:
            return CardBatch(
                self.mine.code,
                self.cards,
                self.stations,
                empty.astype(np.int32),
                empty,
                empty.astype(np.int32),
            )
        segs = self.natural(a - MS_MIN, b + MS_MIN)
        for o in self.overrides:
            if o.t0 < b + MS_MIN and o.t1 > a - MS_MIN:
                segs = segs.without(o.card, o.t0, o.t1).plus(Segments.of(o.card, o.rows))
        card, ts, station = expand_reads(segs, self.phase, self.area_stations, self.seed)
        lo, hi = max(a, self.start_ms), b if self.end_ms is None else min(b, self.end_ms)
        keep = (ts >= lo) & (ts < hi)
        card, ts, station = card[keep], ts[keep], station[keep]
        order = np.lexsort((card, ts))
        return CardBatch(self.mine.code, self.cards, self.stations, card[order], ts[order], station[order])


def generate_cards(
    registry: Registry,
    seed: int,
    start: datetime | int,
    end: datetime | int | None,
    scenario: Scenario | None = None,
    *,
    params: ModelParams | None = None,
    chunk_ms: int = DEFAULT_CHUNK_MS,
) -> Iterator[CardBatch]:
    """Per-mine card-read batches of the whole registry, window by window."""
    s, e = as_ms(start), (as_ms(end) if end is not None else None)
    models = [PersonnelModel(m, seed, s, e, scenario, params) for m in registry.mines]
    for a, b in windows(s, e, chunk_ms):
        for model in models:
            batch = model.window(a, b)
            if len(batch):
                yield batch
