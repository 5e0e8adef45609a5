"""A whole simulated registry: readings, card reads, station states of every mine, by window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from minewatch.registry import Registry
from simulators.errors import SimulatorError
from simulators.model import DEFAULT_CHUNK_MS, MineModel, ReadingBatch
from simulators.params import ModelParams
from simulators.personnel import CardBatch, PersonnelModel
from simulators.scenario import Scenario, check_codes
from simulators.stations import StationBatch, StationModel
from simulators.timebase import as_ms, windows


@dataclass(frozen=True, slots=True)
class MineWindow:
    """Everything one mine reports with nominal times in [start_ms, end_ms)."""

    mine: str
    start_ms: int
    end_ms: int
    readings: ReadingBatch
    cards: CardBatch
    stations: StationBatch

    @property
    def items(self) -> int:
        return len(self.readings) + len(self.cards) + len(self.stations)


class World:
    """The simulated registry between `start` and `end` (None: for ever), seeded."""

    def __init__(
        self,
        registry: Registry,
        seed: int,
        start: datetime | int,
        end: datetime | int | None,
        scenario: Scenario | None = None,
        *,
        params: ModelParams | None = None,
        chunk_ms: int = DEFAULT_CHUNK_MS,
    ) -> None:
        if chunk_ms < 60_000:
            raise SimulatorError(f"chunk_ms={chunk_ms}: windows shorter than a minute are not supported")
        self.registry = registry
        self.seed = seed
        self.start_ms = as_ms(start)
        self.end_ms = as_ms(end) if end is not None else None
        if self.end_ms is not None and self.end_ms <= self.start_ms:
            raise SimulatorError("the end of the run must come after its start")
        self.scenario = scenario or Scenario()
        problems = check_codes(self.scenario, registry)
        if problems:
            raise SimulatorError("\n".join(["scenario names codes the registry lacks:", *problems]))
        self.params = self.scenario.params(params)
        self.chunk_ms = chunk_ms

    def windows(self) -> Iterator[list[MineWindow]]:
        """Per time window, one MineWindow per mine (empty mines included), in time order."""
        s, e = self.start_ms, self.end_ms
        mines = [
            (
                MineModel(m, self.seed, s, e, self.scenario, self.params),
                PersonnelModel(m, self.seed, s, e, self.scenario, self.params),
                StationModel(m, self.seed, s, e, self.scenario),
            )
            for m in self.registry.mines
        ]
        for a, b in windows(s, e, self.chunk_ms):
            yield [MineWindow(pm.mine.code, a, b, pm.window(a, b), cm.window(a, b), sm.window(a, b)) for pm, cm, sm in mines]


def simulate(
    registry: Registry,
    seed: int,
    start: datetime | int,
    end: datetime | int | None,
    scenario: Scenario | None = None,
    *,
    params: ModelParams | None = None,
    chunk_ms: int = DEFAULT_CHUNK_MS,
) -> Iterator[MineWindow]:
    """Every mine's window, time window after time window."""
    for group in World(registry, seed, start, end, scenario, params=params, chunk_ms=chunk_ms).windows():
        yield from group
