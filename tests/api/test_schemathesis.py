"""Schemathesis against the live API (real uvicorn server, real PostgreSQL): no 5xx, every response as documented.

Bounded for the suite; set MINEWATCH_SCHEMATHESIS_EXAMPLES (e.g. 200) to run it in depth.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alerting.inbound import inbound_config
from api.app import create_app
from launcher.embedded import free_port
from minewatch.settings import Settings
from tests.api.conftest import NOW, settings_for
from tests.api.scenario import World, seed

pytestmark = pytest.mark.integration

# Every check but one: a schema-valid request may still be refused on purpose (an opaque cursor
# not issued by us, since after until, a case action in the wrong state), which that check
# would call a failure.
EXAMPLES = int(os.environ.get("MINEWATCH_SCHEMATHESIS_EXAMPLES", "4"))


class LiveServer:
    """uvicorn serving the app on a free port, in a thread with its own event loop."""

    def __init__(self, dsn: str) -> None:
        self.port = free_port()
        # The SMS reply webhook answers 503 without a shared secret, by design; with one set, the
        # admin token it is sent here is simply the wrong secret (401).
        replies = inbound_config({"MINEWATCH_SMS_INBOUND_SECRET": "schemathesis-secret"})
        config = uvicorn.Config(create_app(settings_for(dsn), sms_replies=replies), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-live", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live(db: str) -> Iterator[tuple[LiveServer, World]]:
    world = asyncio.run(seed(db, NOW))
    with LiveServer(db) as server:
        yield server, world


# The document is the app's own (building it needs no database); requests go to the live server.
schema = schemathesis.openapi.from_dict(create_app(Settings()).openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_conforms(case: Any, live: tuple[LiveServer, World]) -> None:
    server, world = live
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {world.tokens['admin']}"},
                           excluded_checks=[positive_data_acceptance])
