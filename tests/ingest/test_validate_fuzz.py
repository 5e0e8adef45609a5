"""Property: validation never raises, whatever bytes arrive; it returns rows or rejects (no IO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import validate as v
from ingest.field_variant import adapt
from tests.ingest import fuzzgen as g

NOW = datetime(2026, 11, 23, 0, 15, tzinfo=UTC)
LK = v.Lookup(points={"P1": (1, "M1"), "P2": (2, "M2")}, cards={"C1": (10, "M1")}, stations={"S1": (20, "M1")},
              mine_ids={"M1": 100, "M2": 200})
LIMIT_US = v.epoch_us(NOW + timedelta(minutes=5))
OLDEST_US = v.epoch_us(NOW - v.DEFAULT_MAX_AGE)

_field = st.sampled_from(["point", "ts", "value", "status", "card", "station", "state", "power", "junk"])
_value = st.one_of(g.hostile_ts(NOW), g.hostile_code(), g.hostile_number(0, 256, floats=False), g.junk(),
                   st.sampled_from([b'"P1"', b'"C1"', b'"S1"', b"1795392900250", b'"2026-11-23T08:15:00+08:00"',
                                    b"0", b"0.5"]))
_item = st.lists(st.tuples(_field, _value), max_size=6).map(g.obj)
payloads = st.one_of(
    st.binary(max_size=500),
    g.whole_message(),
    _item,
    st.lists(st.one_of(_item, g.invalid_utf8(), st.binary(max_size=20)), max_size=12).map(
        lambda xs: b"[" + b",".join(xs) + b"]"),
)


@settings(max_examples=400)
@given(st.sampled_from(["safety", "geotech", "personnel", "stations"]), payloads)
def test_validate_never_raises_and_accounts_for_every_item(family: str, payload: bytes) -> None:
    out = v.validate(family, "M1", payload, LK, now=NOW)
    assert out.rows or out.rejects or payload.strip() in (b"[]", b"")
    for r in out.rejects:
        assert r.reason in v.REASONS and r.reason != v.UNPROCESSABLE
        assert isinstance(r.payload, bytes)
        assert len(r.payload) <= len(payload) or r.reason == v.MALFORMED_JSON
    for row in out.rows:
        assert NOW - v.DEFAULT_MAX_AGE <= row[1] <= NOW + timedelta(minutes=5)
    if family in ("safety", "geotech"):
        fast = v.readings_fast(payload, "M1", LK.points, LIMIT_US, OLDEST_US)
        if fast is not None:  # the hot path accepts only what validate accepts whole
            assert not out.rejects and len(fast[0]) == len(out.rows)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), g.whole_message(),
                 st.lists(st.tuples(st.sampled_from(["timestamp", "systemcode", "values"]),
                                    st.one_of(_value, st.lists(_item, max_size=5).map(
                                        lambda xs: b"[" + b",".join(xs) + b"]"))), max_size=4).map(g.obj)))
def test_the_field_variant_adapter_never_raises(payload: bytes) -> None:
    out = adapt("/M1/01", payload)
    assert out is not None
    assert out.items or out.errors or b"values" in payload
