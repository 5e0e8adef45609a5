"""A tiny protobuf encoder for tests: Sparkplug B payloads built by hand, field by field.

Written apart from ingest/sparkplug (which only decodes, and encodes one NCMD) so that a bug in
the decoder cannot hide behind the same bug in the encoder the tests use.
"""

from __future__ import annotations

import struct
from typing import Any


def varint(n: int) -> bytes:
    """A protobuf varint (n taken modulo 2^64, as protobuf writes negative int64)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vfield(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def lfield(number: int, body: bytes | str) -> bytes:
    raw = body.encode() if isinstance(body, str) else body
    return key(number, 2) + varint(len(raw)) + raw


def f32(number: int, value: float) -> bytes:
    return key(number, 5) + struct.pack("<f", value)


def f64(number: int, value: float) -> bytes:
    return key(number, 1) + struct.pack("<d", value)


# Sparkplug datatypes used by the tests
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = 1, 2, 3, 4, 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, DATASET, BYTES, TEMPLATE = 9, 10, 11, 12, 13, 16, 17, 19


def metric(name: str | None = None, *, alias: int | None = None, ts: int | None = None, datatype: int | None = None,
           int_value: int | None = None, long_value: int | None = None, float_value: float | None = None,
           double_value: float | None = None, bool_value: bool | None = None, string_value: str | None = None,
           bytes_value: bytes | None = None, is_null: bool = False, properties: dict[str, int | str] | None = None,
           extra: bytes = b"") -> bytes:
    """A `Payload.Metric`'s bytes (not yet wrapped in the payload's field 2)."""
    out = b""
    if name is not None:
        out += lfield(1, name)
    if alias is not None:
        out += vfield(2, alias)
    if ts is not None:
        out += vfield(3, ts)
    if datatype is not None:
        out += vfield(4, datatype)
    if is_null:
        out += vfield(7, 1)
    if properties:
        keys = b"".join(lfield(1, k) for k in properties)
        vals = b""
        for v in properties.values():
            if isinstance(v, str):
                vals += lfield(2, vfield(1, STRING) + lfield(8, v))
            else:
                vals += lfield(2, vfield(1, UINT32) + vfield(3, v))
        out += lfield(9, keys + vals)
    if int_value is not None:
        out += vfield(10, int_value)
    if long_value is not None:
        out += vfield(11, long_value)
    if float_value is not None:
        out += f32(12, float_value)
    if double_value is not None:
        out += f64(13, double_value)
    if bool_value is not None:
        out += vfield(14, int(bool_value))
    if string_value is not None:
        out += lfield(15, string_value)
    if bytes_value is not None:
        out += lfield(16, bytes_value)
    return out + extra


def payload(metrics: list[bytes], *, ts: int | None = None, seq: int | None = None, extra: bytes = b"") -> bytes:
    """A `Payload`'s bytes: timestamp, metrics, seq."""
    out = b""
    if ts is not None:
        out += vfield(1, ts)
    for m in metrics:
        out += lfield(2, m)
    if seq is not None:
        out += vfield(3, seq)
    return out + extra


def birth(ts: int, named: dict[str, tuple[int, int, Any]], *, seq: int = 0) -> bytes:
    """An NBIRTH / DBIRTH: bdSeq, Node Control/Rebirth, then name -> (alias, datatype, value) metrics."""
    ms = [metric("bdSeq", ts=ts, datatype=UINT64, long_value=0),
          metric("Node Control/Rebirth", ts=ts, datatype=BOOLEAN, bool_value=False)]
    for name, (alias, datatype, value) in named.items():
        ms.append(metric(name, alias=alias, ts=ts, datatype=datatype, **_value_kw(datatype, value)))
    return payload(ms, ts=ts, seq=seq)


def _value_kw(datatype: int, value: Any) -> dict[str, Any]:
    if datatype == FLOAT:
        return {"float_value": value}
    if datatype == DOUBLE:
        return {"double_value": value}
    if datatype == BOOLEAN:
        return {"bool_value": value}
    if datatype in (INT64, UINT64):
        return {"long_value": value}
    return {"int_value": value}
