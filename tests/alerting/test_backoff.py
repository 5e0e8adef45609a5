"""Retry timing: capped exponential backoff with full jitter, hints and expiry."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from alerting.backoff import BackoffPolicy, ceiling, delay, expires_at, next_attempt_at
from tests.alerting.builders import T0

POLICY = BackoffPolicy()  # 5 s base, ×2, 10 min cap, 24 h expiry


def test_ceiling_doubles_until_the_cap() -> None:
    seconds = [ceiling(n, POLICY).total_seconds() for n in range(1, 11)]
    assert seconds == [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]
    assert ceiling(10_000, POLICY) == POLICY.cap  # no overflow however long it fails


@given(st.integers(min_value=1, max_value=5_000), st.integers(min_value=0, max_value=2**32))
def test_delay_lies_within_zero_and_the_ceiling(failures: int, seed: int) -> None:
    d = delay(failures, POLICY, random.Random(seed))
    assert timedelta(0) <= d <= ceiling(failures, POLICY)


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    rng = random.Random(7)
    draws = [delay(8, POLICY, rng).total_seconds() for _ in range(2_000)]
    assert min(draws) < 30 and max(draws) > 570  # uniform over [0, 600], not clustered
    assert 250 < sum(draws) / len(draws) < 350


def test_same_seed_same_delays() -> None:
    a = [delay(n, POLICY, random.Random(42)) for n in range(1, 6)]
    b = [delay(n, POLICY, random.Random(42)) for n in range(1, 6)]
    assert a == b


def test_retry_after_hint_raises_the_delay_but_never_above_the_cap() -> None:
    rng = random.Random(1)
    assert delay(1, POLICY, rng, hint=timedelta(seconds=120)) == timedelta(seconds=120)
    assert delay(1, POLICY, rng, hint=timedelta(days=365)) == POLICY.cap


def test_next_attempt_until_expiry() -> None:
    rng = random.Random(3)
    when = next_attempt_at(failures=2, created_at=T0, now=T0 + timedelta(seconds=10),
                           policy=POLICY, rng=rng)
    assert when is not None
    assert T0 + timedelta(seconds=10) <= when <= T0 + timedelta(seconds=20)
    assert expires_at(T0, POLICY) == T0 + timedelta(hours=24)
    late = T0 + timedelta(hours=24) - timedelta(seconds=1)
    assert next_attempt_at(failures=30, created_at=T0, now=late, policy=POLICY, rng=rng,
                           hint=timedelta(minutes=5)) is None


@pytest.mark.parametrize("bad", [
    {"base": "PT0S"}, {"base": "PT20M"}, {"factor": 0.5}, {"expire_after": "PT0S"},
])
def test_policy_is_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BackoffPolicy.model_validate(bad)


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        ceiling(0, POLICY)
