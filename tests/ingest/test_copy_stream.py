"""The binary COPY streams the MQTT fast path builds from column batches (no server needed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from ingest.store import _COPY_HEADER, _COPY_TRAILER, _PG_EPOCH_US, _READING_ROW, ReadingColumns

MIDNIGHT = datetime(2026, 11, 24, tzinfo=UTC)


def _us(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _rows(stream: bytes) -> np.ndarray:
    assert stream.startswith(_COPY_HEADER) and stream.endswith(_COPY_TRAILER)
    body = stream[len(_COPY_HEADER):-len(_COPY_TRAILER)]
    assert len(body) % _READING_ROW.itemsize == 0
    return np.frombuffer(body, dtype=_READING_ROW)


def _batch() -> ReadingColumns:
    """Time-major across a UTC midnight: points 7, 3, 5 every 20 s from 23:59:20 to 00:00:40."""
    c = ReadingColumns()
    for k in range(5):
        t = MIDNIGHT + timedelta(seconds=20 * (k - 2))
        for p in (7, 3, 5):
            c.point_id.append(p)
            c.ts_us.append(_us(t))
            c.value.append(p + k / 10)
            c.status.append(40_000 if p == 5 else 0)
    return c


def test_parts_split_by_utc_day_each_in_key_order_with_the_box() -> None:
    parts, box = _batch().copy_parts()
    assert [d for d, _ in parts] == [date(2026, 11, 23), date(2026, 11, 24)]
    for (day, stream), n in zip(parts, (6, 9), strict=True):
        rows = _rows(stream)
        assert len(rows) == n
        keys = list(zip(rows["point_id"].tolist(), rows["ts"].tolist(), strict=True))
        assert keys == sorted(keys)
        days = {(datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(t))).date() for t in rows["ts"]}
        assert days == {day}
    assert box == (MIDNIGHT - timedelta(seconds=40), MIDNIGHT + timedelta(seconds=40), 3, 7)


def test_copy_data_is_one_stream_holding_every_row() -> None:
    c = _batch()
    rows = _rows(c.copy_data())
    assert len(rows) == 15
    got = sorted(zip(rows["point_id"].tolist(), (rows["ts"] + _PG_EPOCH_US).tolist(), rows["value"].tolist(),
                     rows["status"].tolist(), strict=True))
    want = sorted(zip(c.point_id, c.ts_us, c.value, [s - 65_536 if s >= 32_768 else s for s in c.status],
                      strict=True))
    assert got == want
