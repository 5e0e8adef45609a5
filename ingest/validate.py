"""Payload validation: one MQTT message in, rows to store and rejects (with reasons) out. Pure."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Generic, TypeVar

import msgspec

from minewatch.registry.db import Lookup as Lookup  # re-exported: the validators' view of the registry

# Stable reason codes: they appear in dead letters, metrics and the API.
MALFORMED_JSON: Final = "malformed_json"
NOT_OBJECT: Final = "not_object"
MISSING_FIELD: Final = "missing_field"
BAD_TYPE: Final = "bad_type"
BAD_VALUE: Final = "bad_value"
BAD_TIME: Final = "bad_time"
NAIVE_TIME: Final = "naive_time"
FUTURE_TIME: Final = "future_time"
UNKNOWN_POINT: Final = "unknown_point"
UNKNOWN_CARD: Final = "unknown_card"
UNKNOWN_STATION: Final = "unknown_station"
MINE_MISMATCH: Final = "mine_mismatch"
UNKNOWN_TOPIC: Final = "unknown_topic"
BATCH_TOO_LARGE: Final = "batch_too_large"
DUPLICATE_CONFLICT: Final = "duplicate_conflict"
# Older than the ingest's horizon (default: the retention period): it would be dropped with its
# partition at the next retention run, and a year-0001 time must not make anyone create partitions.
TOO_OLD: Final = "too_old"
# A message bigger than the ingest's byte cap: not parsed, kept as a capped preview.
TOO_LARGE: Final = "too_large"
# An item PostgreSQL refused to store (a data error isolated by splitting the batch).
UNSTORABLE: Final = "unstorable"
# A message the validator itself could not handle: kept whole, the worker goes on.
UNPROCESSABLE: Final = "unprocessable"
# Sparkplug B (ingest/sparkplug): a payload, or one metric of it, that is not Sparkplug B protobuf.
MALFORMED_PROTOBUF: Final = "malformed_protobuf"
# A Sparkplug DATA metric named only by an alias no BIRTH seen by this ingest defined.
UNKNOWN_ALIAS: Final = "unknown_alias"
# A Sparkplug metric whose datatype cannot be a reading (String, DataSet, Template, Bytes, ...).
UNSUPPORTED_DATATYPE: Final = "unsupported_datatype"
REASONS: Final = (UNPROCESSABLE, MALFORMED_JSON, NOT_OBJECT, MISSING_FIELD, BAD_TYPE, BAD_VALUE, BAD_TIME, NAIVE_TIME,
                  FUTURE_TIME, TOO_OLD, UNKNOWN_POINT, UNKNOWN_CARD, UNKNOWN_STATION, MINE_MISMATCH, UNKNOWN_TOPIC,
                  BATCH_TOO_LARGE, TOO_LARGE, UNSTORABLE, DUPLICATE_CONFLICT, MALFORMED_PROTOBUF, UNKNOWN_ALIAS,
                  UNSUPPORTED_DATATYPE)

MAX_ITEMS: Final = 10_000  # contract: a batch holds up to 10 000 items
# Bytes of one message the ingest will parse. A contract item is ~100 bytes as JSON (the
# examples: 95-110), ~200 pretty-printed with long numbers; 10 000 of those are 2 MB, and twice
# that is the margin. The shipped Mosquitto config sets the same message_size_limit.
MAX_MESSAGE_BYTES: Final = 4 << 20
# Readings older than this are `too_old`: the default is the retention period's default
# (settings.retention_days = 730), past which retention would drop them with their partition.
DEFAULT_MAX_AGE: Final = timedelta(days=730)
# Every error a decoder can raise on hostile bytes: msgspec's own, RecursionError (nesting
# thousands deep), UnicodeDecodeError (invalid UTF-8 inside a JSON string), OverflowError.
_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError, OverflowError)
_fromtimestamp = datetime.fromtimestamp
# Epoch-ms outside year 1970..2200 is a unit mistake (seconds, µs), not a time.
_MS_MIN, _MS_MAX = 0, 7_258_118_400_000


class SafetyItem(msgspec.Struct):
    """A reading of the safety monitoring system or of a slope / tailings sensor."""

    point: str
    ts: datetime | int
    value: float
    status: int = 0


class CardItem(msgspec.Struct):
    """A personnel card read at a station."""

    card: str
    ts: datetime | int
    station: str


class StationItem(msgspec.Struct):
    """An outstation's state report (0 ok, 1 comm. lost, 2 fault, 9 unknown)."""

    station: str
    ts: datetime | int
    state: int
    power: int | None = None


Item = TypeVar("Item", SafetyItem, CardItem, StationItem)


@dataclass(frozen=True)
class Reject:
    """One rejected item (or whole message), kept whole with its reason."""

    reason: str
    detail: str
    payload: bytes


@dataclass
class Validated:
    """What one message yields: rows per table, rejects, and the time range and mines touched."""

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    min_ts: datetime | None = None
    max_ts: datetime | None = None


def _classify(exc: msgspec.ValidationError) -> str:
    msg = str(exc)
    if "missing required field" in msg:
        return MISSING_FIELD
    if "RFC3339" in msg or "datetime" in msg:
        return BAD_TIME
    if "out of range" in msg:
        return BAD_VALUE
    if "Expected `object`" in msg:
        return NOT_OBJECT
    return BAD_TYPE


def to_datetime(ts: datetime | int) -> datetime | str:
    """The item's time as an aware datetime, or a reason code."""
    if isinstance(ts, datetime):
        return ts if ts.tzinfo is not None else NAIVE_TIME
    if not _MS_MIN <= ts <= _MS_MAX:
        return BAD_TIME
    # fromtimestamp on ms/1000 is exact for whole milliseconds (rounding to µs
    # recovers them) and twice as fast as epoch + timedelta on the hot path.
    return _fromtimestamp(ts / 1000, UTC)


class _Family(Generic[Item]):
    """Decoding and checking of one topic family's items."""

    def __init__(self, item_type: type[Item],
                 check: Callable[[Item, str, datetime, Lookup], tuple[Any, ...] | tuple[str, str]]) -> None:
        self.many: msgspec.json.Decoder[Any] = msgspec.json.Decoder(list[item_type] | item_type)  # type: ignore[valid-type]
        self.one: msgspec.json.Decoder[Item] = msgspec.json.Decoder(item_type)
        self.check: Callable[[Item, str, datetime, Lookup], tuple[Any, ...] | tuple[str, str]] = check


def _check_safety(it: SafetyItem, mine: str, ts: datetime, lk: Lookup) -> tuple[Any, ...] | tuple[str, str]:
    known = lk.points.get(it.point)
    if known is None:
        return (UNKNOWN_POINT, f"point {it.point!r} is not in the registry")
    if known[1] != mine:
        return (MINE_MISMATCH, f"point {it.point!r} belongs to mine {known[1]}, topic says {mine}")
    if not math.isfinite(it.value):
        return (BAD_VALUE, "value is not a finite number")
    if not 0 <= it.status < 65_536:
        return (BAD_VALUE, f"status {it.status} is not a 16-bit set of status bits")
    return (known[0], ts, it.value, it.status)


def _check_card(it: CardItem, mine: str, ts: datetime, lk: Lookup) -> tuple[Any, ...] | tuple[str, str]:
    card = lk.cards.get(it.card)
    if card is None:
        return (UNKNOWN_CARD, f"card {it.card!r} is not in the registry")
    station = lk.stations.get(it.station)
    if station is None:
        return (UNKNOWN_STATION, f"station {it.station!r} is not in the registry")
    if card[1] != mine or station[1] != mine:
        return (MINE_MISMATCH, f"card {it.card!r} / station {it.station!r} do not belong to mine {mine}")
    return (card[0], ts, station[0], lk.mine_ids[mine])


def _check_station(it: StationItem, mine: str, ts: datetime, lk: Lookup) -> tuple[Any, ...] | tuple[str, str]:
    station = lk.stations.get(it.station)
    if station is None:
        return (UNKNOWN_STATION, f"station {it.station!r} is not in the registry")
    if station[1] != mine:
        return (MINE_MISMATCH, f"station {it.station!r} belongs to mine {station[1]}, topic says {mine}")
    if not 0 <= it.state < 256 or (it.power is not None and not 0 <= it.power < 256):
        return (BAD_VALUE, "state / power code out of range")
    return (station[0], ts, it.state, it.power)


FAMILIES: Final[dict[str, _Family[Any]]] = {
    "safety": _Family(SafetyItem, _check_safety),
    "geotech": _Family(SafetyItem, _check_safety),
    "personnel": _Family(CardItem, _check_card),
    "stations": _Family(StationItem, _check_station),
}
TABLE_OF: Final = {"safety": "readings", "geotech": "readings", "personnel": "card_reads",
                   "stations": "station_states"}


# A JSON string (escapes skipped whole) or a structural character: enough to find where the
# top-level elements of an array begin and end without decoding any of them.
_TOKENS: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.S)
_WS: Final = b" \t\r\n"


def split_top(payload: bytes) -> list[bytes] | None:
    """The exact bytes of the top-level elements of a JSON array (or `"key": value` members of an
    object), found by structure alone; None when the brackets do not balance.

    The fallback when a decoder refuses the whole document because of one element (a lone
    surrogate escape, invalid UTF-8, a number out of range): each element is then decoded, and
    refused, alone. What it returns need not be JSON; the caller decodes each element.
    """
    body = payload.strip(_WS)
    if len(body) < 2 or (body[:1], body[-1:]) not in ((b"[", b"]"), (b"{", b"}")):
        return None
    depth = 0
    start = 1
    out: list[bytes] = []
    for m in _TOKENS.finditer(body):
        c = body[m.start()]
        if c == 0x22:  # a string
            continue
        if c in (0x5B, 0x7B):  # [ {
            depth += 1
        elif c in (0x5D, 0x7D):  # ] }
            depth -= 1
            if depth == 0:
                if m.end() != len(body):
                    return None
                last = body[start:m.start()].strip(_WS)
                if last or out:
                    out.append(last)
                return out
        elif depth == 1:  # a comma between elements
            out.append(body[start:m.start()].strip(_WS))
            start = m.end()
    return None


def _raw_items(payload: bytes) -> list[bytes] | None:
    """Split a payload into its items' exact bytes; None if it is not JSON at all."""
    try:
        if payload.lstrip()[:1] == b"[":
            return [bytes(r) for r in msgspec.json.decode(payload, type=list[msgspec.Raw])]
        msgspec.json.decode(payload)
    except RecursionError:
        return None
    except _DECODE_ERRORS:
        # One element msgspec cannot even skip (a lone surrogate escape): split by structure.
        return split_top(payload) if payload.lstrip()[:1] == b"[" else None
    return [payload.strip()]


def validate(family: str, mine: str, payload: bytes, lookup: Lookup, *, now: datetime,
             future_tolerance: timedelta = timedelta(minutes=5), max_age: timedelta = DEFAULT_MAX_AGE) -> Validated:
    """Validate one message of a topic family for the mine named by its topic.

    A bad item never rejects its good neighbours. Every reject keeps the
    item's exact bytes (or the whole message when it is not JSON). Never
    raises on any payload: what cannot be understood is a reject.
    """
    fam = FAMILIES[family]
    out = Validated()
    limit = now + future_tolerance
    oldest = now - max_age
    if len(payload) > MAX_MESSAGE_BYTES:
        out.rejects.append(Reject(TOO_LARGE, f"{len(payload)} bytes; the ingest parses at most {MAX_MESSAGE_BYTES}",
                                  payload))
        return out
    try:
        decoded = fam.many.decode(payload)
        items: list[Any] = decoded if isinstance(decoded, list) else [decoded]
        raws: list[bytes] | None = None
    except _DECODE_ERRORS:
        # RecursionError: hostile nesting thousands deep; msgspec recurses per level.
        # UnicodeDecodeError: invalid UTF-8 in one item's string; its neighbours still count.
        raws = _raw_items(payload)
        if raws is None:
            out.rejects.append(Reject(MALFORMED_JSON, "payload is not valid UTF-8 JSON", payload))
            return out
        items = []
        for raw in raws:
            try:
                items.append(fam.one.decode(raw))
            except msgspec.ValidationError as exc:
                items.append(Reject(_classify(exc), str(exc), raw))
            except _DECODE_ERRORS as exc:  # invalid UTF-8 in a string, an overflowing number
                items.append(Reject(MALFORMED_JSON, f"{type(exc).__name__}: {exc}", raw))
    if len(items) > MAX_ITEMS:
        out.rejects.append(Reject(BATCH_TOO_LARGE, f"{len(items)} items; the contract allows {MAX_ITEMS}", payload))
        return out
    lo = hi = None
    for i, it in enumerate(items):
        if isinstance(it, Reject):
            out.rejects.append(it)
            continue
        try:
            ts = to_datetime(it.ts)
            if isinstance(ts, str):
                reason, detail = ts, f"ts {it.ts!r}: " + ("no UTC offset" if ts == NAIVE_TIME else "not a valid time")
            elif ts > limit:
                reason, detail = (FUTURE_TIME,
                                  f"ts {ts.isoformat()} is more than {future_tolerance} ahead of {now.isoformat()}")
            elif ts < oldest:
                reason, detail = TOO_OLD, f"ts {ts.isoformat()} is more than {max_age.days} days before {now.isoformat()}"
            else:
                row = fam.check(it, mine, ts, lookup)
                if len(row) != 2:
                    out.rows.append(row)
                    if lo is None or ts < lo:
                        lo = ts
                    if hi is None or ts > hi:
                        hi = ts
                    continue
                reason, detail = row
        except (ValueError, OverflowError, TypeError) as exc:  # e.g. an offset that overflows year 1 / 9999
            reason, detail = BAD_TIME, f"{type(exc).__name__}: {exc}"
        if raws is None:
            raws = _raw_items(payload) or [payload]
        out.rejects.append(Reject(reason, detail, raws[i] if i < len(raws) else msgspec.json.encode(it)))
    out.min_ts, out.max_ts = lo, hi
    return out


_UNIX: Final = datetime(1970, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
_isfinite = math.isfinite


def epoch_us(ts: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch, exactly."""
    return (ts - _UNIX) // _US


def readings_fast(payload: bytes, mine: str, points: Mapping[str, tuple[int, str]], limit_us: int,
                  oldest_us: int = -(2**63)) -> tuple[list[int], list[int], list[float], list[int]] | None:
    """Columns (point id, epoch µs, value, status) of a safety / geotech message whose items are all valid.

    The hot path: no datetime, tuple or Validated per item. It makes the same
    checks as `validate` (same decoder, same bounds) but does not explain a
    failure: on the first item that is not clean it returns None and the
    caller runs `validate`, which finds the reasons. `limit_us` is now + the
    future tolerance, `oldest_us` now - the maximum age, in epoch µs. Never
    raises on any payload.
    """
    if len(payload) > MAX_MESSAGE_BYTES:
        return None
    try:
        decoded = FAMILIES["safety"].many.decode(payload)
    except _DECODE_ERRORS:
        return None
    items: list[SafetyItem] = decoded if type(decoded) is list else [decoded]
    if not items or len(items) > MAX_ITEMS:
        return None
    pids: list[int] = []
    tss: list[int] = []
    values: list[float] = []
    statuses: list[int] = []
    get = points.get
    for it in items:
        known = get(it.point)
        if known is None or known[1] != mine:
            return None
        ts = it.ts
        if type(ts) is int:
            if not _MS_MIN <= ts <= _MS_MAX:
                return None
            us = ts * 1000
        elif isinstance(ts, datetime) and ts.tzinfo is not None:
            try:
                us = (ts - _UNIX) // _US
            except OverflowError:  # year 1 with a positive offset: validate explains
                return None
        else:
            return None
        value = it.value
        status = it.status
        if us > limit_us or us < oldest_us or not _isfinite(value) or not 0 <= status < 65_536:
            return None
        pids.append(known[0])
        tss.append(us)
        values.append(value)
        statuses.append(status)
    return pids, tss, values, statuses


def parse_topic(topic: str, prefix: str = "") -> tuple[str, str] | None:
    """`{prefix}mines/{mine}/{family}` -> (mine, family); None for anything else."""
    if prefix:
        if not topic.startswith(prefix):
            return None
        topic = topic[len(prefix):]
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "mines" or not parts[1] or parts[2] not in FAMILIES:
        return None
    return parts[1], parts[2]
