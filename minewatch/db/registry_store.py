"""Writes the validated registry into PostgreSQL: idempotent, with versioned thresholds.

Threshold versions are written by the registry package's one writer
(`minewatch.registry.db.version_thresholds`), the same CDDY definitions use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from minewatch.registry import Registry
from minewatch.registry.db import SINCE_FOREVER, version_thresholds

__all__ = ["SINCE_FOREVER", "SyncSummary", "sync_registry"]


@dataclass(frozen=True)
class SyncSummary:
    """What one registry load changed."""

    mines: int
    points: int
    cards: int
    threshold_versions_added: int
    points_deactivated: int


async def sync_registry(conn: asyncpg.Connection, reg: Registry, *, checksum: str, source: str,
                        now: datetime) -> SyncSummary:
    """Upsert the registry. Re-loading the same file changes nothing; a threshold change adds a version."""
    versions_added = 0
    async with conn.transaction():
        for r in reg.regions:
            await conn.execute(
                "INSERT INTO regions(code, name, level, parent) VALUES ($1,$2,$3,$4) ON CONFLICT (code) DO UPDATE "
                "SET name=EXCLUDED.name, level=EXCLUDED.level, parent=EXCLUDED.parent", r.code, r.name, r.level, r.parent)
        seen_points: list[str] = []
        for m in reg.mines:
            mine_id: int = await conn.fetchval(
                "INSERT INTO mines(code, name, kind, timezone, county, city, province, gas_class, approved_underground, "
                "shift_hours, active, updated_at, longitude, latitude, disaster_severe) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,true,$11,$12,$13,$14) "
                "ON CONFLICT (code) DO UPDATE SET name=EXCLUDED.name, kind=EXCLUDED.kind, timezone=EXCLUDED.timezone, "
                "county=EXCLUDED.county, city=EXCLUDED.city, province=EXCLUDED.province, gas_class=EXCLUDED.gas_class, "
                "approved_underground=EXCLUDED.approved_underground, shift_hours=EXCLUDED.shift_hours, active=true, "
                "updated_at=EXCLUDED.updated_at, longitude=EXCLUDED.longitude, latitude=EXCLUDED.latitude, "
                "disaster_severe=EXCLUDED.disaster_severe RETURNING id",
                m.code, m.name, m.kind, m.timezone, m.county, m.city, m.province, m.gas_class,
                m.approved_underground, m.shift_hours, now, m.longitude, m.latitude, m.severe)
            station_ids: dict[str, int] = {}
            for s in m.stations:
                station_ids[s.code] = await conn.fetchval(
                    "INSERT INTO stations(mine_id, code, location) VALUES ($1,$2,$3) ON CONFLICT (code) DO UPDATE "
                    "SET mine_id=EXCLUDED.mine_id, location=EXCLUDED.location, active=true RETURNING id",
                    mine_id, s.code, s.location)
            faces = {p.face for p in m.points if p.face} | {a.face for a in m.areas if a.face}
            face_ids: dict[str, int] = {}
            for f in sorted(faces):
                face_ids[f] = await conn.fetchval(
                    "INSERT INTO faces(mine_id, code) VALUES ($1,$2) ON CONFLICT (mine_id, code) "
                    "DO UPDATE SET code=EXCLUDED.code RETURNING id", mine_id, f)
            point_ids: dict[str, int] = {}
            for p in m.points:
                point_ids[p.code] = await conn.fetchval(
                    "INSERT INTO points(mine_id, station_id, code, sensor_type, value_type, gas, unit, range_low, "
                    "range_high, location_type, location, face_id, expected_period_s, max_gap_s, levels, slope_height_m, "
                    "production_signal, active, updated_at, defined_by) "
                    "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15::jsonb,$16,$18,true,$17,'registry') "
                    "ON CONFLICT (code) DO UPDATE SET mine_id=EXCLUDED.mine_id, station_id=EXCLUDED.station_id, "
                    "sensor_type=EXCLUDED.sensor_type, value_type=EXCLUDED.value_type, gas=EXCLUDED.gas, unit=EXCLUDED.unit, "
                    "range_low=EXCLUDED.range_low, range_high=EXCLUDED.range_high, location_type=EXCLUDED.location_type, "
                    "location=EXCLUDED.location, face_id=EXCLUDED.face_id, expected_period_s=EXCLUDED.expected_period_s, "
                    "max_gap_s=EXCLUDED.max_gap_s, levels=EXCLUDED.levels, slope_height_m=EXCLUDED.slope_height_m, "
                    "production_signal=EXCLUDED.production_signal, "
                    "active=true, updated_at=EXCLUDED.updated_at, defined_by='registry' RETURNING id",
                    mine_id, station_ids[p.station], p.code, p.sensor_type, p.value_type, p.gas, p.unit, p.range_low,
                    p.range_high, p.location_type, p.location, face_ids.get(p.face) if p.face else None,
                    p.expected_period_s, p.max_gap_s, json.dumps(p.levels.model_dump()) if p.levels else None,
                    p.slope_height_m, now, p.production_signal)
                seen_points.append(p.code)
                versions_added += await version_thresholds(
                    conn, point_ids[p.code], p.effective_thresholds(), at=p.thresholds_effective_from or now,
                    source="registry")
            for p in m.points:
                pid = point_ids[p.code]
                await conn.execute("DELETE FROM point_relations WHERE point_id = $1", pid)
                for rel in p.relations:
                    await conn.execute(
                        "INSERT INTO point_relations(point_id, kind, target_point_id, name) VALUES ($1,$2,$3,$4) "
                        "ON CONFLICT DO NOTHING", pid, rel.kind, point_ids[rel.target], rel.name)
            await conn.execute("DELETE FROM point_pairs WHERE mine_id = $1", mine_id)
            await conn.executemany(
                "INSERT INTO point_pairs(mine_id, upstream_point_id, downstream_point_id, name) VALUES ($1,$2,$3,$4)",
                [(mine_id, point_ids[pr.upstream], point_ids[pr.downstream], pr.name) for pr in m.pairs])
            for a in m.areas:
                area_id = await conn.fetchval(
                    "INSERT INTO areas(mine_id, code, name, approved, restricted, shaft, face_id) VALUES ($1,$2,$3,$4,$5,$6,$7) "
                    "ON CONFLICT (mine_id, code) DO UPDATE SET name=EXCLUDED.name, approved=EXCLUDED.approved, "
                    "restricted=EXCLUDED.restricted, shaft=EXCLUDED.shaft, face_id=EXCLUDED.face_id RETURNING id",
                    mine_id, a.code, a.name, a.approved, a.restricted, a.shaft, face_ids.get(a.face) if a.face else None)
                await conn.execute("DELETE FROM area_stations WHERE area_id = $1", area_id)
                await conn.executemany(
                    "INSERT INTO area_stations(area_id, station_id) VALUES ($1,$2)",
                    [(area_id, station_ids[s]) for s in a.stations])
            await conn.executemany(
                "INSERT INTO cards(mine_id, code, role, name, active) VALUES ($1,$2,$3,$4,true) ON CONFLICT (code) "
                "DO UPDATE SET mine_id=EXCLUDED.mine_id, role=EXCLUDED.role, name=EXCLUDED.name, active=true",
                [(mine_id, c.code, c.role, c.name) for c in m.cards])
        # Points that left the registry stay (their history must stay readable) but stop being accepted.
        # Points a mine defined itself in its upload files (CDDY) are not the registry's to retire.
        deactivated = await conn.fetchval(
            "WITH d AS (UPDATE points SET active=false, updated_at=$2 WHERE active AND defined_by = 'registry' "
            "AND NOT (code = ANY($1::text[])) "
            "RETURNING 1) SELECT count(*) FROM d", seen_points, now)
        await conn.execute(
            "INSERT INTO registry_loads(loaded_at, source, checksum, summary) VALUES ($1,$2,$3,$4::jsonb)",
            now, source, checksum, json.dumps({"mines": len(reg.mines), "versions_added": versions_added}))
    return SyncSummary(len(reg.mines), len(seen_points), sum(len(m.cards) for m in reg.mines),
                       versions_added, int(deactivated))

