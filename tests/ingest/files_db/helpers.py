"""Builders for hand-written upload files, and database helpers, shared by the file-source tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from ingest.files.ledger import FileIngester
from ingest.files.source import FileSourceSettings, FileSummary
from minewatch.clock import FrozenClock

MINE = "140100000001"  # a coal mine of the sample registry
P_T0 = f"{MINE}_01MN0001_T0003"  # methane, upper corner (T0): alarm 1.0, power-off 1.5
P_T1 = f"{MINE}_01MN0001_T0004"  # methane, face (T1)
P_FEED = f"{MINE}_01KG1011_T0001"  # feed sensor (switch)
S_FACE = f"{MINE}S0002"
S_SHAFT = f"{MINE}S0001"
# The clock of these tests: 14:00 local on the day of the hand-written files.
NOW = datetime(2024, 5, 14, 6, 0, tzinfo=UTC)

_names = itertools.count(1)


def utc(text: str) -> datetime:
    """A UTC literal `yyyy-mm-dd hh:mm:ss`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def header(mine: str = MINE, upload: str = "2024-05-14 13:35:11") -> str:
    return f"{mine};测试煤矿;KJ95X;煤矿安全监控系统;测试公司;2026-12-31;{upload}"


def body(*records: str, mine: str = MINE, newline: str = "\n", end: str = "||",
         upload: str = "2024-05-14 13:35:11") -> bytes:
    """A UTF-8 file: the header, each record ended by `~` and `newline`, then `end`."""
    return "".join(r + "~" + newline for r in (header(mine, upload), *records)).encode() + end.encode()


def name(kind: str, mine: str = MINE, stamp: str | None = None) -> str:
    """A file name; without a stamp, a unique one on 2024-05-14 so tests sharing a database do not clash."""
    if stamp is None:
        n = next(_names)
        stamp = f"20240514{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}"
    return f"{mine}_{kind}_{stamp}.txt"


def ingester(dsn: str, clock: FrozenClock | None = None, **settings: Any) -> FileIngester:
    return FileIngester(dsn, clock=clock or FrozenClock(NOW), settings=FileSourceSettings(**settings))


async def ingest(dsn: str, file: str, data: bytes, clock: FrozenClock | None = None, **settings: Any) -> FileSummary:
    ing = ingester(dsn, clock, **settings)
    try:
        return await ing.ingest(file, data)
    finally:
        await ing.close()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def execute(dsn: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def new_mine(dsn: str, code: str) -> int:
    """Register a bare mine (no points or stations): what a CDDY / FZDY then fills in."""
    rows = await fetch(dsn, "INSERT INTO mines (code, name, kind, county, city, province) "
                            "VALUES ($1, $2, 'coal', '140121', '140100', '140000') RETURNING id", code, f"矿 {code}")
    return int(rows[0]["id"])


async def readings(dsn: str, codes: Sequence[str] | None = None) -> set[tuple[str, datetime, float, int]]:
    """(point, ts, value, status) of the stored readings, of `codes` or of every point."""
    rows = await fetch(dsn, "SELECT p.code, r.ts, r.value, r.status FROM readings r JOIN points p ON p.id = r.point_id "
                            "WHERE $1::text[] IS NULL OR p.code = ANY($1::text[])", list(codes) if codes else None)
    return {(r["code"], r["ts"], r["value"], r["status"]) for r in rows}


async def dead_letters(dsn: str, file: str) -> list[tuple[int | None, str]]:
    """(line, reason) of the file's dead letters, by line."""
    rows = await fetch(dsn, "SELECT line, reason FROM dead_letters WHERE file = $1 ORDER BY line NULLS FIRST, id", file)
    return [(r["line"], r["reason"]) for r in rows]
