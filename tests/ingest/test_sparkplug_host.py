"""Sparkplug B topics, BIRTH alias tables and the mapping of metrics onto canonical items (no IO)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import validate as v
from ingest.sparkplug.host import SparkplugHost, SparkplugTopic, parse_topic, rebirth_request
from ingest.sparkplug.wire import Metric, decode_payload
from tests.ingest.sparkplug_pb import (
    BOOLEAN,
    BYTES,
    DATASET,
    DATETIME,
    DOUBLE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    TEMPLATE,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    birth,
    lfield,
    metric,
    payload,
)

MINE = "140100000001"
P1 = f"{MINE}_01MN0001_T0101"
P2 = f"{MINE}_01MN0001_T0102"
TS = 1_795_392_900_250


def item(point: str, value: float | int, ts: int = TS, status: int = 0) -> dict[str, object]:
    return {"point": point, "ts": ts, "value": value, "status": status}


@pytest.mark.parametrize(("topic", "want"), [
    ("spBv1.0/G/NBIRTH/N", SparkplugTopic("G", "NBIRTH", "N")),
    ("spBv1.0/G/NDATA/N", SparkplugTopic("G", "NDATA", "N")),
    ("spBv1.0/G/DDATA/N/D", SparkplugTopic("G", "DDATA", "N", "D")),
    ("spBv1.0/G/DCMD/N/D", SparkplugTopic("G", "DCMD", "N", "D")),
    ("spBv1.0/STATE/host-1", SparkplugTopic("", "STATE", "host-1")),
    ("mines/1/safety", None),
    ("spBv1.1/G/NDATA/N", None),
])
def test_topics(topic: str, want: SparkplugTopic | None) -> None:
    assert parse_topic(topic) == want


@pytest.mark.parametrize(("topic", "why"), [
    ("spBv1.0/G/NDATA", "levels"),
    ("spBv1.0/G/NDATA/N/D", "no device level"),
    ("spBv1.0/G/DDATA/N", "{device}"),
    ("spBv1.0/G/XDATA/N", "is not one of"),
    ("spBv1.0/G/ndata/N", "is not one of"),
    ("spBv1.0//NDATA/N", "empty"),
    ("spBv1.0/G/DDATA/N/ D", "spaces"),
    ("spBv1.0/STATE/", "host id"),
])
def test_malformed_topics_say_why(topic: str, why: str) -> None:
    got = parse_topic(topic)
    assert isinstance(got, str) and why in got


def test_nbirth_then_ndata_by_alias() -> None:
    host = SparkplugHost()
    b = host.adapt(f"spBv1.0/G/NBIRTH/{MINE}", birth(TS, {P1: (1, FLOAT, 0.5), P2: (2, BOOLEAN, True)}))
    assert b is not None and b.mine_code == MINE and b.errors == [] and b.skipped == 2  # bdSeq, Node Control/Rebirth
    assert b.items == [item(P1, 0.5), item(P2, 1)]
    d = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(alias=1, float_value=0.25), metric(alias=2, bool_value=False)],
                                                      ts=TS + 1000, seq=1))
    assert d is not None and d.errors == [] and d.rebirth is None
    assert d.items == [item(P1, 0.25, TS + 1000), item(P2, 0, TS + 1000)]


def test_the_metric_timestamp_wins_over_the_payload_timestamp() -> None:
    host = SparkplugHost()
    d = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(P1, ts=TS - 5, double_value=1.0)], ts=TS))
    assert d is not None and d.items == [item(P1, 1.0, TS - 5)]


def test_device_aliases_are_their_own_table_and_nbirth_forgets_devices() -> None:
    host = SparkplugHost()
    host.adapt(f"spBv1.0/G/NBIRTH/{MINE}", birth(TS, {P1: (1, DOUBLE, 1.0)}))
    host.adapt(f"spBv1.0/G/DBIRTH/{MINE}/dev", birth(TS, {P2: (1, DOUBLE, 2.0)}))
    dd = host.adapt(f"spBv1.0/G/DDATA/{MINE}/dev", payload([metric(alias=1, double_value=3.0)], ts=TS + 1))
    nd = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(alias=1, double_value=4.0)], ts=TS + 1))
    assert dd is not None and dd.items == [item(P2, 3.0, TS + 1)]
    assert nd is not None and nd.items == [item(P1, 4.0, TS + 1)]
    # the same node in another group is another node
    other = host.adapt(f"spBv1.0/H/NDATA/{MINE}", payload([metric(alias=1, double_value=4.0)], ts=TS + 1))
    assert other is not None and [e[0] for e in other.errors] == [v.UNKNOWN_ALIAS] and other.rebirth == ("H", MINE)
    host.adapt(f"spBv1.0/G/NBIRTH/{MINE}", birth(TS + 2, {P1: (7, DOUBLE, 1.0)}))
    assert host.table(("G", MINE, "dev")) is None
    gone = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(alias=1, double_value=5.0)], ts=TS + 3))
    assert gone is not None and gone.items == [] and [e[0] for e in gone.errors] == [v.UNKNOWN_ALIAS]


def test_unknown_alias_is_refused_with_a_rebirth_request() -> None:
    host = SparkplugHost()
    d = host.adapt(f"spBv1.0/G/DDATA/{MINE}/dev", payload([metric(alias=9, ts=TS, double_value=1.5),
                                                            metric(P1, ts=TS, double_value=2.5)]))
    assert d is not None and d.rebirth == ("G", MINE)
    assert d.items == [item(P1, 2.5)]  # a named neighbour is still a reading
    [(reason, detail, raw)] = d.errors
    assert reason == v.UNKNOWN_ALIAS and "alias 9" in detail and f"G/{MINE}/dev" in detail and "rebirth" in detail
    assert json.loads(raw) == {"name": None, "alias": 9, "ts": TS, "datatype": None, "kind": "double", "value": 1.5}


def test_rebirth_requests_are_rate_limited_per_node() -> None:
    host = SparkplugHost(rebirth_interval=timedelta(seconds=30))
    now = datetime(2026, 12, 7, tzinfo=UTC)
    assert host.rebirth_due("G", "N", now)
    assert not host.rebirth_due("G", "N", now + timedelta(seconds=29))
    assert host.rebirth_due("G", "M", now)
    assert host.rebirth_due("G", "N", now + timedelta(seconds=30))


def test_rebirth_request_is_an_ncmd_node_control_rebirth_true() -> None:
    topic, raw = rebirth_request("G", MINE, TS)
    assert topic == f"spBv1.0/G/NCMD/{MINE}"
    p = decode_payload(raw)
    [m] = p.metrics
    assert p.timestamp == TS and isinstance(m, Metric)
    assert (m.name, m.datatype, m.kind, m.value) == ("Node Control/Rebirth", BOOLEAN, "boolean", True)


@pytest.mark.parametrize(("datatype", "kw", "want"), [
    (INT8, {"int_value": 0xFFFF_FFFF}, -1),
    (INT8, {"int_value": 255}, -1),
    (INT16, {"int_value": 0xFFFF_8000}, -32768),
    (INT32, {"int_value": 0x8000_0000}, -(2**31)),
    (INT64, {"long_value": -7}, -7),
    (UINT8, {"int_value": 255}, 255),
    (UINT16, {"int_value": 65535}, 65535),
    (UINT32, {"int_value": 2**32 - 1}, 2**32 - 1),
    (UINT32, {"long_value": 7}, 7),  # Tahu's Java client writes UInt32 into long_value
    (UINT64, {"long_value": 2**64 - 1}, 2**64 - 1),
    (FLOAT, {"float_value": 0.5}, 0.5),
    (DOUBLE, {"double_value": 0.1}, 0.1),
    (DOUBLE, {"float_value": 0.5}, 0.5),
    (BOOLEAN, {"bool_value": True}, 1),
])
def test_numeric_datatypes_are_readings(datatype: int, kw: dict[str, object], want: float) -> None:
    d = SparkplugHost().adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(P1, ts=TS, datatype=datatype, **kw)]))  # type: ignore[arg-type]
    assert d is not None and d.errors == [] and d.items == [item(P1, want)]


@pytest.mark.parametrize(("kw", "reason", "why"), [
    ({"datatype": STRING, "string_value": "0.5"}, v.UNSUPPORTED_DATATYPE, "String (12)"),
    ({"datatype": DATETIME, "long_value": TS}, v.UNSUPPORTED_DATATYPE, "DateTime (13)"),
    ({"datatype": DATASET, "extra": lfield(17, b"\x08\x01")}, v.UNSUPPORTED_DATATYPE, "DataSet (16)"),
    ({"datatype": BYTES, "bytes_value": b"\x00"}, v.UNSUPPORTED_DATATYPE, "Bytes (17)"),
    ({"datatype": TEMPLATE, "extra": lfield(18, b"")}, v.UNSUPPORTED_DATATYPE, "Template (19)"),
    ({"datatype": 0, "string_value": "x"}, v.UNSUPPORTED_DATATYPE, "Unknown (0)"),
    ({"datatype": 99, "int_value": 1}, v.UNSUPPORTED_DATATYPE, "(99)"),
    ({"string_value": "x"}, v.UNSUPPORTED_DATATYPE, "cannot be a reading"),  # no datatype, a string
    ({"datatype": FLOAT, "int_value": 1}, v.BAD_TYPE, "Float (9) but a int value"),
    ({"datatype": INT32, "double_value": 1.0}, v.BAD_TYPE, "Int32 (3) but a double value"),
    ({"datatype": BOOLEAN, "int_value": 1}, v.BAD_TYPE, "Boolean"),
    ({"datatype": INT8, "int_value": 300}, v.BAD_VALUE, "not a Int8"),
    ({"datatype": UINT8, "int_value": 256}, v.BAD_VALUE, "not a UInt8"),
    ({"datatype": DOUBLE, "double_value": float("nan")}, v.BAD_VALUE, "finite"),
    ({"datatype": FLOAT, "float_value": float("inf")}, v.BAD_VALUE, "finite"),
    ({"datatype": DOUBLE, "is_null": True}, v.BAD_VALUE, "is_null"),
    ({"datatype": DOUBLE}, v.MISSING_FIELD, "no value"),
    ({"datatype": DOUBLE, "double_value": 1.0, "properties": {"status": "bad"}}, v.BAD_TYPE, "'status'"),
])
def test_a_metric_that_cannot_be_a_reading_is_refused_alone(kw: dict[str, object], reason: str, why: str) -> None:
    d = SparkplugHost().adapt(f"spBv1.0/G/NDATA/{MINE}",
                              payload([metric(P2, **kw), metric(P1, double_value=1.0)], ts=TS))  # type: ignore[arg-type]
    assert d is not None and d.items == [item(P1, 1.0)]
    [(got, detail, raw)] = d.errors
    assert got == reason and why in detail, detail
    assert json.loads(raw)["name"] == P2


def test_status_comes_from_the_status_property() -> None:
    d = SparkplugHost().adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(P1, double_value=1.0, properties={"status": 32})],
                                                                  ts=TS))
    assert d is not None and d.items == [item(P1, 1.0, status=32)]


def test_datatype_from_birth_when_data_omits_it() -> None:
    host = SparkplugHost()
    host.adapt(f"spBv1.0/G/NBIRTH/{MINE}", birth(TS, {P1: (1, INT8, 1)}))
    d = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(alias=1, int_value=0xFFFF_FFFE),
                                                       metric(P1, ts=TS + 2, int_value=0xFF)], ts=TS + 1))
    assert d is not None and d.items == [item(P1, -2, TS + 1), item(P1, -1, TS + 2)]


def test_missing_timestamp_name_and_alias() -> None:
    host = SparkplugHost()
    d = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(P1, double_value=1.0), metric(ts=TS, double_value=1.0)]))
    assert d is not None and d.items == []
    assert [(r, "timestamp" in t or "neither a name" in t) for r, t, _ in d.errors] == [(v.MISSING_FIELD, True)] * 2
    b = host.adapt(f"spBv1.0/G/NBIRTH/{MINE}", payload([metric(alias=3, ts=TS, double_value=1.0)], ts=TS))
    assert b is not None and [(r, t) for r, t, _ in b.errors] == [(v.MISSING_FIELD, "a BIRTH metric must have a name")]
    assert b.rebirth is None


@pytest.mark.parametrize("raw", [b"\x08", b"\x12\x7f", b"\x12" + b"\xff" * 11, b"{\"json\": 1}", b"\x0b"])
def test_malformed_payload_is_refused_whole(raw: bytes) -> None:
    d = SparkplugHost().adapt(f"spBv1.0/G/NDATA/{MINE}", raw)
    assert d is not None and d.items == []
    [(reason, detail, kept)] = d.errors
    assert reason == v.MALFORMED_PROTOBUF and "not a Sparkplug B payload" in detail and kept == raw


def test_empty_data_payload_yields_nothing_and_a_malformed_metric_costs_itself() -> None:
    host = SparkplugHost()
    empty = host.adapt(f"spBv1.0/G/NDATA/{MINE}", b"")
    assert empty is not None and empty.items == [] and empty.errors == []
    d = host.adapt(f"spBv1.0/G/NDATA/{MINE}", payload([b"\x0a\x09ab", metric(P1, double_value=1.0)], ts=TS))
    assert d is not None and d.items == [item(P1, 1.0)]
    assert [(r, kept) for r, _, kept in d.errors] == [(v.MALFORMED_PROTOBUF, b"\x0a\x09ab")]


def test_deaths_commands_and_state_record_nothing() -> None:
    host = SparkplugHost()
    for topic in (f"spBv1.0/G/NDEATH/{MINE}", f"spBv1.0/G/DDEATH/{MINE}/d", f"spBv1.0/G/NCMD/{MINE}",
                  f"spBv1.0/G/DCMD/{MINE}/d", "spBv1.0/STATE/host"):
        d = host.adapt(topic, b"\xff garbage is not even decoded")
        assert d is not None and d.items == [] and d.errors == [], topic


def test_unknown_message_type_is_an_unknown_topic() -> None:
    d = SparkplugHost().adapt(f"spBv1.0/G/NDATAX/{MINE}", b"")
    assert d is not None and [(r, "NDATAX" in t) for r, t, _ in d.errors] == [(v.UNKNOWN_TOPIC, True)]


def test_too_many_metrics_is_a_batch_too_large() -> None:
    d = SparkplugHost().adapt(f"spBv1.0/G/NDATA/{MINE}", payload([metric(P1, double_value=1.0)] * 10_001, ts=TS))
    assert d is not None and [r for r, _, _ in d.errors] == [v.BATCH_TOO_LARGE]


def test_alias_tables_are_bounded() -> None:
    host = SparkplugHost(max_aliases=50)
    for n in range(10):
        host.adapt(f"spBv1.0/G/NBIRTH/N{n}", birth(TS, {f"P{i}": (i, DOUBLE, 1.0) for i in range(10)}))
    assert host.table(("G", "N9", None)) is not None
    assert host.table(("G", "N0", None)) is None
    assert sum(host.table(("G", f"N{n}", None)) is not None for n in range(10)) == 2  # 20 entries each


@given(st.binary(max_size=200), st.sampled_from(["NBIRTH", "NDATA", "DBIRTH", "DDATA"]))
def test_adapt_never_raises(raw: bytes, kind: str) -> None:
    topic = f"spBv1.0/G/{kind}/{MINE}" + ("/d" if kind.startswith("D") else "")
    d = SparkplugHost().adapt(topic, raw)
    assert d is not None
    for it in d.items:
        assert set(it) == {"point", "ts", "value", "status"}
