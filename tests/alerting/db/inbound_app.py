"""The reply router mounted in a bare FastAPI app, called in-process through ASGI."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from alerting.inbound import configure_inbound, router
from tests.alerting.db.conftest import Harness

REPLY_SECRET = "reply-secret-for-tests"


def reply_app(h: Harness, *, secret: str | None = REPLY_SECRET) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    configure_inbound(app, pool=h.pool, clock=h.clock, routing=h.routing, secret=secret)
    return app


async def send_reply(app: FastAPI, sender: str, text: str, *, secret: str = REPLY_SECRET) -> httpx.Response:
    body: dict[str, Any] = {"from": sender, "text": text, "id": "gw-1"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
        return await c.post("/v1/alerting/sms/replies", json=body, headers={"Authorization": f"Bearer {secret}"})
