"""The webhook notifier: a signed, idempotent JSON POST per notification (contract v1)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx

from alerting.errors import PermanentDeliveryError
from alerting.notifiers.base import DeliveryResult, OutboundMessage, WebhookMessage
from alerting.notifiers.h1 import H1Client
from alerting.notifiers.http_post import DEFAULT_TIMEOUT, post
from alerting.notifiers.signing import HEADER, sign


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact UTF-8 JSON (Chinese text stays readable)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WebhookNotifier:
    """POSTs `{"id", "case", "reason", ...}` with `Idempotency-Key: <id>` and
    `X-Signature-256: sha256=<hmac>`. The client is injected and shared (one connection pool
    per process); each request carries an explicit timeout."""

    def __init__(self, client: httpx.AsyncClient | H1Client, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT):
        self._client = client
        self._timeout = timeout

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Send once; see `Notifier`."""
        if not isinstance(message, WebhookMessage):
            raise PermanentDeliveryError(f"webhook notifier cannot send {type(message).__name__}")
        if not message.secret:
            raise PermanentDeliveryError(f"webhook {message.id}: no signing secret")
        body = encode_body(message.payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": message.id,
            HEADER: sign(message.secret, body),
        }
        response = await post(
            self._client, message.url, content=body, headers=headers, limits=self._timeout,
            what=f"webhook {message.id}",
        )
        return DeliveryResult(message.id, response.status_code)
