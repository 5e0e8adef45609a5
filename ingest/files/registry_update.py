"""CDDY point and FZDY station definitions applied to the registry, and the dead letters they resolve.

A definition updates `points` / `stations` (units, ranges, location, coordinates), replaces the
point's relations, and versions its thresholds by the record's data time through the registry's
one writer (`minewatch.registry.db.version_thresholds`, as the registry file does): the version
in effect at that time is compared, and only a difference adds a version (`effective_from` =
data time), so readings before it keep being judged by the thresholds that applied then. A
point's very first version applies to all its history. A record without thresholds of its
own is versioned with the catalogue default for its gas and the point's location type
(`minewatch.registry.catalogue`), exactly as a registry-file point without thresholds is.
A record whose thresholds are out of order (rules.md §1) is refused whole as a dead letter
(`thresholds_out_of_order`); nothing repairs it.

Once a mine's definitions changed, its dead letters with reason `unknown_point` or
`unknown_station` (from files and MQTT) are validated again; what now passes is stored and
the dead letter marked `reprocessed_at`, in one transaction per page.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfoNotFoundError

import asyncpg

from ingest.errors import IngestError
from ingest.files.errors import FileFormatError
from ingest.files.parse import parse_file
from ingest.files.records import CddyRecord, FzdyRecord
from ingest.files.source import (
    TABLE_OF_KIND,
    UNKNOWN_RELATION_POINT,
    MineInfo,
    Reject,
    convert,
    text_safe,
)
from ingest.files.stats import store_reports
from ingest.store import BatchStore, DeadLetter, TableBatch
from ingest.validate import (
    FAMILIES,
    FUTURE_TIME,
    MINE_MISMATCH,
    TABLE_OF,
    UNKNOWN_POINT,
    UNKNOWN_STATION,
    Lookup,
    validate,
)
from minewatch.db.timeseries import PartitionKeeper
from minewatch.registry import SENSOR_GAS, Thresholds, effective_thresholds, order_problems
from minewatch.registry.db import load_lookup, version_thresholds
from minewatch.text import log_safe
from minewatch.timeutil import zone

log = logging.getLogger(__name__)

__all__ = ["BAD_THRESHOLDS", "Applied", "Reprocessed", "apply_cddy", "apply_fzdy", "load_lookup", "load_mine",
           "reprocess", "thresholds_of"]

REPROCESS_REASONS: Final = (UNKNOWN_POINT, UNKNOWN_STATION)
# A CDDY record whose thresholds break the order of rules.md §1 (e.g. clear above alarm).
BAD_THRESHOLDS: Final = "thresholds_out_of_order"
# Dead letters re-validated per transaction: a page commits its rows and its marks together.
REPROCESS_PAGE: Final = 5_000

_UPSERT_POINT: Final = (
    "INSERT INTO points (mine_id, station_id, code, sensor_type, value_type, gas, unit, range_low, range_high, "
    "location, x, y, z, active, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, true, $14) "
    "ON CONFLICT (code) DO UPDATE SET station_id = EXCLUDED.station_id, sensor_type = EXCLUDED.sensor_type, "
    "value_type = EXCLUDED.value_type, gas = EXCLUDED.gas, unit = EXCLUDED.unit, range_low = EXCLUDED.range_low, "
    "range_high = EXCLUDED.range_high, location = EXCLUDED.location, x = EXCLUDED.x, y = EXCLUDED.y, z = EXCLUDED.z, "
    "active = true, updated_at = EXCLUDED.updated_at "
    # A point of another mine is left alone: no row comes back and the record is refused.
    "WHERE points.mine_id = EXCLUDED.mine_id RETURNING id, (xmax = 0) AS created, location_type"
)
_UPSERT_STATION: Final = (
    "INSERT INTO stations (mine_id, code, location, x, y, z, active) VALUES ($1, $2, $3, $4, $5, $6, true) "
    "ON CONFLICT (code) DO UPDATE SET location = EXCLUDED.location, x = EXCLUDED.x, y = EXCLUDED.y, "
    "z = EXCLUDED.z, active = true WHERE stations.mine_id = EXCLUDED.mine_id RETURNING id, (xmax = 0) AS created"
)


@dataclass
class Applied:
    """What one registry file changed, and the records it refused (raw text filled in by the caller)."""

    definitions: int = 0
    created: int = 0
    threshold_versions: int = 0
    relations: int = 0
    rejects: list[Reject] = field(default_factory=list)


async def load_mine(conn: asyncpg.Connection, code: str) -> MineInfo | None:
    """The mine's id, zone, power-state table and known encoding; None if it is not registered."""
    row = await conn.fetchrow(
        "SELECT m.id, m.code, m.timezone, coalesce(f.power_scheme, 'dc0') AS scheme, f.encoding FROM mines m "
        "LEFT JOIN mine_file_settings f ON f.mine_id = m.id WHERE m.code = $1", code)
    if row is None:
        return None
    try:
        tz = zone(row["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise IngestError(f"mine {code}: time zone {row['timezone']!r} is unknown: {exc}") from exc
    table = {r["code"]: r["state"] for r in await conn.fetch(
        "SELECT code, state FROM power_state_codes WHERE scheme = $1", row["scheme"])}
    return MineInfo(row["id"], row["code"], tz, table, row["encoding"])


def _threshold_values(r: CddyRecord) -> dict[str, float | None]:
    return {"alarm_hi": r.alarm_upper, "clear_hi": r.clear_upper, "poweroff_hi": r.power_off_upper,
            "restore_hi": r.restore_upper, "alarm_lo": r.alarm_lower, "clear_lo": r.clear_lower,
            "poweroff_lo": r.power_off_lower, "restore_lo": r.restore_lower}


def thresholds_of(r: CddyRecord) -> Thresholds:
    """The eight CDDY threshold fields as the registry's threshold set (raises if out of order)."""
    return Thresholds(**_threshold_values(r))


def _bad_thresholds(r: CddyRecord) -> Reject | None:
    problems = order_problems(_threshold_values(r))
    if problems:
        return Reject(r.line, r.ordinal, BAD_THRESHOLDS,
                      f"point {r.point!r}: thresholds out of order: {'; '.join(problems)}")
    return None


def _future(r: CddyRecord | FzdyRecord, limit: datetime) -> Reject | None:
    if r.data_time > limit:
        return Reject(r.line, r.ordinal, FUTURE_TIME, f"data time {r.data_time.isoformat()} is ahead of {limit.isoformat()}")
    return None


async def apply_cddy(conn: asyncpg.Connection, mine: MineInfo, records: Sequence[CddyRecord], *, now: datetime,
                     limit: datetime) -> Applied:
    """Apply point definitions in file order (run inside the caller's transaction)."""
    out = Applied()
    defined: list[tuple[CddyRecord, int]] = []
    for r in records:
        bad = _future(r, limit) or _bad_thresholds(r)
        station_id: int | None = None
        if bad is None and r.station:
            station_id = await _station_for_point(conn, mine, r.station)
            if station_id is None:
                bad = Reject(r.line, r.ordinal, MINE_MISMATCH, f"station {r.station!r} belongs to another mine")
        if bad is not None:
            out.rejects.append(bad)
            continue
        row = await conn.fetchrow(
            _UPSERT_POINT, mine.id, station_id, r.point, r.sensor_type, r.value_type, SENSOR_GAS.get(r.sensor_type, "other"),
            text_safe(r.unit or ""), r.range_low, r.range_high, text_safe(r.location or ""), r.x, r.y, r.z, now)
        if row is None:
            out.rejects.append(Reject(r.line, r.ordinal, MINE_MISMATCH, f"point {r.point!r} belongs to another mine"))
            continue
        out.definitions += 1
        out.created += int(row["created"])
        own = thresholds_of(r)
        t = effective_thresholds(own, gas=SENSOR_GAS.get(r.sensor_type, "other"), value_type=r.value_type,
                                 location_type=row["location_type"])
        out.threshold_versions += await version_thresholds(conn, row["id"], t, at=r.data_time, source="file")
        defined.append((r, row["id"]))
    out.relations = await _relations(conn, mine, defined, out.rejects)
    return out


async def _station_for_point(conn: asyncpg.Connection, mine: MineInfo, code: str) -> int | None:
    # A point may name a station no FZDY has defined yet: it is created bare, and its
    # location arrives with the FZDY. None when the station belongs to another mine.
    await conn.execute("INSERT INTO stations (mine_id, code) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING", mine.id, code)
    row = await conn.fetchrow("SELECT id, mine_id FROM stations WHERE code = $1", code)
    assert row is not None
    return int(row["id"]) if row["mine_id"] == mine.id else None


async def _relations(conn: asyncpg.Connection, mine: MineInfo, defined: list[tuple[CddyRecord, int]],
                     rejects: list[Reject]) -> int:
    """Replace each defined point's relations; a relation naming an unknown point is refused alone."""
    codes = sorted({c for r, _ in defined for rel in r.relations for c in (rel.source_point, rel.target_point)})
    known = {row["code"]: (row["id"], row["mine_id"]) for row in await conn.fetch(
        "SELECT code, id, mine_id FROM points WHERE code = ANY($1::text[])", codes)} if codes else {}
    n = 0
    for r, point_id in defined:
        await conn.execute("DELETE FROM point_relations WHERE point_id = $1", point_id)
        missing: list[str] = []
        for rel in r.relations:
            src, dst = known.get(rel.source_point), known.get(rel.target_point)
            if src is None or dst is None or src[1] != mine.id or dst[1] != mine.id:
                missing.append(f"{rel.kind}-{rel.source_point}:{rel.target_point}")
                continue
            n += int(await conn.fetchval(
                "WITH i AS (INSERT INTO point_relations (point_id, kind, target_point_id, name) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i", src[0], rel.kind, dst[0], text_safe(rel.name)))
        if missing:
            rejects.append(Reject(r.line, r.ordinal, UNKNOWN_RELATION_POINT,
                                  f"relations name points this mine has not defined: {', '.join(missing)}"))
    return n


async def apply_fzdy(conn: asyncpg.Connection, mine: MineInfo, records: Sequence[FzdyRecord], *, limit: datetime) -> Applied:
    """Apply station definitions in file order (run inside the caller's transaction)."""
    out = Applied()
    for r in records:
        bad = _future(r, limit)
        if bad is not None:
            out.rejects.append(bad)
            continue
        row = await conn.fetchrow(_UPSERT_STATION, mine.id, r.station, text_safe(r.location or ""), r.x, r.y, r.z)
        if row is None:
            out.rejects.append(Reject(r.line, r.ordinal, MINE_MISMATCH, f"station {r.station!r} belongs to another mine"))
            continue
        out.definitions += 1
        out.created += int(row["created"])
    return out


@dataclass
class Reprocessed:
    """What re-validating a mine's unknown-point / unknown-station dead letters did."""

    resolved: int = 0  # dead letters marked reprocessed_at
    stored: int = 0
    duplicates: int = 0
    still_unknown: int = 0
    rerouted: Counter[str] = field(default_factory=Counter)  # resolved into a dead letter with a new reason


@dataclass
class _Page:
    """One page of dead letters being re-validated: what to store, what to record, what is settled."""

    mine: MineInfo
    now: datetime
    tables: dict[str, dict[str, TableBatch]] = field(default_factory=lambda: {"file": {}, "mqtt": {}})
    reports: list[tuple[str, str, list[tuple[Any, ...]]]] = field(default_factory=list)  # (table, file, rows)
    dead: list[DeadLetter] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)

    def settle(self, letter: asyncpg.Record, reject: tuple[str, str] | None, out: Reprocessed) -> None:
        """A letter that passes now is resolved by its stored row; one that fails for another
        reason is resolved into a new dead letter; one still unknown waits for a later definition."""
        if reject is None:
            self.resolved.append(letter["id"])
            return
        reason, detail = reject
        if reason in REPROCESS_REASONS:
            out.still_unknown += 1
            return
        self.resolved.append(letter["id"])
        self.dead.append(DeadLetter(self.now, letter["source"], letter["topic"], letter["file"], letter["line"],
                                    self.mine.code, reason, f"re-validating dead letter {letter['id']}: {detail}",
                                    letter["payload"]))
        out.rerouted[reason] += 1


async def reprocess(conn: asyncpg.Connection, *, mine: MineInfo, lookup: Lookup, keeper: PartitionKeeper,
                    now: datetime, future_tolerance: timedelta = timedelta(minutes=5),
                    oldest: datetime | None = None) -> Reprocessed:
    """Re-validate the mine's dead letters whose reason is in `REPROCESS_REASONS`; store what passes now.

    File records before `oldest` (the retention horizon) stay dead letters, now as `too_old`.

    Runs its own transactions (one per page); safe to repeat after a crash, since a letter is
    marked in the transaction that stores its row.
    """
    out = Reprocessed()
    stores = {"file": BatchStore(conn, keeper, source="file"), "mqtt": BatchStore(conn, keeper, source="mqtt")}
    last_id = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch(
                "SELECT id, source, topic, file, line, payload FROM dead_letters WHERE mine_code = $1 "
                "AND reason = ANY($2::text[]) AND reprocessed_at IS NULL AND source IN ('file', 'mqtt') AND id > $3 "
                "ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED",
                mine.code, list(REPROCESS_REASONS), last_id, REPROCESS_PAGE)
            if not rows:
                return out
            last_id = rows[-1]["id"]
            page = _Page(mine, now)
            by_file: dict[str, list[asyncpg.Record]] = {}
            for r in rows:
                if r["source"] == "mqtt":
                    _revalidate_item(r, lookup, future_tolerance, page, out)
                elif r["file"]:
                    by_file.setdefault(r["file"], []).append(r)
            for name, letters in by_file.items():
                _revalidate_records(name, letters, lookup, future_tolerance, page, out, oldest)
            dead = page.dead
            for source, tables in page.tables.items():
                if tables or dead:
                    result = await stores[source].write(tables, dead, now=now)
                    dead = []
                    out.stored += sum(result.stored.values())
                    out.duplicates += sum(result.duplicates.values())
            for table, name, report_rows in page.reports:
                stored = await store_reports(conn, table, report_rows, file=name, now=now)
                out.stored += stored.inserted + stored.updated
                out.duplicates += stored.unchanged
            if page.resolved:
                await conn.execute("UPDATE dead_letters SET reprocessed_at = $1 WHERE id = ANY($2::bigint[])",
                                   now, page.resolved)
            out.resolved += len(page.resolved)


def _revalidate_item(letter: asyncpg.Record, lookup: Lookup, future_tolerance: timedelta, page: _Page,
                     out: Reprocessed) -> None:
    # An MQTT dead letter holds one item's exact bytes; the topic's last level names its family
    # (the field variant's `/{mine}/{system}` carries safety items).
    topic = letter["topic"] or ""
    family = topic.rsplit("/", 1)[-1]
    family = family if family in FAMILIES else "safety"
    v = validate(family, page.mine.code, letter["payload"].encode(), lookup, now=page.now,
                 future_tolerance=future_tolerance)
    if v.rows:
        page.tables["mqtt"].setdefault(TABLE_OF[family], TableBatch()).extend(
            v.rows, (topic, page.mine.code), page.mine.id, v.min_ts, v.max_ts)
        page.settle(letter, None, out)
    elif v.rejects:
        page.settle(letter, (v.rejects[0].reason, v.rejects[0].detail), out)


# The records of one file's dead letters are parsed again as a file of their own: the
# header's fields other than the mine code do not matter to the records.
_HEADER: Final = "{mine};;;;;;2000-01-01 00:00:00~\n"


def _revalidate_records(name: str, letters: list[asyncpg.Record], lookup: Lookup, future_tolerance: timedelta,
                        page: _Page, out: Reprocessed, oldest: datetime | None = None) -> None:
    parts = name.rsplit("_", 2)
    kind = parts[1].upper() if len(parts) == 3 else ""
    if kind not in TABLE_OF_KIND:
        return  # registry records and unreadable names: nothing to store
    mine = page.mine
    text = _HEADER.format(mine=mine.code) + "".join(letter["payload"] + "~\n" for letter in letters) + "||"
    try:
        parsed = parse_file(name, text.encode(), tz=mine.tz, power_table=mine.power_table, encoding="utf-8")
    except FileFormatError as exc:
        log.warning("cannot re-read the dead letters of %s: %s", log_safe(name), log_safe(str(exc)))
        return
    # Ordinal k is the k-th letter; a record that no longer parses stays where it is.
    converted = convert(kind, parsed.records, lookup, mine.code, now=page.now, future_tolerance=future_tolerance,
                        oldest=oldest)
    ordinal_of_line = {r.line: r.ordinal for r in parsed.records}
    for reject in converted.rejects:
        page.settle(letters[reject.ordinal - 1], (reject.reason, reject.detail), out)
    if not converted.rows:
        return
    passed = [letters[ordinal_of_line[line] - 1] for line in converted.lines]
    for letter in passed:
        page.settle(letter, None, out)
    if converted.table in TABLE_OF.values():
        page.tables["file"].setdefault(converted.table, TableBatch()).extend(
            converted.rows, (name, mine.code), mine.id, converted.lo, converted.hi)
    else:
        # Stored rows of the reported tables carry the line of the original file.
        rows = [(*row[:-1], letter["line"] or 0) for row, letter in zip(converted.rows, passed, strict=True)]
        page.reports.append((converted.table, name, rows))
