"""When to retry a failed delivery: capped exponential backoff with full jitter, and expiry.

Pure: the caller passes `now` and a `random.Random` (seeded in tests). Full jitter (a delay
drawn uniformly from [0, min(cap, base·factorⁿ⁻¹)]) spreads the retries of many outbox rows
that failed together (a gateway outage) instead of having them all return at once.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, model_validator


class BackoffPolicy(BaseModel):
    """Retry timing of the outbox; validated at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # First retry within 5 s: most failures are a blip, and an alarm should not wait long.
    base: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    # Never wait more than 10 min between tries: a restored gateway is used again soon.
    cap: timedelta = timedelta(minutes=10)
    # After a day an alarm is history; the case has escalated by other channels long since.
    expire_after: timedelta = timedelta(hours=24)

    @model_validator(mode="after")
    def _sane(self) -> BackoffPolicy:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if self.expire_after <= timedelta(0):
            raise ValueError("expire_after must be positive")
        return self


def ceiling(failures: int, policy: BackoffPolicy) -> timedelta:
    """The largest delay after `failures` failed attempts (1 for the first failure)."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    try:
        raw = policy.base.total_seconds() * policy.factor ** (failures - 1)
    except OverflowError:
        raw = float("inf")
    return policy.cap if raw >= policy.cap.total_seconds() else timedelta(seconds=raw)


def delay(
    failures: int,
    policy: BackoffPolicy,
    rng: random.Random,
    *,
    hint: timedelta | None = None,
) -> timedelta:
    """The wait before the next attempt: uniform in [0, ceiling]; a receiver's Retry-After
    `hint` raises it (never above the cap, so a hostile header cannot park a message)."""
    drawn = timedelta(seconds=rng.uniform(0.0, ceiling(failures, policy).total_seconds()))
    if hint is not None and hint > drawn:
        drawn = min(hint, policy.cap)
    return drawn


def expires_at(created_at: datetime, policy: BackoffPolicy) -> datetime:
    """When a notification created at `created_at` stops being tried."""
    return created_at + policy.expire_after


def next_attempt_at(
    *,
    failures: int,
    created_at: datetime,
    now: datetime,
    policy: BackoffPolicy,
    rng: random.Random,
    hint: timedelta | None = None,
) -> datetime | None:
    """When to try again after the latest failure at `now`, or None when the notification has
    expired or the next attempt would fall after its expiry (record it as expired)."""
    when = now + delay(failures, policy, rng, hint=hint)
    return when if when < expires_at(created_at, policy) else None
