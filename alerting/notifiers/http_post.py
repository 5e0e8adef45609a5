"""One HTTP attempt for notifiers: httpx errors and statuses translated to delivery errors.

The contract's classification: 2xx delivered; 4xx other than 408/429 permanent; everything
else (other statuses, timeouts, connection errors) retryable, with Retry-After as a hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from alerting.errors import PermanentDeliveryError, RetryableDeliveryError
from alerting.notifiers.h1 import H1Client, H1Error, H1InvalidURL, H1Timeout

# Explicit, short: a receiver that has not answered in 10 s is treated as down and retried
# later, rather than holding an outbox slot; connecting gets 5 s.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)

_RETRYABLE_4XX = frozenset({408, 429})


async def post(
    client: httpx.AsyncClient | H1Client,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    limits: httpx.Timeout,
    what: str,
) -> httpx.Response:
    """POST once and return the response if it is 2xx; otherwise raise the delivery error the
    status or the failure calls for. `what` names the attempt in error messages."""
    if isinstance(client, H1Client):
        response = await _post_h1(client, url, content=content, headers=headers, limits=limits, what=what)
        classify(response, what=what)
        return response
    try:
        response = await client.post(url, content=content, headers=dict(headers), timeout=limits)
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryError(f"{what}: timed out ({type(exc).__name__})") from exc
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
        raise PermanentDeliveryError(f"{what}: cannot send to {url!r}: {exc}") from exc
    except httpx.TransportError as exc:
        raise RetryableDeliveryError(f"{what}: {type(exc).__name__}: {exc}") from exc
    classify(response, what=what)
    return response


async def _post_h1(client: H1Client, url: str, *, content: bytes, headers: Mapping[str, str],
                   limits: httpx.Timeout, what: str) -> httpx.Response:
    """The same attempt through the lean client, its errors classified as httpx's are."""
    total = limits.read if limits.read is not None else DEFAULT_TIMEOUT.read
    connect = limits.connect if limits.connect is not None else DEFAULT_TIMEOUT.connect
    try:
        r = await client.post(url, content=content, headers=headers, read_timeout=total or 10.0,
                              connect_timeout=connect or 5.0)
    except H1InvalidURL as exc:
        raise PermanentDeliveryError(f"{what}: {exc}") from exc
    except H1Timeout as exc:
        raise RetryableDeliveryError(f"{what}: timed out ({exc})") from exc
    except H1Error as exc:
        raise RetryableDeliveryError(f"{what}: {exc}") from exc
    return httpx.Response(r.status_code, headers=r.headers, content=r.content)


def classify(response: httpx.Response, *, what: str) -> None:
    """Return for 2xx; raise `PermanentDeliveryError` for 4xx other than 408/429 and
    `RetryableDeliveryError` (with the Retry-After hint) for anything else."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"{what}: HTTP {status} {response.text[:200]!r}"
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        raise PermanentDeliveryError(detail, status=status)
    seconds, at = parse_retry_after(response.headers.get("Retry-After"))
    raise RetryableDeliveryError(detail, status=status, retry_after=seconds, retry_at=at)


def parse_retry_after(value: str | None) -> tuple[float | None, datetime | None]:
    """Retry-After as (seconds, None) or (None, an aware HTTP date); (None, None) if absent or
    unreadable. Turning a date into a delay needs `now`, which the retry stage has."""
    if value is None:
        return None, None
    text = value.strip()
    if text.isdigit():
        return float(text), None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None, None
    return None, when if when.tzinfo else when.replace(tzinfo=UTC)
