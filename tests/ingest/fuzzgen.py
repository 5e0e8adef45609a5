"""Hypothesis strategies for hostile MQTT input, each item built to yield exactly one dead letter.

The fuzz tests mix these with valid items (some carrying hostile but ignorable extra fields)
and check, before publishing, that the validator agrees with the generator's intent; then the
real ingest must store exactly the valid items and dead-letter exactly the hostile ones.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from ingest.validate import DEFAULT_MAX_AGE

# Offsets at the edges of what RFC 3339 allows, so times overflow in both directions.
_ZONES = [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12)), timezone(timedelta(hours=5, minutes=45))]


def _js(value: object) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def invalid_utf8() -> st.SearchStrategy[bytes]:
    """A JSON string literal whose bytes are not UTF-8 (structurally still a string)."""
    body = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c >= 0x20 and c not in b'"\\'))
    bad = st.sampled_from([b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
    return st.tuples(body, bad, body).map(lambda t: b'"' + t[0] + t[1] + t[2] + b'"')


def hostile_code() -> st.SearchStrategy[bytes]:
    """A point / card / station code no registry holds, or of the wrong type."""
    return st.one_of(
        st.text(max_size=30).map(lambda t: _js("X" + t)),
        invalid_utf8(),
        st.integers(1_000, 200_000).map(lambda n: b'"' + b"A" * n + b'"'),  # oversized field
        st.sampled_from([b'"\\u0000"', b'"X\\u0000\\u202e\\ud800"', b'"\'; DROP TABLE readings; --"', b"null",
                         b"true", b"{}", b"[]"]),
        st.integers().map(lambda i: str(i).encode()),
        st.integers(1, 60).map(_nested),
    )


def hostile_ts(now: datetime) -> st.SearchStrategy[bytes]:
    """A time the ingest must refuse: too old, in the future, naive, out of range or not a time."""
    oldest = now - DEFAULT_MAX_AGE - timedelta(days=1)
    future = now + timedelta(days=1)
    old_ms, future_ms = int(oldest.timestamp() * 1000), int(future.timestamp() * 1000)
    return st.one_of(
        st.integers(max_value=old_ms).map(lambda i: str(i).encode()),  # 1970, negative, -huge
        st.integers(min_value=future_ms).map(lambda i: str(i).encode()),  # 10**30 ...
        st.datetimes(max_value=oldest.replace(tzinfo=None), timezones=st.sampled_from(_ZONES)).map(
            lambda d: _js(d.isoformat())),  # year 0001 .. two years ago, any offset
        st.datetimes(min_value=future.replace(tzinfo=None), timezones=st.sampled_from(_ZONES)).map(
            lambda d: _js(d.isoformat())),  # .. year 9999
        st.datetimes().map(lambda d: _js(d.isoformat())),  # naive
        st.sampled_from([b"1e309", b"-1e309", b"1" + b"0" * 400, b"1.5e3", b'"2026-13-45T99:00:00Z"',
                         b'"0001-01-01T00:00:00Z"', b'"9999-12-31T23:59:59.999999-23:59"', b"null", b"[]",
                         b'"\\u0000"']),
        st.text(max_size=30).map(_js),
    )


def hostile_number(lo: int, hi: int, *, floats: bool) -> st.SearchStrategy[bytes]:
    """A value that is not a finite number (floats) / not an integer in [lo, hi) (ints)."""
    common = st.one_of(
        st.sampled_from([b"1e309", b"-1e309", b"1" + b"0" * 400, b"null", b"{}", b'"NaN"', b'"high"', b"true"]),
        st.text(max_size=20).map(_js),
        st.integers(1, 60).map(_nested),
        invalid_utf8(),
    )
    if floats:
        return common
    return st.one_of(common, st.integers(max_value=lo - 1).map(lambda i: str(i).encode()),
                     st.integers(min_value=hi).map(lambda i: str(i).encode()), st.just(b"1.5"))


def junk() -> st.SearchStrategy[bytes]:
    """An extra field's value: hostile, but ignored by the decoder, so its item stays valid."""
    return st.one_of(
        st.integers(1, 40).map(_nested),
        st.text(max_size=200).map(_js),
        st.integers(100, 20_000).map(lambda n: b'"' + b"J" * n + b'"'),
        st.sampled_from([b'"\\u0000\\u0000"', b"1" + b"0" * 300, b"-0.0e-999", b'{"a": {"b": [null, true]}}']),
    )


def obj(fields: list[tuple[str, bytes]]) -> bytes:
    """A JSON object from already-encoded values (so hostile bytes go in as they are)."""
    return b"{" + b", ".join(_js(k) + b": " + v for k, v in fields) + b"}"


def whole_message() -> st.SearchStrategy[bytes]:
    """A payload that is one dead letter as a whole (never an empty array: that is zero)."""
    return st.one_of(
        st.binary(max_size=300).map(lambda b: b"\x00" + b),  # random bytes; a leading NUL is never JSON
        st.integers(1_000, 20_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
        st.integers(1, 20_000).map(lambda n: b"[" * n),
        st.sampled_from([b"", b"NaN", b"1e309", b"null", b'"x"', b"[1]", b"{", b'{"point": "\xff"}',
                         b'[{"point": "x", "ts": 1, "value": Infinity}]', b"\xef\xbb\xbf[]"]),
        invalid_utf8(),
    )


Maker = Callable[[bytes | None], tuple[bytes, tuple[str, int]]]


@st.composite
def item_burst(draw: st.DrawFn, *, n_hostile: int, valid_maker: Maker, hostile_item: st.SearchStrategy[bytes],
               ) -> tuple[list[bytes], list[bytes], list[tuple[bytes, tuple[str, int]]], random.Random]:
    """One example's hostile items, whole hostile messages and valid items (some with junk
    fields), and a random generator to mix them into messages."""
    hostile = draw(st.lists(hostile_item, min_size=n_hostile, max_size=n_hostile))
    wholes = draw(st.lists(whole_message(), min_size=1, max_size=3))
    valid = [valid_maker(draw(st.none() | junk())) for _ in range(draw(st.integers(n_hostile // 2, n_hostile * 2)))]
    return hostile, wholes, valid, random.Random(draw(st.integers(0, 2**32 - 1)))
