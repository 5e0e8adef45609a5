"""The errors of the alerting package, all derived from one base."""

from __future__ import annotations

from datetime import datetime

from minewatch.errors import ConfigError, MinewatchError


class AlertingError(MinewatchError):
    """Base of every error the alerting package raises on purpose."""


class RoutingError(AlertingError, ConfigError):
    """The routing file is invalid; the message names the file, the key and the allowed values."""


class TemplateError(AlertingError, ConfigError):
    """A message template file is invalid or a message cannot be made to fit an SMS segment."""


class DeliveryError(AlertingError):
    """A notifier could not deliver a message; subclasses say whether trying again can help."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        # Retry-After is a hint from the receiver, either as seconds or as an HTTP date; the
        # retry stage decides what to do with it (notifiers never sleep).
        self.retry_after = retry_after
        self.retry_at = retry_at


class RetryableDeliveryError(DeliveryError):
    """Transient failure (5xx, 408, 429, timeout, connection error): retry with backoff."""


class PermanentDeliveryError(DeliveryError):
    """Failure that repeating cannot fix (4xx other than 408/429, bad address): give up."""
