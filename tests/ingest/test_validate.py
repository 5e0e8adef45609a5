"""Unit tests of payload validation: every reason, byte-exact rejects, good neighbours kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingest import validate as v

NOW = datetime(2026, 11, 23, 0, 15, tzinfo=UTC)
LK = v.Lookup(
    points={"P1": (1, "M1"), "P2": (2, "M2")},
    cards={"C1": (10, "M1"), "C2": (11, "M2")},
    stations={"S1": (20, "M1"), "S2": (21, "M2")},
    mine_ids={"M1": 100, "M2": 200},
)


def run(family: str, payload: bytes, mine: str = "M1") -> v.Validated:
    return v.validate(family, mine, payload, LK, now=NOW)


def test_single_object_and_batch_are_both_accepted() -> None:
    one = run("safety", b'{"point": "P1", "ts": "2026-11-23T08:15:00.250+08:00", "value": 0.42}')
    assert one.rows == [(1, datetime(2026, 11, 23, 0, 15, 0, 250000, tzinfo=UTC), 0.42, 0)]
    many = run("safety", b'[{"point": "P1", "ts": 1795392900250, "value": 1, "status": 4},'
                         b' {"point": "P1", "ts": 1795392930250, "value": 2}]')
    assert [r[2:] for r in many.rows] == [(1.0, 4), (2.0, 0)]
    assert many.rows[0][1] == datetime(2026, 11, 23, 0, 15, 0, 250000, tzinfo=UTC)
    assert many.min_ts == many.rows[0][1] and many.max_ts == many.rows[1][1]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (b'{"point": "P1", "value": 1}', v.MISSING_FIELD),
        (b'{"point": 7, "ts": 1795392900250, "value": 1}', v.BAD_TYPE),
        (b'{"point": "P1", "ts": 1795392900250, "value": "high"}', v.BAD_TYPE),
        (b'{"point": "P1", "ts": 1795392900250, "value": true}', v.BAD_TYPE),
        (b'{"point": "P1", "ts": "yesterday", "value": 1}', v.BAD_TIME),
        (b'{"point": "P1", "ts": -5, "value": 1}', v.BAD_TIME),
        (b'{"point": "P1", "ts": 1795392900250000, "value": 1}', v.BAD_TIME),
        (b'{"point": "P1", "ts": "2026-11-23T08:15:00", "value": 1}', v.NAIVE_TIME),
        (b'{"point": "P1", "ts": "2026-11-23T08:21:00+08:00", "value": 1}', v.FUTURE_TIME),
        (b'{"point": "PX", "ts": 1795392900250, "value": 1}', v.UNKNOWN_POINT),
        (b'{"point": "P2", "ts": 1795392900250, "value": 1}', v.MINE_MISMATCH),
        (b'{"point": "P1", "ts": 1795392900250, "value": 1e999}', v.BAD_VALUE),
        (b'{"point": "P1", "ts": 1795392900250, "value": 1, "status": -1}', v.BAD_VALUE),
        (b'42', v.NOT_OBJECT),
    ],
)
def test_each_reason_keeps_the_item_bytes_and_its_neighbours(item: bytes, reason: str) -> None:
    good = b'{"point": "P1", "ts": 1795392900250, "value": 0.3}'
    payload = b"[" + good + b" , " + item + b"," + good.replace(b"900250", b"930250") + b"]"
    out = run("safety", payload)
    assert [r.reason for r in out.rejects] == [reason]
    assert out.rejects[0].payload == item
    assert len(out.rows) == 2


def test_malformed_json_rejects_the_whole_message_verbatim() -> None:
    payload = b'[{"point": "P1", "ts": 1795392900250, "value": 0.3'
    out = run("safety", payload)
    assert out.rows == [] and [(r.reason, r.payload) for r in out.rejects] == [(v.MALFORMED_JSON, payload)]
    assert run("safety", b"\xff\xfe garbage").rejects[0].reason == v.MALFORMED_JSON


def test_future_tolerance_is_five_minutes_by_server_clock() -> None:
    at_limit = int((NOW + timedelta(minutes=5)).timestamp() * 1000)
    over = at_limit + 1
    out = run("safety", b'[{"point":"P1","ts":%d,"value":1},{"point":"P1","ts":%d,"value":1}]' % (at_limit, over))
    assert len(out.rows) == 1 and [r.reason for r in out.rejects] == [v.FUTURE_TIME]


def test_old_data_is_accepted_within_the_horizon() -> None:
    # contract: late and back-filled data are normal; the horizon is the retention period
    out = run("safety", b'{"point":"P1","ts":"2025-01-01T00:00:00+08:00","value":1}')
    assert len(out.rows) == 1
    out = v.validate("safety", "M1", b'{"point":"P1","ts":"2020-01-01T00:00:00+08:00","value":1}', LK, now=NOW,
                     max_age=timedelta(days=3650))
    assert len(out.rows) == 1


@pytest.mark.parametrize("ts", [b"0", b"1", b'"0001-01-01T00:00:00Z"', b'"0001-01-01T00:00:00+05:00"',
                                b'"1970-01-01T00:00:00.001+00:00"', b'"2024-11-22T00:14:59Z"'])
def test_readings_older_than_the_horizon_are_too_old(ts: bytes) -> None:
    payload = b'[{"point":"P1","ts":' + ts + b',"value":1}, {"point":"P1","ts":1795392900250,"value":2}]'
    out = run("safety", payload)
    assert [r.reason for r in out.rejects] == [v.TOO_OLD]
    assert out.rejects[0].payload == b'{"point":"P1","ts":' + ts + b',"value":1}'
    assert [r[2] for r in out.rows] == [2.0]
    assert out.min_ts == out.max_ts == out.rows[0][1]  # the old item widens no range
    limit = v.epoch_us(NOW + timedelta(minutes=5))
    assert v.readings_fast(payload, "M1", LK.points, limit, v.epoch_us(NOW - v.DEFAULT_MAX_AGE)) is None


def test_invalid_utf8_in_one_item_rejects_that_item_only() -> None:
    payload = (b'[{"point":"P1","ts":1795392900250,"value":1}, {"point":"P\xff\xfe","ts":1795392900250,"value":1},'
               b' {"point":"P1","ts":1795392930250,"value":2}]')
    assert v.readings_fast(payload, "M1", LK.points, 2**62) is None
    out = run("safety", payload)
    assert [r[2] for r in out.rows] == [1.0, 2.0]
    assert [(r.reason, r.payload) for r in out.rejects] == [
        (v.MALFORMED_JSON, b'{"point":"P\xff\xfe","ts":1795392900250,"value":1}')]
    whole = run("safety", b'{"point":"\xff","ts":1,"value":1}')
    assert [r.reason for r in whole.rejects] == [v.MALFORMED_JSON]


def test_a_message_over_the_byte_cap_is_too_large_and_not_parsed() -> None:
    payload = b"[" + b" " * v.MAX_MESSAGE_BYTES + b"]"
    out = run("safety", payload)
    assert [r.reason for r in out.rejects] == [v.TOO_LARGE]
    assert v.readings_fast(payload, "M1", LK.points, 2**62) is None


def test_personnel_and_station_items() -> None:
    ok = run("personnel", b'{"card": "C1", "ts": 1795392900250, "station": "S1"}')
    assert ok.rows == [(10, datetime(2026, 11, 23, 0, 15, 0, 250000, tzinfo=UTC), 20, 100)]
    assert run("personnel", b'{"card": "CX", "ts": 1795392900250, "station": "S1"}').rejects[0].reason == v.UNKNOWN_CARD
    assert run("personnel", b'{"card": "C1", "ts": 1795392900250, "station": "SX"}').rejects[0].reason == v.UNKNOWN_STATION
    assert run("personnel", b'{"card": "C1", "ts": 1795392900250, "station": "S2"}').rejects[0].reason == v.MINE_MISMATCH
    st = run("stations", b'{"station": "S1", "ts": "2026-11-23T08:15:00+08:00", "state": 1}')
    assert st.rows == [(20, datetime(2026, 11, 23, 0, 15, tzinfo=UTC), 1, None)]
    assert run("stations", b'{"station": "S2", "ts": 1795392900250, "state": 0}').rejects[0].reason == v.MINE_MISMATCH


def test_batches_over_the_contract_limit_are_dead_lettered_whole() -> None:
    item = b'{"point":"P1","ts":1795392900250,"value":1}'
    payload = b"[" + b",".join([item] * (v.MAX_ITEMS + 1)) + b"]"
    out = run("safety", payload)
    assert out.rows == [] and out.rejects[0].reason == v.BATCH_TOO_LARGE and out.rejects[0].payload == payload


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("mines/140100000001/safety", ("140100000001", "safety")), ("p/mines/M/personnel", None),
     ("mines/M/unknown", None), ("mines//safety", None), ("mines/M/safety/extra", None)],
)
def test_parse_topic(topic: str, expected: tuple[str, str] | None) -> None:
    assert v.parse_topic(topic) == expected
    assert v.parse_topic("p/" + topic, "p/") == expected


def test_hostile_nesting_is_malformed_not_a_crash() -> None:
    payload = b"[" * 100_000 + b"]" * 100_000
    out = run("safety", payload)
    assert out.rows == [] and len(out.rejects) == 1
    assert out.rejects[0].reason in (v.MALFORMED_JSON, v.NOT_OBJECT) and out.rejects[0].payload == payload
