"""The generic HTTP SMS gateway adapter: one JSON POST per segment, from a body template."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, StringConstraints, field_validator

from alerting.errors import PermanentDeliveryError
from alerting.notifiers.base import DeliveryResult, OutboundMessage, SmsMessage
from alerting.notifiers.h1 import H1Client
from alerting.notifiers.http_post import DEFAULT_TIMEOUT, post

_PLACEHOLDER = re.compile(r"\{(to|text|id)\}")


class SmsGatewayConfig(BaseModel):
    """Settings of an HTTP SMS gateway: where to POST, how to authenticate, the body shape.

    `body_template` is any JSON value whose strings may hold `{to}`, `{text}` and `{id}`,
    e.g. `{"mobile": "{to}", "content": "{text}", "outId": "{id}"}`. The auth value is a secret
    named by `auth_env` and resolved by the caller.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: AnyHttpUrl
    body_template: dict[str, Any]
    auth_header: str = "Authorization"
    auth_env: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")] | None = None

    @field_validator("body_template")
    @classmethod
    def _has_to_and_text(cls, value: dict[str, Any]) -> dict[str, Any]:
        used = set(_PLACEHOLDER.findall(json.dumps(value, ensure_ascii=False)))
        missing = {"to", "text"} - used
        if missing:
            raise ValueError(f"body_template must contain {{to}} and {{text}}; missing "
                             f"{', '.join('{' + m + '}' for m in sorted(missing))} "
                             f"(allowed placeholders: {{to}}, {{text}}, {{id}})")
        return value


def fill(template: Any, values: Mapping[str, str]) -> Any:
    """The template with placeholders replaced in every string, in one pass (so text that
    itself contains `{id}` is not substituted again)."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if isinstance(template, Mapping):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


class HttpSmsGateway:
    """Sends each segment of an SMS as one POST; segment i of n carries reference `<id>-<i>`
    (the id itself for a single segment) in the body and as Idempotency-Key, so a retry after
    a partial failure does not resend the segments a deduplicating gateway already took."""

    def __init__(
        self,
        client: httpx.AsyncClient | H1Client,
        config: SmsGatewayConfig,
        *,
        auth_value: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self._client = client
        self._config = config
        self._url = str(config.url)
        self._auth = (config.auth_header, auth_value) if auth_value else None
        self._timeout = timeout

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Send once; see `Notifier`."""
        if not isinstance(message, SmsMessage):
            raise PermanentDeliveryError(f"SMS gateway cannot send {type(message).__name__}")
        status = None
        count = len(message.segments)
        for index, text in enumerate(message.segments, 1):
            ref = message.id if count == 1 else f"{message.id}-{index}"
            body = fill(self._config.body_template, {"to": message.to, "text": text, "id": ref})
            headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": ref}
            if self._auth is not None:
                headers[self._auth[0]] = self._auth[1]
            response = await post(
                self._client, self._url,
                content=json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=headers,
                limits=self._timeout, what=f"sms {ref}",
            )
            status = response.status_code
        return DeliveryResult(message.id, status, f"{count} segment(s)")
