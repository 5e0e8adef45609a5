"""The registry in PostgreSQL: the one writer of threshold versions and the one lookup ingest validates against.

Both the registry file (`minewatch.db.registry_store`) and CDDY definitions
(`ingest.files.registry_update`) version thresholds here, so a point is judged the same
whichever path defined it: the version in effect at the given time is compared, only a
difference adds a version (effective from that time), and a point's very first version
applies to all its history (so a back-fill of data older than its definition, or readings
re-processed from dead letters, are judged too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

import asyncpg
import numpy as np
from numpy.typing import NDArray

from minewatch.registry.thresholds import Thresholds, order_problems, same_values

# The first threshold version of a point applies to all its history.
SINCE_FOREVER = datetime(1970, 1, 1, tzinfo=UTC)

VersionSource = Literal["registry", "file"]


@dataclass(frozen=True)
class Lookup:
    """Registry lookups the validators need: code -> (id, owning mine code). Active entries only."""

    points: Mapping[str, tuple[int, str]]
    cards: Mapping[str, tuple[int, str]]
    stations: Mapping[str, tuple[int, str]]
    mine_ids: Mapping[str, int]
    # Each point's alarm levels of the threshold version in effect when the lookup was read:
    # which readings may open an exceedance at once (`AlarmTable.mines_of`).
    alarms: AlarmTable | None = None


@dataclass(frozen=True)
class AlarmTable:
    """Alarm levels by point id (arrays indexed by id; NaN: none) and each point's mine id."""

    hi: NDArray[np.float64]
    lo: NDArray[np.float64]
    mine: NDArray[np.int64]

    @classmethod
    def build(cls, point: Sequence[int], mine: Sequence[int], hi: Sequence[float], lo: Sequence[float]) -> AlarmTable:
        """From columns: point id, its mine id, alarm_hi and alarm_lo (NaN: none)."""
        ids = np.asarray(point, np.int64)
        size = int(ids.max()) + 1 if len(ids) else 0
        table = cls(np.full(size, np.nan), np.full(size, np.nan), np.full(size, -1, np.int64))
        table.hi[ids], table.lo[ids], table.mine[ids] = hi, lo, mine
        return table

    def mines_of(self, point_ids: NDArray[np.int64], values: NDArray[np.float64]) -> set[int]:
        """The mines with a reading at or beyond its point's alarm level (a hint that marks their
        windows urgent, rules.store.claim_mine: a stale level only reorders the queue)."""
        known = point_ids < len(self.hi)
        ids, vals = point_ids[known], values[known]
        hit = (vals >= self.hi[ids]) | (vals <= self.lo[ids])  # NaN compares false: no level
        return set(np.unique(self.mine[ids[hit]]).tolist()) if hit.any() else set()


class MineRef(Protocol):
    """A mine as the file path knows it (`ingest.files.source.MineInfo` is one)."""

    @property
    def id(self) -> int: ...

    @property
    def code(self) -> str: ...


async def version_thresholds(conn: asyncpg.Connection, point_id: int, t: Thresholds, *, at: datetime,
                             source: VersionSource) -> int:
    """Version `t` for a point as of `at`; 1 if a version was added or replaced, 0 if unchanged.

    `t` was validated when built (`Thresholds` refuses a disordered set); the check runs again
    here so that no caller can store one by building it some other way.
    """
    problems = order_problems(t.as_dict())
    if problems:
        raise ValueError(f"point id {point_id}: thresholds out of order: {'; '.join(problems)}")
    current = await conn.fetchrow(
        "SELECT alarm_hi, clear_hi, poweroff_hi, restore_hi, alarm_lo, clear_lo, poweroff_lo, restore_lo "
        "FROM point_thresholds WHERE point_id = $1 AND effective_from <= $2 ORDER BY effective_from DESC LIMIT 1",
        point_id, at)
    if current is not None:
        if same_values(tuple(current.values()), t.as_tuple()):
            return 0
        effective = at
    else:
        any_version = await conn.fetchval("SELECT count(*) FROM point_thresholds WHERE point_id = $1", point_id)
        effective = SINCE_FOREVER if any_version == 0 else at
    await conn.execute(
        "INSERT INTO point_thresholds (point_id, effective_from, alarm_hi, clear_hi, poweroff_hi, restore_hi, alarm_lo, "
        "clear_lo, poweroff_lo, restore_lo, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        # Two definitions with the same time: the later one wins.
        "ON CONFLICT (point_id, effective_from) DO UPDATE SET alarm_hi = EXCLUDED.alarm_hi, clear_hi = EXCLUDED.clear_hi, "
        "poweroff_hi = EXCLUDED.poweroff_hi, restore_hi = EXCLUDED.restore_hi, alarm_lo = EXCLUDED.alarm_lo, "
        "clear_lo = EXCLUDED.clear_lo, poweroff_lo = EXCLUDED.poweroff_lo, restore_lo = EXCLUDED.restore_lo, "
        "source = EXCLUDED.source, recorded_at = now()",
        point_id, effective, *t.as_tuple(), source)
    return 1


async def load_lookup(conn: asyncpg.Connection, mine: MineRef | None = None) -> Lookup:
    """The validator's lookup of active registry entries: code -> (id, owning mine code).

    Without `mine`, the whole registry (MQTT ingest). With it, one mine's files: its active
    points and stations, and any whose code starts with its code (so a point registered to
    another mine is told apart from an unknown one); cards do not come in files.
    """
    if mine is None:
        points = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
            "SELECT p.code, p.id, m.code AS mine FROM points p JOIN mines m ON m.id = p.mine_id WHERE p.active")}
        cards = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
            "SELECT c.code, c.id, m.code AS mine FROM cards c JOIN mines m ON m.id = c.mine_id WHERE c.active")}
        stations = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
            "SELECT s.code, s.id, m.code AS mine FROM stations s JOIN mines m ON m.id = s.mine_id WHERE s.active")}
        mines = {r["code"]: r["id"] for r in await conn.fetch("SELECT code, id FROM mines")}
        # One row of four arrays: the table is filled by numpy, not a Python loop per point.
        cols = await conn.fetchrow(
            "SELECT coalesce(array_agg(point_id), '{}'), coalesce(array_agg(mine_id), '{}'), "
            "coalesce(array_agg(hi), '{}'), coalesce(array_agg(lo), '{}') FROM ("
            "SELECT DISTINCT ON (t.point_id) t.point_id, p.mine_id, coalesce(t.alarm_hi, 'NaN') AS hi, "
            "coalesce(t.alarm_lo, 'NaN') AS lo FROM point_thresholds t JOIN points p ON p.id = t.point_id "
            "WHERE p.active AND t.effective_from <= now() ORDER BY t.point_id, t.effective_from DESC) v")
        assert cols is not None  # an aggregate without GROUP BY always gives one row
        return Lookup(points, cards, stations, mines, AlarmTable.build(cols[0], cols[1], cols[2], cols[3]))
    points = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
        "SELECT p.code, p.id, m.code AS mine FROM points p JOIN mines m ON m.id = p.mine_id "
        "WHERE p.active AND (p.mine_id = $1 OR starts_with(p.code, $2))", mine.id, mine.code)}
    stations = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
        "SELECT s.code, s.id, m.code AS mine FROM stations s JOIN mines m ON m.id = s.mine_id "
        "WHERE s.active AND (s.mine_id = $1 OR starts_with(s.code, $2))", mine.id, mine.code)}
    return Lookup(points, {}, stations, {mine.code: mine.id})
