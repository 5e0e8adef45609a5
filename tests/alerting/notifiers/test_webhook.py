"""The webhook notifier against a real local receiver: signing, idempotency, classification."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from alerting.errors import PermanentDeliveryError, RetryableDeliveryError
from alerting.messages import load_templates, webhook_payload
from alerting.notifiers.base import Notifier, SmsMessage, WebhookMessage
from alerting.notifiers.signing import HEADER, sign
from alerting.notifiers.webhook import WebhookNotifier, encode_body
from tests.alerting.builders import note
from tests.alerting.notifiers.servers import HOOK_SECRET, Running

PAYLOAD = webhook_payload(note(1), load_templates("zh"))


def _message(server: Running, path: str, *, secret: bytes = HOOK_SECRET,
             msg_id: str = "n-1") -> WebhookMessage:
    return WebhookMessage(id=msg_id, url=server.base_url + path, payload=PAYLOAD, secret=secret)


async def test_delivered_signed_and_idempotent(server: Running, client: httpx.AsyncClient) -> None:
    notifier: Notifier = WebhookNotifier(client)  # mypy checks it meets the protocol
    message = _message(server, "/hook", msg_id="n-idem")
    result = await notifier.send(message)
    assert (result.message_id, result.status) == ("n-idem", 200)
    _, headers, body = server.seen.requests[-1]
    assert headers["Idempotency-Key"] == "n-idem"
    assert headers[HEADER] == sign(HOOK_SECRET, body) and body == encode_body(PAYLOAD)
    assert json.loads(body) == PAYLOAD and set(PAYLOAD) >= {"id", "case", "reason"}
    assert "瓦斯超限" in body.decode("utf-8")  # Chinese stays readable, not \\u-escaped
    await notifier.send(message)  # a retry after an unrecorded success
    assert list(server.seen.delivered).count("n-idem") == 1
    assert server.seen.delivered["n-idem"] == PAYLOAD


async def test_wrong_secret_is_refused_permanently(server: Running,
                                                   client: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await WebhookNotifier(client).send(_message(server, "/hook", secret=b"wrong"))
    assert info.value.status == 401


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_delivered(server: Running, client: httpx.AsyncClient, status: int) -> None:
    result = await WebhookNotifier(client).send(_message(server, f"/status/{status}"))
    assert result.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422])
async def test_4xx_is_permanent(server: Running, client: httpx.AsyncClient, status: int) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await WebhookNotifier(client).send(_message(server, f"/status/{status}"))
    assert info.value.status == status


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 302, 307])
async def test_everything_else_is_retryable(server: Running, client: httpx.AsyncClient,
                                            status: int) -> None:
    with pytest.raises(RetryableDeliveryError) as info:
        await WebhookNotifier(client).send(_message(server, f"/status/{status}"))
    assert info.value.status == status and info.value.retry_after is None


async def test_retry_after_seconds_and_date_are_passed_on(server: Running,
                                                          client: httpx.AsyncClient) -> None:
    notifier = WebhookNotifier(client)
    with pytest.raises(RetryableDeliveryError) as info:
        await notifier.send(_message(server, "/status/429?retry_after=120"))
    assert info.value.retry_after == 120.0
    date = "Wed,%2021%20Oct%202026%2007:28:00%20GMT"
    with pytest.raises(RetryableDeliveryError) as info:
        await notifier.send(_message(server, f"/status/503?retry_after={date}"))
    assert info.value.retry_at is not None and info.value.retry_at.isoformat() == (
        "2026-10-21T07:28:00+00:00")


async def test_timeout_is_retryable(server: Running, client: httpx.AsyncClient) -> None:
    notifier = WebhookNotifier(client, timeout=httpx.Timeout(0.2))
    with pytest.raises(RetryableDeliveryError, match="timed out"):
        await notifier.send(_message(server, "/slow"))


async def test_connection_refused_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = WebhookMessage("n-2", f"http://127.0.0.1:{port}/hook", PAYLOAD, HOOK_SECRET)
    with pytest.raises(RetryableDeliveryError):
        await WebhookNotifier(client).send(message)


async def test_unusable_address_or_message_is_permanent(client: httpx.AsyncClient) -> None:
    notifier = WebhookNotifier(client)
    with pytest.raises(PermanentDeliveryError):
        await notifier.send(WebhookMessage("n-3", "ftp://example.cn/x", PAYLOAD, HOOK_SECRET))
    with pytest.raises(PermanentDeliveryError, match="no signing secret"):
        await notifier.send(WebhookMessage("n-4", "http://127.0.0.1:9/x", PAYLOAD, b""))
    with pytest.raises(PermanentDeliveryError, match="SmsMessage"):
        await notifier.send(SmsMessage("n-5", "13800000001", ("hi",)))
