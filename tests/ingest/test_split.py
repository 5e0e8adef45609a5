"""Pure pieces of hostile-input handling: splitting arrays by structure, telling data errors from outages."""

from __future__ import annotations

import json

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.store import is_data_error
from ingest.validate import split_top

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=20)


@given(st.lists(_json, max_size=10), st.booleans())
def test_split_top_finds_each_element_of_any_array(values: list[object], ascii_only: bool) -> None:
    parts = [json.dumps(x, ensure_ascii=ascii_only).encode() for x in values]
    assert split_top(b" [" + b" ,\n".join(parts) + b"] ") == parts


@pytest.mark.parametrize("payload", [b"[1", b"[1]]", b"1", b"", b"[", b"[}", b"{]"])
def test_split_top_refuses_what_does_not_balance(payload: bytes) -> None:
    assert split_top(payload) is None


@pytest.mark.parametrize(("exc", "data"), [
    (asyncpg.CheckViolationError("x"), True),  # 23514
    (asyncpg.CharacterNotInRepertoireError("x"), True),  # 22021: NUL / bad encoding in text
    (asyncpg.NumericValueOutOfRangeError("x"), True),  # 22003
    (asyncpg.ProgramLimitExceededError("x"), True),  # 54000: index row too large
    (asyncpg.DataError("x"), True),  # asyncpg could not encode a value
    (ValueError("x"), True),
    (asyncpg.CannotConnectNowError("x"), False),  # the database is starting
    (asyncpg.AdminShutdownError("x"), False),
    (asyncpg.InterfaceError("x"), False),
    (ConnectionResetError(), False),
    (asyncpg.DeadlockDetectedError("x"), False),
])
def test_data_errors_are_told_from_outages(exc: BaseException, data: bool) -> None:
    assert is_data_error(exc) is data
