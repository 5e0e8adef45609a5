"""Sparkplug B topics and BIRTH alias tables mapped onto canonical readings, as a host application.

Topic: `spBv1.0/{group}/{type}/{edge node}[/{device}]` (or `spBv1.0/STATE/{host}`).
Mapping (docs/ingest.md, "Sparkplug B"): the edge node id is the mine code; a metric's name is
the point code; its timestamp (else the payload's) in epoch ms is `ts`; its value is `value`;
its `status` property, if any, is `status` (else 0). BIRTH messages define aliases per
(group, edge node, device); DATA messages may name metrics by alias alone.

Pure but for the alias tables this object keeps: topic and payload bytes in, canonical safety
items (validated by the service like `mines/{mine}/safety` items) and reasons out. Reasons reuse
the MQTT validator's codes (`ingest.validate`) where they mean the same thing.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from ingest.validate import (
    BAD_TYPE,
    BAD_VALUE,
    BATCH_TOO_LARGE,
    MALFORMED_PROTOBUF,
    MISSING_FIELD,
    UNKNOWN_ALIAS,
    UNKNOWN_TOPIC,
    UNSUPPORTED_DATATYPE,
)

from .wire import BadMetric, Metric, TooManyMetrics, WireError, decode_payload, signed

NAMESPACE: Final = "spBv1.0"
FAMILY: Final = "safety"
NODE_TYPES: Final = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_TYPES: Final = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
# Messages that carry readings; the others (deaths, commands, host STATE) record nothing.
READING_TYPES: Final = frozenset({"NBIRTH", "DBIRTH", "NDATA", "DDATA"})

DATATYPES: Final = {0: "Unknown", 1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16",
                    7: "UInt32", 8: "UInt64", 9: "Float", 10: "Double", 11: "Boolean", 12: "String",
                    13: "DateTime", 14: "Text", 15: "UUID", 16: "DataSet", 17: "Bytes", 18: "File",
                    19: "Template", 20: "PropertySet", 21: "PropertySetList"}
BOOLEAN: Final = 11
# Integer datatypes: (bits, signed). Values arrive in int_value (uint32) or long_value (uint64);
# Tahu's Java client writes UInt32 into long_value, so either field is taken for any of them.
_INTEGERS: Final = {1: (8, True), 2: (16, True), 3: (32, True), 4: (64, True),
                    5: (8, False), 6: (16, False), 7: (32, False), 8: (64, False)}
_FLOATS: Final = frozenset({9, 10})
# The datatype a metric without one (DATA messages should omit it) and without a BIRTH that
# named it is read as, from the value field present: unsigned for the integer fields.
_INFERRED: Final = {"int": 7, "long": 8, "float": 9, "double": 10, "boolean": BOOLEAN}

# Metrics the Sparkplug specification reserves for the protocol itself, not readings: the
# birth/death sequence, the node / device control commands and the informational properties
# Tahu's clients publish in every BIRTH. Skipped (counted), never dead letters.
CONTROL_NAMES: Final = frozenset({"bdSeq"})
CONTROL_PREFIXES: Final = ("Node Control/", "Device Control/", "Node Info/", "Device Info/", "Properties/")
REBIRTH_METRIC: Final = "Node Control/Rebirth"
# The metric property that carries the contract's point-status bits.
STATUS_PROPERTY: Final = "status"

# Alias entries kept in all (group, node, device) tables together. A BIRTH holds at most
# MAX_METRICS (10 000) metrics; a million entries (~100 MB at worst) is 100 fully loaded edge
# nodes' devices, and bounds what hostile BIRTHs on made-up topics can make us hold. The
# tables least recently born are forgotten first (their next DATA asks for a rebirth).
MAX_ALIASES: Final = 1_000_000
# A node is asked to rebirth at most this often: a backlog of thousands of DATA messages with
# unknown aliases (after an ingest restart) must cost one NCMD, not thousands.
REBIRTH_INTERVAL: Final = timedelta(seconds=30)
_REBIRTH_MEMORY: Final = 10_000

_encode = msgspec.json.Encoder().encode

TableKey = tuple[str, str, str | None]  # (group, edge node, device or None for the node itself)


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    """A parsed Sparkplug B topic (`device` is None for node messages and STATE)."""

    group: str
    kind: str
    node: str
    device: str | None = None


@dataclass(frozen=True)
class SparkplugMessage:
    """What one Sparkplug message yields: canonical items, refusals, and whether to ask for a rebirth.

    `errors` holds (reason, detail, dead-letter payload): the whole message's bytes for a
    message-level refusal, the metric as JSON for a metric's.
    """

    kind: str
    mine_code: str | None
    items: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str, bytes]] = field(default_factory=list)
    rebirth: tuple[str, str] | None = None  # (group, edge node)
    skipped: int = 0  # protocol control metrics (bdSeq, Node Control/*, ...)


def parse_topic(topic: str) -> SparkplugTopic | str | None:
    """The topic parsed; a string saying why when it is under `spBv1.0/` but malformed; None if
    it is not a Sparkplug B topic at all."""
    parts = topic.split("/")
    if parts[0] != NAMESPACE:
        return None
    if len(parts) == 3 and parts[1] == "STATE":
        return SparkplugTopic("", "STATE", parts[2]) if parts[2] else "STATE topic without a host id"
    if len(parts) < 4:
        return f"topic has {len(parts)} levels; Sparkplug B is spBv1.0/{{group}}/{{type}}/{{edge node}}[/{{device}}]"
    group, kind, node = parts[1], parts[2], parts[3]
    if kind in NODE_TYPES:
        if len(parts) != 4:
            return f"{kind} topic must be spBv1.0/{{group}}/{kind}/{{edge node}}, with no device level"
    elif kind in DEVICE_TYPES:
        if len(parts) != 5:
            return f"{kind} topic must be spBv1.0/{{group}}/{kind}/{{edge node}}/{{device}}"
    else:
        return (f"message type {kind[:40]!r} is not one of "
                f"{', '.join(sorted(NODE_TYPES | DEVICE_TYPES))} (or STATE)")
    levels = parts[1:]
    if any(not p or p.strip() != p for p in levels):
        return "a level of the topic is empty or has surrounding spaces"
    return SparkplugTopic(group, kind, node, parts[4] if len(parts) == 5 else None)


def reading_value(datatype: int, kind: str | None, value: object) -> tuple[str | None, str, float | int]:
    """(reason or None, detail, value) of a metric's value as a reading of `datatype`."""
    name = DATATYPES.get(datatype, "unknown")
    if datatype in _INTEGERS:
        if kind not in ("int", "long") or not isinstance(value, int) or isinstance(value, bool):
            return BAD_TYPE, f"datatype {name} ({datatype}) but a {kind} value", 0
        bits, is_signed = _INTEGERS[datatype]
        if is_signed:
            v = signed(value, bits)
            if v is None:
                return BAD_VALUE, f"{value} is not a {name}", 0
            return None, "", v
        if value >= 1 << bits:
            return BAD_VALUE, f"{value} is not a {name}", 0
        return None, "", value
    if datatype in _FLOATS:
        if kind not in ("float", "double") or not isinstance(value, float):
            return BAD_TYPE, f"datatype {name} ({datatype}) but a {kind} value", 0
        if not math.isfinite(value):
            return BAD_VALUE, "value is not a finite number", 0
        return None, "", value
    if datatype == BOOLEAN:
        if kind != "boolean" or not isinstance(value, bool):
            return BAD_TYPE, f"datatype Boolean (11) but a {kind} value", 0
        return None, "", int(value)  # switch points: 0 / 1
    return UNSUPPORTED_DATATYPE, f"datatype {name} ({datatype}) cannot be a reading", 0


def _status(metric: Metric) -> tuple[str | None, str, int]:
    prop = metric.properties.get(STATUS_PROPERTY)
    if prop is None:
        return None, "", 0
    kind, value = prop
    if kind not in ("int", "long") or not isinstance(value, int) or isinstance(value, bool):
        return BAD_TYPE, f"property {STATUS_PROPERTY!r} is a {kind} value, not an integer", 0
    return None, "", value  # validate checks it is 16 bits


def _describe(metric: Metric, name: str | None, ts: int | None) -> bytes:
    """A metric as JSON for its dead letter: readable through the API, and enough to replay it."""
    value: object = metric.value
    if isinstance(value, bytes):
        value = f"<{len(value)} bytes of {metric.kind}>"
    elif isinstance(value, float) and not math.isfinite(value):
        value = repr(value)
    out: dict[str, object] = {"name": name, "alias": metric.alias, "ts": ts, "datatype": metric.datatype,
                              "kind": metric.kind, "value": value}
    if metric.is_null:
        out["is_null"] = True
    if metric.properties:
        out["properties"] = {k: v[1] if not isinstance(v[1], bytes) else None for k, v in metric.properties.items()}
    return _encode(out)


class _Table:
    """One (group, edge node, device)'s BIRTH: alias -> name, and name -> datatype."""

    __slots__ = ("aliases", "types")

    def __init__(self) -> None:
        self.aliases: dict[int, str] = {}
        self.types: dict[str, int] = {}


class SparkplugHost:
    """The host application's memory of edge nodes: alias tables from BIRTH messages, and when
    each node was last asked to rebirth. One per ingest process; not thread-safe (the writer's)."""

    def __init__(self, *, max_aliases: int = MAX_ALIASES, rebirth_interval: timedelta = REBIRTH_INTERVAL) -> None:
        self.max_aliases = max_aliases
        self.rebirth_interval = rebirth_interval
        self._tables: OrderedDict[TableKey, _Table] = OrderedDict()
        self._entries = 0
        self._asked: dict[tuple[str, str], datetime] = {}

    def table(self, key: TableKey) -> _Table | None:
        """The alias table of (group, node, device), if a BIRTH defined one."""
        return self._tables.get(key)

    def _forget(self, key: TableKey) -> None:
        old = self._tables.pop(key, None)
        if old is not None:
            self._entries -= len(old.aliases) + len(old.types)

    def _born(self, t: SparkplugTopic, metrics: list[Metric | BadMetric]) -> _Table:
        """Replace the table a BIRTH defines; an NBIRTH also forgets the node's devices (they
        must be born again after their node, per the specification)."""
        key: TableKey = (t.group, t.node, t.device)
        if t.device is None:
            for k in [k for k in self._tables if k[0] == t.group and k[1] == t.node]:
                self._forget(k)
        else:
            self._forget(key)
        table = _Table()
        for m in metrics:
            if isinstance(m, BadMetric) or m.name is None:
                continue
            if m.alias is not None:
                table.aliases[m.alias] = m.name
            if m.datatype:
                table.types[m.name] = m.datatype
        self._tables[key] = table
        self._entries += len(table.aliases) + len(table.types)
        while self._entries > self.max_aliases and len(self._tables) > 1:
            self._forget(next(iter(self._tables)))
        return table

    def rebirth_due(self, group: str, node: str, now: datetime) -> bool:
        """Whether to ask (group, node) for a rebirth now (at most once per `rebirth_interval`);
        records the request when it is due."""
        last = self._asked.get((group, node))
        if last is not None and now - last < self.rebirth_interval:
            return False
        if len(self._asked) >= _REBIRTH_MEMORY:
            self._asked = {k: v for k, v in self._asked.items() if now - v < self.rebirth_interval}
        self._asked[(group, node)] = now
        return True

    def adapt(self, topic: str, payload: bytes) -> SparkplugMessage | None:
        """Canonical items `{"point", "ts", "value", "status"}` of a Sparkplug message (topic
        without the ingest's prefix); None when the topic is not under `spBv1.0/`.

        A BIRTH replaces the alias table of its (group, node, device) before its own metrics
        are mapped. A bad metric is refused alone; its neighbours still count. Never raises.
        """
        t = parse_topic(topic)
        if t is None:
            return None
        if isinstance(t, str):
            return SparkplugMessage("", None, errors=[(UNKNOWN_TOPIC, t, payload)])
        if t.kind not in READING_TYPES:
            return SparkplugMessage(t.kind, t.node if t.kind != "STATE" else None)
        try:
            p = decode_payload(payload)
        except TooManyMetrics as exc:
            return SparkplugMessage(t.kind, t.node, errors=[(BATCH_TOO_LARGE, str(exc), payload)])
        except WireError as exc:
            return SparkplugMessage(t.kind, t.node, errors=[(MALFORMED_PROTOBUF, f"not a Sparkplug B payload: {exc}",
                                                             payload)])
        if t.kind.endswith("BIRTH"):
            table: _Table | None = self._born(t, p.metrics)
        else:
            table = self._tables.get((t.group, t.node, t.device))
        items: list[dict[str, Any]] = []
        errors: list[tuple[str, str, bytes]] = []
        skipped = 0
        rebirth = None
        for m in p.metrics:
            if isinstance(m, BadMetric):
                errors.append((MALFORMED_PROTOBUF, f"metric is not a Sparkplug B metric: {m.detail}", m.raw))
                continue
            ts = m.timestamp if m.timestamp is not None else p.timestamp
            name = m.name
            if name is None and m.alias is not None and table is not None:
                name = table.aliases.get(m.alias)
            if name is not None and (name in CONTROL_NAMES or name.startswith(CONTROL_PREFIXES)):
                skipped += 1
                continue
            if name is None and t.kind.endswith("BIRTH"):
                errors.append((MISSING_FIELD, "a BIRTH metric must have a name", _describe(m, name, ts)))
                continue
            reason, detail, value, status = self._reading(m, name, ts, table, t)
            if reason is None:
                assert name is not None and ts is not None
                items.append({"point": name, "ts": ts, "value": value, "status": status})
                continue
            if reason == UNKNOWN_ALIAS:
                rebirth = (t.group, t.node)
            errors.append((reason, detail, _describe(m, name, ts)))
        return SparkplugMessage(t.kind, t.node, items, errors, rebirth, skipped)

    @staticmethod
    def _reading(m: Metric, name: str | None, ts: int | None, table: _Table | None,
                 t: SparkplugTopic) -> tuple[str | None, str, float | int, int]:
        """(reason or None, detail, value, status) of one metric."""
        if name is None:
            if m.alias is None:
                return MISSING_FIELD, "metric has neither a name nor an alias", 0, 0
            where = f"{t.group}/{t.node}" + (f"/{t.device}" if t.device else "")
            if table is None:
                return UNKNOWN_ALIAS, (f"alias {m.alias}: no BIRTH of {where} seen since the ingest started; "
                                       "a rebirth was requested"), 0, 0
            return UNKNOWN_ALIAS, f"alias {m.alias} is not in the last BIRTH of {where}; a rebirth was requested", 0, 0
        if ts is None:
            return MISSING_FIELD, "neither the metric nor the payload has a timestamp", 0, 0
        if m.is_null:
            return BAD_VALUE, "the metric is null (is_null): no reading", 0, 0
        if m.kind is None:
            return MISSING_FIELD, "the metric has no value", 0, 0
        datatype = m.datatype or (table.types.get(name) if table is not None else None) or _INFERRED.get(m.kind, 0)
        reason, detail, value = reading_value(datatype, m.kind, m.value)
        if reason is not None:
            return reason, detail, 0, 0
        reason, detail, status = _status(m)
        if reason is not None:
            return reason, detail, 0, 0
        return None, "", value, status


# --- the one message a host application sends to an edge node -----------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(number: int, body: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(body)) + body


def rebirth_request(group: str, node: str, now_ms: int) -> tuple[str, bytes]:
    """(topic without prefix, payload) of an NCMD asking an edge node to publish its BIRTH again:
    the metric `Node Control/Rebirth` = true (Sparkplug B 3.0, host applications)."""
    metric = (_len_field(1, REBIRTH_METRIC.encode())
              + _varint(3 << 3) + _varint(now_ms)        # timestamp
              + _varint(4 << 3) + _varint(BOOLEAN)       # datatype
              + _varint(14 << 3) + _varint(1))           # boolean_value = true
    payload = _varint(1 << 3) + _varint(now_ms) + _len_field(2, metric)
    return f"{NAMESPACE}/{group}/NCMD/{node}", payload
