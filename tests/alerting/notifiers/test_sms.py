"""SMS adapters: the generic HTTP gateway against a real local fake gateway, and the log."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError

from alerting.errors import PermanentDeliveryError, RetryableDeliveryError
from alerting.messages import load_templates, render_sms
from alerting.notifiers.base import Notifier, SmsMessage, WebhookMessage
from alerting.notifiers.sms_gateway import HttpSmsGateway, SmsGatewayConfig, fill
from alerting.notifiers.sms_log import LogSms
from tests.alerting.builders import note
from tests.alerting.notifiers.servers import SMS_TOKEN, Running

TEMPLATE = {"mobile": "{to}", "content": "{text}", "outId": "{id}", "sign": "矿安监测"}


def _gateway(server: Running, client: httpx.AsyncClient, path: str = "/sms",
             token: str | None = SMS_TOKEN) -> Notifier:
    config = SmsGatewayConfig.model_validate(
        {"url": server.base_url + path, "body_template": TEMPLATE, "auth_env": "MINEWATCH_SMS"})
    return HttpSmsGateway(client, config, auth_value=token)


async def test_each_segment_is_one_post_with_its_reference(server: Running,
                                                           client: httpx.AsyncClient) -> None:
    segments = render_sms(note(1, mine_name="山西焦煤集团有限责任公司西山煤电股份有限公司屯兰矿",
                               ack_by_reply=True), load_templates("zh"))
    assert len(segments) == 2
    before = len(server.seen.sms)
    result = await _gateway(server, client).send(SmsMessage("n-9", "13800000001", segments))
    assert result.status == 200
    sent = server.seen.sms[before:]
    assert sent == [
        {"mobile": "13800000001", "content": segments[0], "outId": "n-9-1", "sign": "矿安监测"},
        {"mobile": "13800000001", "content": segments[1], "outId": "n-9-2", "sign": "矿安监测"},
    ]
    keys = [h["Idempotency-Key"] for p, h, _ in server.seen.requests if p == "/sms"][-2:]
    assert keys == ["n-9-1", "n-9-2"]


async def test_single_segment_uses_the_notification_id(server: Running,
                                                       client: httpx.AsyncClient) -> None:
    await _gateway(server, client).send(SmsMessage("n-10", "13800000001", ("短信",)))
    assert server.seen.sms[-1]["outId"] == "n-10"


async def test_bad_credentials_are_permanent(server: Running, client: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        await _gateway(server, client, token="Bearer wrong").send(SmsMessage("n", "1", ("x",)))
    assert info.value.status == 401


async def test_gateway_outage_is_retryable(server: Running, client: httpx.AsyncClient) -> None:
    with pytest.raises(RetryableDeliveryError):
        await _gateway(server, client, "/status/503").send(SmsMessage("n", "1", ("x",)))


async def test_gateway_refuses_webhook_messages(server: Running,
                                                client: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentDeliveryError):
        await _gateway(server, client).send(WebhookMessage("n", "http://x", {}, b"k"))


def test_fill_substitutes_once_and_everywhere() -> None:
    filled = fill({"a": ["{to}", {"b": "x{text}y"}], "n": 3},
                  {"to": "138", "text": "literal {id} stays", "id": "n-1"})
    assert filled == {"a": ["138", {"b": "xliteral {id} staysy"}], "n": 3}


def test_config_names_missing_placeholders() -> None:
    with pytest.raises(ValidationError, match=r"missing \{text\}.*allowed placeholders"):
        SmsGatewayConfig.model_validate({"url": "https://sms.example.cn/send",
                                         "body_template": {"mobile": "{to}"}})


async def test_log_adapter_writes_every_segment(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.sms")
    with caplog.at_level(logging.INFO, logger="tests.sms"):
        log: Notifier = LogSms(logger)
        result = await log.send(SmsMessage("n-11", "13800000001", ("一", "二")))
    assert result.status is None
    assert [r.getMessage().split("text=")[1] for r in caplog.records] == ["一", "二"]
    assert "segment=2/2" in caplog.records[1].getMessage()
