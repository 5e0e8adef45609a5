"""Opaque keyset cursors: the last row's sort key, signed so a changed cursor is refused."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from api.errors import BadCursor

KeyPart = Literal["time", "int", "str"]
KeyValue = datetime | int | str
R = TypeVar("R")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What a key part may hold, even in a cursor this server signed: PostgreSQL's bigint, and times
# the API itself accepts (api/schemas.py). A cursor is bounded input like any other: signed
# with a leaked or weak pepper it must still be a 400, never an overflow (500).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_US_MIN = (datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_US_MAX = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
# 12 bytes of HMAC-SHA256 are plenty to make forging a cursor pointless while
# keeping cursors short enough for a query string.
_TAG = 12


def _us(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


class CursorCodec:
    """Encodes and checks cursors of named lists; the key is derived from the token pepper."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"minewatch-cursor\x00" + secret).digest()

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG]

    def encode(self, kind: str, key: Sequence[KeyValue]) -> str:
        """The cursor that resumes list `kind` after the row whose sort key is `key`."""
        parts: list[int | str] = [kind]
        for v in key:
            parts.append(_us(v) if isinstance(v, datetime) else v)
        payload = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(self._tag(payload) + payload).rstrip(b"=").decode()

    def decode(self, cursor: str, kind: str, shape: Sequence[KeyPart]) -> tuple[KeyValue, ...]:
        """The sort key inside `cursor`; BadCursor if it was altered or belongs to another list."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError) as exc:
            raise BadCursor("cursor is not valid base64url") from exc
        tag, payload = raw[:_TAG], raw[_TAG:]
        if len(tag) != _TAG or not hmac.compare_digest(tag, self._tag(payload)):
            raise BadCursor("cursor was not issued by this server or was altered")
        try:
            parts = json.loads(payload)
        except ValueError as exc:  # not JSON, not UTF-8, or an integer of more than 4 300 digits
            raise BadCursor("cursor payload is not readable") from exc
        if not isinstance(parts, list) or not parts or parts[0] != kind or len(parts) != len(shape) + 1:
            raise BadCursor(f"cursor does not belong to this list ({kind})")
        out: list[KeyValue] = []
        for want, v in zip(shape, parts[1:], strict=True):
            is_int = isinstance(v, int) and not isinstance(v, bool) and _INT_MIN <= v <= _INT_MAX
            if (want == "str" and isinstance(v, str) and len(v) <= 1024) or (want == "int" and is_int):
                out.append(v)
            elif want == "time" and is_int and _US_MIN <= v <= _US_MAX:
                out.append(_EPOCH + timedelta(microseconds=v))
            else:
                raise BadCursor("cursor key has an unexpected shape")
        return tuple(out)


def paginate(codec: CursorCodec, kind: str, rows: Sequence[R], limit: int,
             key: Callable[[R], Sequence[KeyValue]]) -> tuple[list[R], str | None]:
    """Cut the limit + 1 rows a query fetched to one page and the cursor of the next, if any."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, codec.encode(kind, key(page[-1]))
