"""Dead letters and log lines stay storable and single-line whatever bytes arrived (no IO)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from ingest.store import DeadLetter
from minewatch.text import MAX_PAYLOAD_BYTES, log_safe, storable_payload


def test_a_newline_in_a_topic_cannot_forge_a_log_line() -> None:
    topic = "t/mines/M1\n2026-12-07 INFO ingest: all good\r\x1b[2K/safety"
    safe = log_safe(topic)
    assert "\n" not in safe and "\r" not in safe and "\x1b" not in safe
    assert safe.startswith("t/mines/M1\\x0a2026")


@given(st.binary(max_size=2_000) | st.text(max_size=500))
def test_every_dead_letter_row_is_storable(payload: bytes | str) -> None:
    row = DeadLetter(datetime.now(UTC), "mqtt", "a\x00b\ud800", None, 2**40, "M\x00" * 2_000, "r", "d\x00",
                     payload).row()
    for value in row:
        if isinstance(value, str):
            assert "\x00" not in value
            value.encode("utf-8")  # no lone surrogate: asyncpg can encode it
    assert row[4] is None  # a line number that does not fit an integer column is dropped
    assert len(row[5]) <= 201


def test_a_huge_payload_is_capped_and_its_size_kept() -> None:
    text, raw, size = storable_payload(b"\xff" + b"x" * (3 * MAX_PAYLOAD_BYTES))
    assert size == 3 * MAX_PAYLOAD_BYTES + 1
    assert raw is not None and len(raw) <= MAX_PAYLOAD_BYTES
    assert len(text.encode()) <= MAX_PAYLOAD_BYTES + 3
