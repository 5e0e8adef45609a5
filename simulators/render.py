"""Rendering simulated windows as MQTT messages: topics, JSON items per the contract, batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from minewatch.registry import Registry
from simulators.geotech import GEOTECH_TYPES
from simulators.noise import I64, key, uniform
from simulators.timebase import offset_ms
from simulators.world import MineWindow

TimeFormat = Literal["rfc3339", "epoch_ms", "mixed"]
TIME_FORMATS: tuple[TimeFormat, ...] = ("rfc3339", "epoch_ms", "mixed")
MAX_ITEMS_PER_MESSAGE = 10_000  # contract: a batch holds up to 10 000 items


class Reading(msgspec.Struct):
    """A `mines/{mine}/safety` or `.../geotech` item."""

    point: str
    ts: str | int
    value: float
    status: int


class CardRead(msgspec.Struct):
    """A `mines/{mine}/personnel` item."""

    card: str
    ts: str | int
    station: str


class StationState(msgspec.Struct):
    """A `mines/{mine}/stations` item."""

    station: str
    ts: str | int
    state: int


Item = Reading | CardRead | StationState
_ENCODER = msgspec.json.Encoder()


@dataclass(slots=True)
class Message:
    """One MQTT message: topic, UTF-8 JSON payload, its item count and its newest item's time."""

    topic: str
    payload: bytes
    items: int
    ts_ms: int


@dataclass(slots=True)
class TopicRows:
    """One topic's items of one window, in time order, ready to be cut into messages."""

    topic: str
    ts_ms: I64
    items: list[Item]

    def messages(self, lo: int, hi: int, per_message: int) -> list[Message]:
        """Items [lo, hi) as messages of at most `per_message` items (1: a bare object)."""
        out: list[Message] = []
        for i in range(lo, hi, per_message):
            j = min(i + per_message, hi)
            body = _ENCODER.encode(self.items[i]) if per_message == 1 else _ENCODER.encode(self.items[i:j])
            out.append(Message(self.topic, body, j - i, int(self.ts_ms[j - 1])))
        return out


class Layout:
    """Per mine: its time zone and which of its points publish on `geotech` rather than `safety`."""

    def __init__(self, registry: Registry, prefix: str = "") -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.prefix = prefix
        self.tz = {m.code: m.timezone for m in registry.mines}
        self.geotech = {m.code: np.array([p.sensor_type in GEOTECH_TYPES for p in m.points], np.bool_) for m in registry.mines}

    def topic(self, mine: str, kind: str) -> str:
        return f"{self.prefix}mines/{mine}/{kind}"


def format_times(ts_ms: I64, tz: str, fmt: TimeFormat, seed: int = 0) -> list[str | int]:
    """Times as the contract allows: RFC 3339 with the mine's offset and ms, epoch ms, or a mix."""
    ms = ts_ms.tolist()
    if fmt == "epoch_ms" or ts_ms.size == 0:
        return list(ms)
    off = offset_ms(ts_ms, tz)
    text = np.datetime_as_string((ts_ms + off).astype("datetime64[ms]"), unit="ms").tolist()
    if bool((off == off[0]).all()):
        suffix = _offset_text(int(off[0]))
        rfc: list[str | int] = [t + suffix for t in text]
    else:
        rfc = [t + _offset_text(o) for t, o in zip(text, off.tolist(), strict=True)]
    if fmt == "rfc3339":
        return rfc
    as_int = (uniform(key(seed, "mixed-times"), ts_ms) < 0.5).tolist()
    return [m if flag else r for m, r, flag in zip(ms, rfc, as_int, strict=True)]


def _offset_text(off_ms: int) -> str:
    sign = "+" if off_ms >= 0 else "-"
    minutes = abs(off_ms) // 60_000
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def window_rows(w: MineWindow, layout: Layout, fmt: TimeFormat, seed: int = 0) -> list[TopicRows]:
    """The window's items by topic (safety, geotech, personnel, stations), in time order."""
    tz = layout.tz[w.mine]
    out: list[TopicRows] = []
    r = w.readings
    if len(r):
        geo = layout.geotech[w.mine][r.point]
        codes = np.array(r.codes, dtype=object)
        for kind, mask in (("safety", ~geo), ("geotech", geo)):
            if mask.any():
                ts = r.ts_ms[mask]
                items: list[Item] = [
                    Reading(p, t, v, s)
                    for p, t, v, s in zip(
                        codes[r.point[mask]].tolist(),
                        format_times(ts, tz, fmt, seed),
                        r.value[mask].tolist(),
                        r.status[mask].tolist(),
                        strict=True,
                    )
                ]
                out.append(TopicRows(layout.topic(w.mine, kind), ts, items))
    c = w.cards
    if len(c):
        cards = np.array(c.cards, dtype=object)[c.card].tolist()
        stations = np.array(c.stations, dtype=object)[c.station].tolist()
        items = [CardRead(k, t, s) for k, t, s in zip(cards, format_times(c.ts_ms, tz, fmt, seed), stations, strict=True)]
        out.append(TopicRows(layout.topic(w.mine, "personnel"), c.ts_ms, items))
    st = w.stations
    if len(st):
        names = np.array(st.stations, dtype=object)[st.station].tolist()
        items = [
            StationState(n, t, s) for n, t, s in zip(names, format_times(st.ts_ms, tz, fmt, seed), st.state.tolist(), strict=True)
        ]
        out.append(TopicRows(layout.topic(w.mine, "stations"), st.ts_ms, items))
    return out


def merge_by_time(messages: list[Message]) -> list[Message]:
    """Messages of several topics in the order their newest items happened (stable)."""
    order: NDArray[np.intp] = np.argsort(np.array([m.ts_ms for m in messages], np.int64), kind="stable")
    return [messages[i] for i in order.tolist()]


def decode_items(payload: bytes) -> list[dict[str, object]]:
    """A payload's items (one object or an array), for tests and tools."""
    data = msgspec.json.decode(payload)
    return data if isinstance(data, list) else [data]
