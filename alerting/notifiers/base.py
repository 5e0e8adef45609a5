"""What a notifier sends and returns, and the `Notifier` protocol every sender implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """An SMS to one number, already cut into segments (see `alerting.messages.render_sms`)."""

    id: str  # the notification id; segment i of n is sent with reference `<id>-<i>`
    to: str
    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    """A webhook POST: the contract payload and the receiver's secret (resolved by the caller
    from the receiver's `secret_env`; never stored in files or the database)."""

    id: str  # the notification id, sent as the Idempotency-Key
    url: str
    payload: Mapping[str, Any]
    secret: bytes


OutboundMessage: TypeAlias = SmsMessage | WebhookMessage


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """A delivered message: the final HTTP status (None for the log adapter) and a note."""

    message_id: str
    status: int | None
    detail: str = ""


class Notifier(Protocol):
    """Sends one message once. Never sleeps; raises `RetryableDeliveryError` when trying again
    may help and `PermanentDeliveryError` when it cannot (including a message of a kind this
    notifier does not carry)."""

    async def send(self, message: OutboundMessage) -> DeliveryResult: ...
