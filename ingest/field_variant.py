"""Adapter for the provincial MQTT variant: topic `/{mine}/{system}`, payload `{"timestamp", ...}`.

Payload: `{"timestamp": <epoch ms>, "systemcode": "01", "values": [{"code": ..., "v": ...}]}`.

Pure: topic and payload bytes in, canonical safety items (contract.md) and reasons out. The
consumer validates the canonical items like any others (registry, mine ownership, future times).

Error reasons (first element of each `AdaptedMessage.errors` pair) reuse the MQTT validator's
codes (`ingest.validate`) so dead letters and metrics speak one vocabulary; whole-message errors
carry the payload as raw, item errors the item re-encoded as JSON:

- `malformed_json`: the payload is not JSON (or not UTF-8, or nested beyond reason); also one
  item of `values` holding invalid UTF-8 (its neighbours still count)
- `not_object`: the payload, or an element of `values`, is not an object
- `missing_field`: no `timestamp`, `systemcode` or `values`; an item without `code` or `v`
- `bad_time`: `timestamp` is not non-negative integer epoch milliseconds
- `bad_type`: `systemcode` not a string / integer, `values` not an array, `code` not a
  string, `v` neither a number nor a numeric string
- `bad_value`: a blank `code`, or a `v` that is not finite
- `systemcode_mismatch`: `systemcode` differs from the topic's system code
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from ingest.validate import BAD_TIME, BAD_TYPE, BAD_VALUE, MALFORMED_JSON, MISSING_FIELD, NOT_OBJECT, split_top

FAMILY = "safety"
SYSTEMCODE_MISMATCH = "systemcode_mismatch"

ERROR_REASONS: tuple[str, ...] = (
    MALFORMED_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    BAD_TIME,
    BAD_TYPE,
    BAD_VALUE,
    SYSTEMCODE_MISMATCH,
)

_json = msgspec.json.Decoder()
_key = re.compile(rb'\s*("(?:[^"\\]|\\.)*")\s*:', re.S)
# What a decoder raises on hostile bytes: UnicodeDecodeError is a ValueError.
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError, OverflowError)
_encode = msgspec.json.Encoder().encode


class AdaptedMessage(msgspec.Struct, frozen=True):
    """Canonical items of one message and the reasons anything in it was refused."""

    mine_code: str
    family: str
    items: list[dict[str, Any]]
    errors: list[tuple[str, bytes]]


def parse_topic(topic: str) -> tuple[str, str] | None:
    """(mine code, system code) of `/{mine}/{system}`, or None if the topic is not this variant.

    The system code must be two digits (`01` safety monitoring, `02` gas drainage): that is
    what tells this variant apart from other topics with two levels.
    """
    if not topic.startswith("/"):
        return None
    parts = topic[1:].split("/")
    if len(parts) != 2:
        return None
    mine, system = parts
    if not mine or mine.strip() != mine or "+" in mine or "#" in mine:
        return None
    if len(system) != 2 or not (system.isascii() and system.isdigit()):
        return None
    return mine, system


def adapt(topic: str, payload: bytes) -> AdaptedMessage | None:
    """Canonical items `{"point", "ts", "value", "status": 0}` for a variant message.

    None when the topic is not `/{mine}/{system}` (the message belongs to another adapter).
    A bad item is reported alone and does not reject its good neighbours.
    """
    parsed = parse_topic(topic)
    if parsed is None:
        return None
    mine, system = parsed

    def whole(reason: str) -> AdaptedMessage:
        return AdaptedMessage(mine, FAMILY, [], [(reason, payload)])

    raw_values: list[bytes] | None = None
    try:
        body = _json.decode(payload)
    except (msgspec.DecodeError, ValueError):
        # One element a decoder refuses (invalid UTF-8, a lone surrogate escape) must cost that
        # element only: split the envelope and `values` by structure and decode piece by piece.
        split = _split_envelope(payload)
        if split is None:
            return whole(MALFORMED_JSON)
        body, raw_values = split
    except _DECODE_ERRORS:
        # RecursionError: hostile nesting thousands deep (msgspec recurses per level).
        return whole(MALFORMED_JSON)
    if not isinstance(body, dict):
        return whole(NOT_OBJECT)
    if "timestamp" not in body or "systemcode" not in body or "values" not in body:
        return whole(MISSING_FIELD)
    ts = _epoch_ms(body["timestamp"])
    if ts is None:
        return whole(BAD_TIME)
    code = _system_code(body["systemcode"])
    if code is None:
        return whole(BAD_TYPE)
    if code != system:
        return whole(SYSTEMCODE_MISMATCH)
    values = body["values"]
    if not isinstance(values, list):
        return whole(BAD_TYPE)

    items: list[dict[str, Any]] = []
    errors: list[tuple[str, bytes]] = []
    for i, raw in enumerate(values):
        if raw_values is not None:  # the slow path after invalid UTF-8: decode item by item
            try:
                raw = _json.decode(raw_values[i])
            except _DECODE_ERRORS:
                errors.append((MALFORMED_JSON, raw_values[i]))
                continue
        reason, point, value = _item(raw)
        if reason is None:
            items.append({"point": point, "ts": ts, "value": value, "status": 0})
        else:
            errors.append((reason, _encode(raw)))
    return AdaptedMessage(mine, FAMILY, items, errors)


def _split_envelope(payload: bytes) -> tuple[dict[str, Any], list[bytes] | None] | None:
    """The envelope decoded with `values` left as its items' bytes; None if what is wrong is
    outside `values` (or the brackets do not balance), which refuses the whole message."""
    if payload.lstrip()[:1] != b"{":
        return None
    members = split_top(payload)
    if members is None:
        return None
    body: dict[str, Any] = {}
    raw_values: list[bytes] | None = None
    try:
        for member in members:
            m = _key.match(member)
            if m is None:
                return None
            key = _json.decode(m.group(1))
            value = member[m.end():]
            if key == "values" and value.lstrip()[:1] == b"[":
                raw_values = split_top(value)
                if raw_values is None:
                    return None
                body[key] = raw_values
            else:
                body[key] = _json.decode(value)
                raw_values = None if key == "values" else raw_values
    except _DECODE_ERRORS:
        return None
    return body, raw_values


def _epoch_ms(value: object) -> int | None:
    # bool is an int subclass and never a time; an integral float (some encoders write
    # 1.7e12) is accepted because it carries the same instant.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _system_code(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99:
        return f"{value:02d}"  # a producer that wrote the code as the number 1
    return None


def _item(raw: object) -> tuple[str | None, str, int | float]:
    # (error reason or None, point code, value)
    if not isinstance(raw, dict):
        return NOT_OBJECT, "", 0
    if "code" not in raw or "v" not in raw:
        return MISSING_FIELD, "", 0
    code = raw["code"]
    if not isinstance(code, str):
        return BAD_TYPE, "", 0
    point = code.strip()
    if not point:
        return BAD_VALUE, "", 0
    value = raw["v"]
    if isinstance(value, bool):
        return None, point, int(value)  # switch points written as true / false
    if isinstance(value, int):
        return None, point, value
    if isinstance(value, str):
        # Some gateways quote numbers ("0.42"); any other string is not a reading.
        try:
            value = float(value)
        except ValueError:
            return BAD_TYPE, point, 0
    if not isinstance(value, float):
        return BAD_TYPE, point, 0
    return (None, point, value) if math.isfinite(value) else (BAD_VALUE, point, 0)
