"""The log SMS adapter: writes each segment to a logger instead of sending (development)."""

from __future__ import annotations

import logging

from alerting.errors import PermanentDeliveryError
from alerting.notifiers.base import DeliveryResult, OutboundMessage, SmsMessage


class LogSms:
    """An SMS provider that logs; it always delivers."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger if logger is not None else logging.getLogger("minewatch.sms")

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Log every segment; see `Notifier`."""
        if not isinstance(message, SmsMessage):
            raise PermanentDeliveryError(f"SMS log cannot send {type(message).__name__}")
        count = len(message.segments)
        for index, text in enumerate(message.segments, 1):
            self._log.info("sms id=%s to=%s segment=%d/%d text=%s",
                           message.id, message.to, index, count, text)
        return DeliveryResult(message.id, None, f"logged {count} segment(s)")
