"""Conversions between aware datetimes, int64 nanoseconds UTC and a mine's local time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


@lru_cache(maxsize=64)
def zone(name: str = DEFAULT_ZONE) -> ZoneInfo:
    """The IANA zone by name, cached (ZoneInfo construction reads tzdata)."""
    return ZoneInfo(name)


def to_ns(when: datetime) -> int:
    """An aware datetime as int64 nanoseconds since the epoch (microsecond precision)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: every time in Minewatch carries an offset")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def from_ns(ns: int) -> datetime:
    """int64 nanoseconds since the epoch as an aware UTC datetime (truncated to µs)."""
    return _EPOCH + timedelta(microseconds=ns // 1_000)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def local(when: datetime, tz: str = DEFAULT_ZONE) -> datetime:
    """The same instant in the mine's zone."""
    return when.astimezone(zone(tz))


def parse_local_wall(text: str, tz: str = DEFAULT_ZONE) -> datetime:
    """`yyyy-MM-dd HH:mm:ss` local wall clock (the upload-file form) as aware UTC."""
    naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    return naive.replace(tzinfo=zone(tz)).astimezone(UTC)


def rfc3339(when: datetime) -> str:
    """RFC 3339 UTC with a `Z`, the form every API response uses."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
