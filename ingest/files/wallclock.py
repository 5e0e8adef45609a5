"""Local wall-clock strings of the upload files (`yyyy-MM-dd HH:mm:ss`) converted to aware UTC."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# A file repeats the same few timestamps thousands of times (a CDSS snapshot carries one data
# time for every point), so a per-text cache turns most conversions into one dict lookup.
# The bound only keeps a pathological file (every row a different second) from growing it
# without limit; clearing is cheaper than an LRU and the hit rate recovers at once.
_MAX_CACHED_TEXTS = 200_000


class WallClock:
    """Converts one zone's wall-clock strings to aware UTC datetimes, caching what it can.

    Offsets are cached per local (date, hour) only when the offset at the start and at the end
    of that hour agree, so zones with DST (or half-hour transitions) still convert exactly as
    `naive.replace(tzinfo=tz).astimezone(UTC)` would (fold=0 for ambiguous or skipped times).
    """

    __slots__ = ("_by_hour", "known", "tz")

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        # Texts already converted; callers may read it (the CDSS loop inlines the lookup).
        self.known: dict[str, datetime] = {}
        self._by_hour: dict[str, timedelta] = {}

    def to_utc(self, text: str) -> datetime:
        """`yyyy-MM-dd HH:mm:ss` (a `T` separator is tolerated) as aware UTC; ValueError if not."""
        hit = self.known.get(text)
        if hit is not None:
            return hit
        if len(text) != 19 or text[4] != "-" or text[7] != "-" or text[10] not in " T" or text[13] != ":" or text[16] != ":":
            raise ValueError(f"not yyyy-MM-dd HH:mm:ss: {text!r}")
        # fromisoformat is C and, given the shape checked above, accepts only ASCII digits here.
        # Reading the wall clock as if it were UTC and subtracting the offset is ~5x faster
        # than building a naive datetime and calling .replace(tzinfo=UTC) on the result.
        wall = datetime.fromisoformat(text + "+00:00")
        offset = self._by_hour.get(text[:13])
        if offset is None:
            offset = self._offset(text[:13], wall.replace(tzinfo=None))
        try:
            utc = wall - offset
        except OverflowError:  # year 1 east of UTC, year 9999 west of it
            raise ValueError(f"{text!r} is outside the representable times") from None
        if len(self.known) >= _MAX_CACHED_TEXTS:
            self.known.clear()
        self.known[text] = utc
        return utc

    def _offset(self, hour_key: str, naive: datetime) -> timedelta:
        start = naive.replace(minute=0, second=0)
        first = self.tz.utcoffset(start)
        last = self.tz.utcoffset(start.replace(minute=59, second=59))
        if first is None or last is None:  # pragma: no cover - ZoneInfo always answers
            raise ValueError(f"zone {self.tz.key} has no offset for {naive}")
        if first == last:
            self._by_hour[hour_key] = first
            return first
        # A transition inside this hour: no shortcut, ask the zone for this very second.
        exact = self.tz.utcoffset(naive)
        assert exact is not None
        return exact

    def to_local_text(self, when: datetime) -> str:
        """The inverse for writers: an aware datetime as this zone's `yyyy-MM-dd HH:mm:ss`."""
        if when.tzinfo is None:
            raise ValueError("naive datetime: upload-file times are written from aware ones")
        return when.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")
