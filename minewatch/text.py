"""Storable text: what PostgreSQL and a log line accept, whatever bytes arrived."""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator

# Dead-letter payloads are capped: a 20 MB hostile message must not become a 20 MB row that
# every list response and every backup carries. 1 MiB keeps a whole 10 000-item batch of the
# contract (about 0.8 MB) readable as it arrived.
MAX_PAYLOAD_BYTES: Final = 1 << 20
MAX_DETAIL_CHARS: Final = 4_000
MAX_NAME_CHARS: Final = 1_000
# Codes that are indexed (dead_letters.mine_code): a btree entry must stay under ~2 700 bytes.
MAX_CODE_CHARS: Final = 200

# PostgreSQL `text` refuses NUL; asyncpg cannot encode lone surrogates (what os.fsdecode and
# `surrogateescape` make of bytes that are not UTF-8).
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
# Control characters that would forge or break a log line (newline, CR, escape, ...).
_LOG_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def storable(text: str, limit: int | None = None) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD, cut to `limit` characters."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def opt_storable(text: str | None, limit: int | None = None) -> str | None:
    """`storable(text, limit)`, passing None through."""
    return None if text is None else storable(text, limit)


def storable_payload(payload: str | bytes) -> tuple[str, bytes | None, int]:
    """(text, raw, size): storable text of at most MAX_PAYLOAD_BYTES, the original bytes when
    the text is not them (capped likewise), and the size that arrived."""
    if isinstance(payload, str):
        if len(payload) <= MAX_PAYLOAD_BYTES // 4 and not _UNSTORABLE.search(payload):
            return payload, None, len(payload.encode("utf-8", "surrogatepass"))
        text_in = payload
        try:  # bytes that came in through `surrogateescape` go back to what they were
            payload = text_in.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            payload = text_in.encode("utf-8", "surrogatepass")
    size = len(payload)
    head = payload[:MAX_PAYLOAD_BYTES]
    if size > MAX_PAYLOAD_BYTES:
        # Cut at a character boundary so a capped valid payload stays valid text.
        cut = MAX_PAYLOAD_BYTES
        while cut > MAX_PAYLOAD_BYTES - 4 and payload[cut] & 0xC0 == 0x80:
            cut -= 1
        head = payload[:cut]
    text = head.decode("utf-8", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    raw = None if text.encode("utf-8") == head else head
    return text, raw, size


def log_safe(text: str, limit: int = 300) -> str:
    """`text` for a log line: control characters and newlines escaped, cut to `limit`."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return _LOG_UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                           else f"\\u{ord(m.group()):04x}", text)


# PostgreSQL bigint; a larger id cannot exist and must be a 422 at the edge, not an encode error.
MAX_ID: Final = 2**63 - 1


def _safe_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8:
    # both must be refused here, as input errors, before they reach the driver.
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return value


SafeText = Annotated[str, AfterValidator(_safe_text)]
"""Free text from a client (API bodies, SMS replies): no NUL, valid Unicode — refused, not repaired."""
