"""Wall-clock conversion: the cached fast path agrees with zoneinfo's plain conversion."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.files.wallclock import WallClock
from tests.ingest.files.helpers import utc


def reference(text: str, tz: ZoneInfo) -> datetime:
    """The plain-loop reference: strptime, attach the zone (fold=0), convert."""
    naive = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    return naive.replace(tzinfo=tz).astimezone(UTC)


def test_shanghai_is_eight_hours_ahead() -> None:
    wall = WallClock(ZoneInfo("Asia/Shanghai"))
    assert wall.to_utc("2024-05-14 13:35:11") == utc("2024-05-14 05:35:11")
    assert wall.to_utc("2024-01-01 07:59:59") == utc("2023-12-31 23:59:59")
    assert wall.to_utc("2024-05-14T13:35:11") == utc("2024-05-14 05:35:11")
    assert wall.to_utc("2024-05-14 13:35:11").tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2024-05-14",
        "2024-05-14 13:35",
        "2024/05/14 13:35:11",
        "2024-05-14 13:35:11.5",
        "2024-05-14 13:35:11+08",
        "2024-5-14 13:35:11 ",
        "2024-05-14 24:00:00",
        "2024-02-30 00:00:00",
        "２０２４-05-14 13:35:11",
        "2024-05-14_13:35:11",
    ],
)
def test_rejected_shapes(text: str) -> None:
    with pytest.raises(ValueError):
        WallClock(ZoneInfo("Asia/Shanghai")).to_utc(text)


# Zones with DST, a half-hour DST shift (Lord Howe) and a 45-minute offset (Chatham).
ZONES = [
    "Asia/Shanghai",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    when=st.datetimes(min_value=datetime(1985, 1, 1), max_value=datetime(2040, 12, 31)),
)
def test_cached_conversion_agrees_with_reference(zone: str, when: datetime) -> None:
    tz = ZoneInfo(zone)
    text = when.strftime("%Y-%m-%d %H:%M:%S")
    wall = WallClock(tz)
    # Warm the hour cache with the hour's start and end first, then ask for the instant.
    hour = when.strftime("%Y-%m-%d %H")
    wall.to_utc(f"{hour}:00:00")
    wall.to_utc(f"{hour}:59:59")
    assert wall.to_utc(text) == reference(text, tz)


@pytest.mark.parametrize(
    ("zone", "texts"),
    [
        # Berlin spring forward 2024-03-31 02:00 -> 03:00; fall back 2024-10-27 03:00 -> 02:00
        (
            "Europe/Berlin",
            [
                "2024-03-31 01:59:59",
                "2024-03-31 02:30:00",
                "2024-03-31 03:00:00",
                "2024-10-27 02:30:00",
                "2024-10-27 03:00:00",
            ],
        ),
        # Lord Howe shifts by 30 minutes at 02:00 local
        (
            "Australia/Lord_Howe",
            [
                "2024-04-07 01:45:00",
                "2024-04-07 01:30:00",
                "2024-10-06 02:15:00",
                "2024-10-06 02:45:00",
            ],
        ),
    ],
)
def test_transitions_in_one_converter(zone: str, texts: list[str]) -> None:
    tz = ZoneInfo(zone)
    wall = WallClock(tz)
    for text in texts:
        assert wall.to_utc(text) == reference(text, tz), text


def test_to_local_text_is_the_inverse() -> None:
    wall = WallClock(ZoneInfo("Asia/Shanghai"))
    assert wall.to_local_text(utc("2024-05-14 05:35:11")) == "2024-05-14 13:35:11"
    with pytest.raises(ValueError):
        wall.to_local_text(datetime(2024, 5, 14))


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    whens=st.lists(
        st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2025, 12, 31)),
        min_size=1,
        max_size=50,
    ),
)
def test_one_converter_across_many_hours_agrees_with_reference(zone: str, whens: list[datetime]) -> None:
    tz = ZoneInfo(zone)
    wall = WallClock(tz)
    for when in whens:
        text = when.strftime("%Y-%m-%d %H:%M:%S")
        assert wall.to_utc(text) == reference(text, tz), text
