"""Webhook signatures: `X-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Signature-256"
_SCHEME = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header value signing `body` (the exact bytes sent) with `secret`."""
    return _SCHEME + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` under `secret`; compared in constant time
    so that a forger learns nothing from how long a wrong guess takes."""
    if not header or not header.startswith(_SCHEME):
        return False
    expected = sign(secret, body).encode("ascii")
    return hmac.compare_digest(expected, header.encode("ascii", "replace"))
