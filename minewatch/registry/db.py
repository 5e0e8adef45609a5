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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import asyncpg

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
    # point id -> (alarm_hi, alarm_lo) of its threshold version in effect when the lookup was
    # read (NaN: none): which readings may open an exceedance at once (`alarming`).
    alarms: Mapping[int, tuple[float, float]] = field(default_factory=dict)

    def alarming(self, point_ids: Sequence[int], values: Sequence[float]) -> bool:
        """Whether any reading is at or beyond its point's alarm level (a hint that marks the
        batch's window urgent, rules.store.claim_mine: a stale level only reorders the queue)."""
        alarms = self.alarms
        if not alarms:
            return False
        for p, v in zip(point_ids, values, strict=True):
            a = alarms.get(p)
            if a is not None and (v >= a[0] or v <= a[1]):
                return True
        return False


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
        alarms = {r["point_id"]: (r["hi"], r["lo"]) for r in await conn.fetch(
            "SELECT DISTINCT ON (t.point_id) t.point_id, coalesce(t.alarm_hi, 'NaN') AS hi, "
            "coalesce(t.alarm_lo, 'NaN') AS lo FROM point_thresholds t JOIN points p ON p.id = t.point_id "
            "WHERE p.active AND t.effective_from <= now() ORDER BY t.point_id, t.effective_from DESC")
            if r["hi"] == r["hi"] or r["lo"] == r["lo"]}
        return Lookup(points, cards, stations, mines, alarms)
    points = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
        "SELECT p.code, p.id, m.code AS mine FROM points p JOIN mines m ON m.id = p.mine_id "
        "WHERE p.active AND (p.mine_id = $1 OR starts_with(p.code, $2))", mine.id, mine.code)}
    stations = {r["code"]: (r["id"], r["mine"]) for r in await conn.fetch(
        "SELECT s.code, s.id, m.code AS mine FROM stations s JOIN mines m ON m.id = s.mine_id "
        "WHERE s.active AND (s.mine_id = $1 OR starts_with(s.code, $2))", mine.id, mine.code)}
    return Lookup(points, {}, stations, {mine.code: mine.id})
