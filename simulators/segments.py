"""Where each card is when: segments (card, area, from, to), their edits and the card reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from simulators.noise import I64, key, uniform, uniform1
from simulators.scenario import MethaneRise
from simulators.timebase import MS_H, MS_MIN

if TYPE_CHECKING:
    from simulators.personnel import PersonnelModel

READ_PERIOD_MS = 60_000  # a card is read about once a minute by the station of its area
READ_JITTER_MS = 3_000
_EVAC_MASK_MS = 12 * MS_H  # longer than what is left of any shift, shorter than a worker's next one


@dataclass(frozen=True, slots=True)
class Segments:
    """Half-open stays [t0, t1) of cards in areas (indexes into the mine's cards and areas)."""

    card: NDArray[np.int32]
    area: NDArray[np.int32]
    t0: I64
    t1: I64

    @staticmethod
    def empty() -> Segments:
        z = np.zeros(0, np.int64)
        return Segments(z.astype(np.int32), z.astype(np.int32), z, z)

    @staticmethod
    def of(card: int, rows: list[tuple[int, int, int]]) -> Segments:
        rows = [r for r in rows if r[2] > r[1]]
        return Segments(
            np.full(len(rows), card, np.int32),
            np.array([r[0] for r in rows], np.int32),
            np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], np.int64),
        )

    def __len__(self) -> int:
        return int(self.card.size)

    def plus(self, other: Segments) -> Segments:
        return Segments(
            np.concatenate([self.card, other.card]),
            np.concatenate([self.area, other.area]),
            np.concatenate([self.t0, other.t0]),
            np.concatenate([self.t1, other.t1]),
        )

    def select(self, mask: NDArray[np.bool_]) -> Segments:
        return Segments(self.card[mask], self.area[mask], self.t0[mask], self.t1[mask])

    def overlapping(self, a: int, b: int) -> Segments:
        return self.select((self.t0 < b) & (self.t1 > a))

    def covering(self, t: int) -> list[tuple[int, int]]:
        """(card, area) of every stay that includes instant t."""
        m = (self.t0 <= t) & (self.t1 > t)
        return list(zip(self.card[m].tolist(), self.area[m].tolist(), strict=True))

    def without(self, card: int, m0: int, m1: int) -> Segments:
        """The same stays with `card` cut out of [m0, m1)."""
        hit = (self.card == card) & (self.t0 < m1) & (self.t1 > m0)
        if not hit.any():
            return self
        rest = self.select(~hit)
        cut = self.select(hit)
        before = cut.select(cut.t0 < m0)
        after = cut.select(cut.t1 > m1)
        before = Segments(before.card, before.area, before.t0, np.minimum(before.t1, m0))
        after = Segments(after.card, after.area, np.maximum(after.t0, m1), after.t1)
        return rest.plus(before).plus(after)


@dataclass(frozen=True)
class Override:
    """A scripted stay: `card`'s natural stays in [t0, t1) replaced by `rows` (area, from, to)."""

    card: int
    t0: int
    t1: int
    rows: list[tuple[int, int, int]]


def expand_reads(
    segs: Segments, phase: I64, area_stations: list[NDArray[np.int32]], seed: int
) -> tuple[NDArray[np.int32], I64, NDArray[np.int32]]:
    """(card, ts, station) of every read: the card's minute grid sampled inside its stays.

    Each card has its own grid (phase + k·60 s, jittered ±3 s); a read belongs
    to the stay that holds its nominal time, so adjacent stays never read twice.
    """
    if len(segs) == 0:
        z = np.zeros(0, np.int64)
        return z.astype(np.int32), z, z.astype(np.int32)
    ph = phase[segs.card]
    k0 = -((ph - segs.t0) // READ_PERIOD_MS)
    k1 = -((ph - segs.t1) // READ_PERIOD_MS)
    counts = np.maximum(k1 - k0, 0)
    which = np.repeat(np.arange(len(segs)), counts)
    starts = np.cumsum(counts) - counts
    k = k0[which] + (np.arange(int(counts.sum())) - starts[which])
    card = segs.card[which]
    counter = k * 65_536 + card  # cards of one mine < 65 536
    jit = np.rint((uniform(key(seed, "card-jitter"), counter) - 0.5) * 2 * READ_JITTER_MS).astype(np.int64)
    ts = ph[which] + k * READ_PERIOD_MS + jit
    area = segs.area[which]
    n_st = np.array([s.size for s in area_stations], np.int64)[area]
    pick = (uniform(key(seed, "card-station"), counter) * n_st).astype(np.int64)
    flat = np.concatenate(area_stations) if area_stations else np.zeros(0, np.int32)
    offsets = np.cumsum([0] + [s.size for s in area_stations])[:-1]
    station = flat[np.asarray(offsets, np.int64)[area] + pick].astype(np.int32)
    return card.astype(np.int32), ts, station


def evacuations(model: PersonnelModel, e: MethaneRise, s0: int, used: set[int]) -> list[Override]:
    """After a scripted methane rise reaches alarm level, the crews of that face walk out."""
    point = next((p for p in model.mine.points if p.code == e.point), None)
    if point is None or point.face is None:
        return []
    alarm = point.effective_thresholds().alarm_hi
    face_areas = {i for i, a in enumerate(model.mine.areas) if a.face == point.face}
    if alarm is None or e.to < alarm or not face_areas:
        return []
    te = e.hold_ms(s0)[0] + int(model.params.evacuate_after_min * MS_MIN)
    segs = model.natural(te, te + _EVAC_MASK_MS)
    down = {c for c, _ in segs.covering(te)}
    in_face = segs.select(np.isin(segs.area, list(face_areas)) & (segs.t1 > te))
    out = []
    for c in sorted(set(in_face.card.tolist()) & down - used):
        used.add(c)
        walk = int((8 + 12 * uniform1(key(model.seed, "evacuate", te), c)) * MS_MIN)
        shaft = model.shaft[0]
        out.append(Override(c, te, te + _EVAC_MASK_MS, [(shaft, te + walk, te + walk + 3 * MS_MIN)]))
    return out
