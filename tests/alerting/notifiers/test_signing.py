"""Webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

from alerting.notifiers.signing import sign, verify


def test_sign_is_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id":"n-1","reason":"raised"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign(b"k", body) == f"sha256={expected}"
    assert verify(b"k", body, sign(b"k", body))


def test_verify_rejects_tampering_and_junk() -> None:
    body = b'{"id":"n-1"}'
    good = sign(b"k", body)
    assert not verify(b"k", body + b" ", good)
    assert not verify(b"other", body, good)
    assert not verify(b"k", body, good.removeprefix("sha256="))
    assert not verify(b"k", body, None)
    assert not verify(b"k", body, "sha256=瓦斯")
