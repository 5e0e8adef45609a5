"""Shared helpers of the upload-file tests: sample files and UTC literals."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples"
MINE = "610821003303"
HEADER = f"{MINE};陕西某某矿业有限公司某某煤矿;KJ95X;煤矿安全监控系统;天地(常州)自动化股份有限公司;2026-12-31;2024-05-14 13:35:11"


def utc(text: str) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` read as UTC (expected values are written in UTC: local - 8 h)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def read_sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def body(*records: str, newline: str = "\n") -> bytes:
    """A UTF-8 file of the standard header and `records`, each ended by `~` and `newline`."""
    return "".join(r + "~" + newline for r in (HEADER, *records)).encode() + b"||"
