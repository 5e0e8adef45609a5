"""Shared fixtures of the simulator tests: the sample registry and a quiet single-mine registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from minewatch.registry import Registry, load_registry
from minewatch.settings import packaged
from simulators.scenario import parse_scenario
from simulators.world import MineWindow, World

CST = timezone(timedelta(hours=8))
START = datetime(2026, 11, 23, 9, 0, tzinfo=CST)
COAL = "140100000001"
TAILINGS = "140100000901"
PIT = "140100000902"


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@pytest.fixture(scope="session")
def registry() -> Registry:
    reg, _ = load_registry(packaged("sample_registry.yaml"))
    return reg


@pytest.fixture(scope="session")
def coal(registry: Registry) -> Registry:
    """Only the first coal mine: most tests need one mine and run faster with it."""
    return Registry(regions=registry.regions, mines=(registry.mine(COAL),))


@dataclass
class Flat:
    """All of a run's items of one kind, flattened: code per item, ts, and the value columns."""

    code: NDArray[np.object_]
    ts: NDArray[np.int64]
    value: NDArray[np.float64]
    status: NDArray[np.int32]
    other: NDArray[np.object_]  # station code for card reads

    def of(self, code: str) -> Flat:
        m = self.code == code
        return Flat(self.code[m], self.ts[m], self.value[m], self.status[m], self.other[m])

    def between(self, a: datetime, b: datetime) -> Flat:
        m = (self.ts >= ms(a)) & (self.ts < ms(b))
        return Flat(self.code[m], self.ts[m], self.value[m], self.status[m], self.other[m])


def flatten(windows: list[MineWindow], kind: str, mine: str | None = None) -> Flat:
    codes, ts, value, status, other = [], [], [], [], []
    for w in windows:
        if mine is not None and w.mine != mine:
            continue
        if kind == "readings":
            r = w.readings
            codes.append(np.array(r.codes, dtype=object)[r.point])
            ts.append(r.ts_ms)
            value.append(r.value)
            status.append(r.status)
            other.append(np.full(len(r), None, dtype=object))
        elif kind == "cards":
            c = w.cards
            codes.append(np.array(c.cards, dtype=object)[c.card])
            ts.append(c.ts_ms)
            value.append(np.zeros(len(c)))
            status.append(np.zeros(len(c), np.int32))
            other.append(np.array(c.stations, dtype=object)[c.station])
        else:
            s = w.stations
            codes.append(np.array(s.stations, dtype=object)[s.station])
            ts.append(s.ts_ms)
            value.append(s.state.astype(float))
            status.append(s.state)
            other.append(np.full(len(s), None, dtype=object))
    if not codes:
        z = np.zeros(0)
        return Flat(z.astype(object), z.astype(np.int64), z, z.astype(np.int32), z.astype(object))
    return Flat(
        np.concatenate(codes),
        np.concatenate(ts),
        np.concatenate(value),
        np.concatenate(status),
        np.concatenate(other),
    )


def run(
    reg: Registry,
    start: datetime,
    hours: float,
    events: list[Any] | None = None,
    seed: int = 1,
    **model: Any,
) -> list[MineWindow]:
    """Every MineWindow of a run (with an inline scenario), as a list."""
    data: dict[str, Any] = {"events": events or []}
    if model:
        data["model"] = model
    scenario = parse_scenario(data, "<test>", reg)
    world = World(reg, seed, start, start + timedelta(hours=hours), scenario)
    return [w for group in world.windows() for w in group]
