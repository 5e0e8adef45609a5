"""Settings of the alerting workers, read once from `MINEWATCH_ALERTING_*` by the caller's `main()`.

Secrets never live here: the settings name the environment variables that hold them (the
SMS gateway's auth value, the inbound-reply shared secret), and the webhook secrets are named
per receiver in the routing file. Nested values (`escalation`, `backoff`, `sms_gateway`) are
given as JSON, e.g. `MINEWATCH_ALERTING_ESCALATION='{"ack_window": "PT30M"}'`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerting.backoff import BackoffPolicy
from alerting.errors import AlertingError
from alerting.escalation import EscalationPolicy
from alerting.notifiers.sms_gateway import SmsGatewayConfig
from alerting.pipeline.types import DEFAULT_GROUP_WINDOW
from minewatch.errors import ConfigError
from minewatch.validation import Loc, describe, key_path

ENV_PREFIX = "MINEWATCH_ALERTING_"
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]


class AlertingSettingsError(AlertingError, ConfigError):
    """The alerting settings are invalid; the message names the variable and what is allowed."""


def sample_routing_path() -> Path:
    """The routing file shipped for the sample registry."""
    return Path(str(resources.files("alerting") / "routing_sample.yaml"))


class AlertingSettings(BaseSettings):
    """How the case worker and the delivery worker run."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    routing_path: Path = Field(default_factory=sample_routing_path)
    # None: SMS go to the log adapter (development); otherwise the generic HTTP gateway.
    sms_gateway: SmsGatewayConfig | None = None
    # The environment variable holding the shared secret the SMS provider presents on its
    # reply webhook; while it is unset the reply endpoint refuses everything (503).
    inbound_secret_env: EnvName = "MINEWATCH_SMS_INBOUND_SECRET"  # noqa: S105 (a variable name, not a secret)
    # A claimed outbox row is invisible to other deliverers for this long; it must outlast one
    # HTTP attempt (the timeout) with margin, or a slow send would be picked up twice.
    lease_s: float = Field(default=30.0, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0)
    # LISTEN wakes the workers at once; the poll is the fallback for a lost notification and
    # what makes timers (escalations, group windows, retries) fire, so 1 s bounds their lag.
    poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    # Rows per transaction: large enough to amortise round trips, small enough that a batch
    # commits in well under a second and locks little.
    findings_batch: int = Field(default=200, ge=1, le=10_000)
    effects_batch: int = Field(default=500, ge=1, le=10_000)
    # Each lane claims its own batch and sends it concurrently, so one slow receiver holds up
    # one lane's batch, not the others.
    delivery_batch: int = Field(default=100, ge=1, le=5_000)
    delivery_lanes: int = Field(default=4, ge=1, le=64)
    # HTTP requests in flight at once per process (shared out among the lanes). httpx's connection pool slows down as it
    # grows (bench/alerting: ~1 000 requests/s with 1–8 connections, ~250 with 128 on two
    # cores), and receivers are regulators' servers, not CDNs: a few connections are kinder.
    delivery_concurrency: int = Field(default=8, ge=1, le=1000)
    drain_timeout_s: float = Field(default=10.0, ge=0)
    metrics_interval_s: float = Field(default=5.0, gt=0)
    group_window_s: float = Field(default=DEFAULT_GROUP_WINDOW.total_seconds(), ge=0, le=3600)
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    backoff: BackoffPolicy = Field(default_factory=BackoffPolicy)

    @model_validator(mode="after")
    def _lease_outlasts_attempt(self) -> AlertingSettings:
        if self.lease_s <= self.http_timeout_s:
            raise ValueError(f"lease_s ({self.lease_s}) must exceed http_timeout_s "
                             f"({self.http_timeout_s}): a send still in flight when its lease "
                             f"ends is sent a second time by another deliverer")
        return self

    @property
    def lease(self) -> timedelta:
        """How long a claimed outbox row stays claimed."""
        return timedelta(seconds=self.lease_s)

    @property
    def group_window(self) -> timedelta:
        """Notifications of one mine to one receiver within this window become one message."""
        return timedelta(seconds=self.group_window_s)


def load_alerting_settings(environ: Mapping[str, str], **overrides: object) -> AlertingSettings:
    """Read the settings from `environ` (the environment a process's main() was given) and
    `overrides`; errors name the environment variable and the problem."""
    env = environ
    values: dict[str, object] = {
        name: env[ENV_PREFIX + name.upper()]
        for name in AlertingSettings.model_fields if ENV_PREFIX + name.upper() in env
    }
    values.update(overrides)
    try:
        # Values are passed explicitly (strings are parsed as the env source would), so the
        # process environment is read in exactly one place.
        return AlertingSettings.model_validate(_parse_json_fields(values))
    except ValidationError as exc:
        raise AlertingSettingsError(describe(exc, source="environment", what="alerting settings",
                                             model=AlertingSettings, locate=_variable)) from exc


def _variable(loc: Loc) -> str:
    """The variable an error is about (`MINEWATCH_ALERTING_ESCALATION.ack_windw` for a key of
    its JSON); a check across variables names them all (`MINEWATCH_ALERTING_*`)."""
    if not loc:
        return ENV_PREFIX + "*"
    head = str(loc[0])
    return ENV_PREFIX + head.upper() + key_path(loc)[len(head):]


_JSON_FIELDS = frozenset({"sms_gateway", "escalation", "backoff"})


def _parse_json_fields(values: dict[str, object]) -> dict[str, object]:
    out = dict(values)
    for name in _JSON_FIELDS & out.keys():
        raw = out[name]
        if isinstance(raw, str):
            try:
                out[name] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise AlertingSettingsError(f"{ENV_PREFIX}{name.upper()}: not valid JSON: {exc}") from exc
    return out
