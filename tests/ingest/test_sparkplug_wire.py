"""The Sparkplug B protobuf decoder on hand-built bytes: every field it reads, and hostile bytes."""

from __future__ import annotations

import contextlib
import math
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.sparkplug.wire import BadMetric, Metric, TooManyMetrics, WireError, decode_payload, read_varint, signed
from tests.ingest.sparkplug_pb import (
    BOOLEAN,
    DOUBLE,
    FLOAT,
    INT8,
    UINT64,
    f32,
    key,
    lfield,
    metric,
    payload,
    varint,
    vfield,
)

TS = 1_795_392_900_250


def only(buf: bytes) -> Metric:
    p = decode_payload(buf)
    [m] = p.metrics
    assert isinstance(m, Metric), m
    return m


def test_payload_fields() -> None:
    p = decode_payload(payload([metric("A", alias=3, ts=TS + 1, datatype=FLOAT, float_value=0.5)], ts=TS, seq=17))
    assert p.timestamp == TS and p.seq == 17
    [m] = p.metrics
    assert isinstance(m, Metric)
    assert (m.name, m.alias, m.timestamp, m.datatype, m.kind, m.value) == ("A", 3, TS + 1, FLOAT, "float", 0.5)
    assert not m.is_null and m.properties == {}


@pytest.mark.parametrize(("kw", "kind", "value"), [
    ({"int_value": 4_294_967_295}, "int", 4_294_967_295),
    ({"long_value": 2**64 - 1}, "long", 2**64 - 1),
    ({"float_value": 1.25}, "float", 1.25),
    ({"double_value": -2.5e300}, "double", -2.5e300),
    ({"bool_value": True}, "boolean", True),
    ({"bool_value": False}, "boolean", False),
    ({"string_value": "瓦斯"}, "string", "瓦斯"),
    ({"bytes_value": b"\x00\xff"}, "bytes", b"\x00\xff"),
])
def test_every_scalar_value_kind(kw: dict[str, object], kind: str, value: object) -> None:
    m = only(payload([metric("x", **kw)]))  # type: ignore[arg-type]
    assert (m.kind, m.value) == (kind, value)


def test_non_finite_floats_decode_as_such() -> None:
    assert math.isnan(only(payload([metric("x", float_value=math.nan)])).value)  # type: ignore[arg-type]
    assert only(payload([metric("x", double_value=math.inf)])).value == math.inf


def test_oneof_last_value_wins_and_unknown_fields_are_skipped() -> None:
    raw = metric("x", int_value=1, double_value=2.0, extra=vfield(99, 5) + lfield(100, b"ext") + f32(101, 1.0))
    m = only(payload([raw], extra=lfield(6, b"an extension") + lfield(4, "uuid") + lfield(5, b"body")))
    assert (m.kind, m.value) == ("double", 2.0)
    assert m.raw == raw


def test_flags_datatype_and_properties() -> None:
    m = only(payload([metric("x", is_null=True, datatype=DOUBLE, properties={"status": 3, "unit": "%CH4"},
                             extra=vfield(5, 1) + vfield(6, 1) + lfield(8, lfield(2, "text/plain")))]))
    assert m.is_null and m.is_historical and m.is_transient and m.datatype == DOUBLE
    assert m.properties == {"status": ("int", 3), "unit": ("string", "%CH4")}


def test_nested_property_sets_are_framed_not_decoded() -> None:
    nested = lfield(9, lfield(1, "deep") + lfield(2, b"\xff\xff\xff"))  # garbage inside, never read
    props = lfield(1, "meta") + lfield(2, vfield(1, 20) + nested)
    m = only(payload([metric("x", int_value=1, extra=lfield(9, props))]))
    assert m.properties == {"meta": ("propertyset", None)}


def test_empty_payload_is_an_empty_message() -> None:
    p = decode_payload(b"")
    assert p.timestamp is None and p.metrics == [] and p.seq is None


@pytest.mark.parametrize(("buf", "why"), [
    (b"\x08", "truncated varint"),                             # timestamp key, no value
    (b"\x08\xff\xff", "truncated varint"),                      # varint cut in the middle
    (b"\x08" + b"\xff" * 9 + b"\x02", "overflows 64 bits"),    # 10th byte > 1
    (b"\x08" + b"\xff" * 11, "overflows 64 bits"),             # longer than 10 bytes
    (b"\x12\x05ab", "runs past the end"),                       # metric of length 5, 2 bytes left
    (b"\x12" + varint(2**62) + b"x", "runs past the end"),      # huge length
    (b"\x12" + varint(2**64 - 1), "runs past the end"),         # huge length, nothing after
    (b"\x0a\x01x", "wire type length-delimited"),               # timestamp as bytes: wrong wire type
    (b"\x10\x01", "metric (field 2) has wire type varint"),      # metrics as a varint
    (key(3, 5) + b"\x00\x00\x00\x00", "wire type 32-bit"),      # seq as fixed32
    (key(7, 3) + b"", "wire type 3"),                           # start group
    (key(7, 4), "wire type 4"),
    (key(7, 6), "wire type 6"),
    (b"\x00\x01", "field number 0"),
    (key(9, 1) + b"\x00\x00", "8-byte value truncated"),
    (key(9, 5) + b"\x00", "4-byte value truncated"),
    (b"\xff", "truncated varint"),
])
def test_malformed_framing_raises_wire_error(buf: bytes, why: str) -> None:
    with pytest.raises(WireError, match=re.escape(why)):
        decode_payload(buf)


@pytest.mark.parametrize(("inner", "why"), [
    (lfield(1, b"\xff\xfe"), "name is not UTF-8"),
    (vfield(1, 5), "name (field 1) has wire type varint"),
    (lfield(3, b"x"), "timestamp (field 3) has wire type length-delimited"),
    (key(12, 1) + struct.pack("<d", 1.0), "float value (field 12) has wire type 64-bit"),
    (lfield(13, b"12345678"), "double value (field 13) has wire type length-delimited"),
    (key(15, 0) + b"\x01", "string value (field 15) has wire type varint"),
    (lfield(15, b"\xc3"), "string value is not UTF-8"),
    (b"\x0a\x09abc", "runs past the end"),                               # nested: name longer than the metric
    (lfield(9, lfield(1, "a") + lfield(1, "b") + lfield(2, b"")), "2 keys and 1 values"),
    (lfield(9, lfield(2, key(3, 2) + b"\x01x")), "int value (field 3) has wire type length-delimited"),
    (lfield(9, b"\x0a\x80"), "truncated varint"),                        # nested garbage in properties
    (b"\x90", "truncated varint"),
])
def test_a_malformed_metric_is_refused_alone(inner: bytes, why: str) -> None:
    good = metric("ok", int_value=1)
    p = decode_payload(payload([good, inner, good], ts=TS))
    assert p.timestamp == TS
    first, bad, last = p.metrics
    assert isinstance(first, Metric) and isinstance(last, Metric)
    assert isinstance(bad, BadMetric) and why in bad.detail and bad.raw == inner


def test_metric_count_is_bounded() -> None:
    buf = payload([b""] * 11)
    assert len(decode_payload(buf, max_metrics=11).metrics) == 11
    with pytest.raises(TooManyMetrics):
        decode_payload(buf, max_metrics=10)
    with pytest.raises(TooManyMetrics):
        decode_payload(b"\x12\x00" * 10_001)


def test_read_varint_boundaries() -> None:
    for n in (0, 1, 127, 128, 300, 2**32 - 1, 2**63, 2**64 - 1):
        assert read_varint(varint(n), 0, len(varint(n))) == (n, len(varint(n)))


@pytest.mark.parametrize(("raw", "bits", "want"), [
    (255, 8, -1), (0xFFFF_FFFF, 8, -1), (2**64 - 1, 8, -1), (127, 8, 127), (128, 8, -128), (300, 8, None),
    (0xFFFF_FF7F, 8, None), (0x8000, 16, -32768), (0xFFFF_FFFF, 32, -1), (2**64 - 2, 32, -2), (2**63, 64, -(2**63)),
    (5, 64, 5),
])
def test_signed_integers_from_every_encoder(raw: int, bits: int, want: int | None) -> None:
    assert signed(raw, bits) == want


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_wire_error_only(buf: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_payload(buf)


@given(st.lists(st.tuples(st.text(max_size=20), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.one_of(st.integers(0, 2**64 - 1), st.floats(allow_nan=False), st.booleans())),
                max_size=20),
       st.integers(0, 2**64 - 1))
def test_what_is_encoded_is_decoded(ms: list[tuple[str, int, int, int | float | bool]], ts: int) -> None:
    raws = []
    for name, alias, mts, value in ms:
        if isinstance(value, bool):
            raws.append(metric(name, alias=alias, ts=mts, datatype=BOOLEAN, bool_value=value))
        elif isinstance(value, int):
            raws.append(metric(name, alias=alias, ts=mts, datatype=UINT64, long_value=value))
        else:
            raws.append(metric(name, alias=alias, ts=mts, datatype=DOUBLE, double_value=value))
    p = decode_payload(payload(raws, ts=ts))
    assert p.timestamp == ts
    got = [(m.name, m.alias, m.timestamp, m.value) for m in p.metrics if isinstance(m, Metric)]
    assert got == [(n, a, t, v) for n, a, t, v in ms]


@given(st.binary(max_size=60), st.integers(0, 40))
def test_garbage_inside_a_well_framed_metric_costs_that_metric_only(garbage: bytes, cut: int) -> None:
    good = metric("p", datatype=INT8, int_value=255)
    p = decode_payload(payload([good, garbage, good]))
    assert len(p.metrics) == 3
    assert p.metrics[0] == p.metrics[2] and isinstance(p.metrics[0], Metric)
    # a truncated payload either still frames (fewer metrics) or is refused whole, never anything else
    whole = payload([good, garbage, good])
    with contextlib.suppress(WireError):
        decode_payload(whole[:max(0, len(whole) - cut)])
