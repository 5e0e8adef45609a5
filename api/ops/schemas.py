"""Response models of the operations endpoints."""

from __future__ import annotations

from typing import Literal

from api.schemas import ApiModel


class Health(ApiModel):
    """Liveness: the process answers."""

    status: Literal["ok"]


class Check(ApiModel):
    """One dependency check."""

    ok: bool
    detail: str


class Readiness(ApiModel):
    """Readiness: every dependency reachable."""

    status: Literal["ready", "not_ready"]
    database: Check
    broker: Check
