"""Exponential backoff with jitter, as a pure function of the attempt number."""

from __future__ import annotations

import pytest

from gateway.alerts.subscriptions import RetryPolicy, backoff_delay


def test_doubles_without_jitter_and_caps() -> None:
    policy = RetryPolicy(base_delay=1.0, multiplier=2.0, max_delay=10.0, jitter=0.0)
    assert [backoff_delay(a, policy, 0.9) for a in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_stays_within_its_share() -> None:
    policy = RetryPolicy(base_delay=2.0, multiplier=2.0, max_delay=60.0, jitter=0.5)
    assert backoff_delay(2, policy, 0.0) == 2.0  # half of 4 s is fixed
    assert backoff_delay(2, policy, 0.999999) == pytest.approx(4.0, abs=1e-5)
    assert backoff_delay(2, policy, 0.5) == 3.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay(10_000, RetryPolicy(max_delay=30.0, jitter=0.0), 0.5) == 30.0


def test_attempts_start_at_one_and_threshold_defaults_to_attempts() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, RetryPolicy(), 0.5)
    assert RetryPolicy(max_attempts=4).error_threshold == 4
    assert RetryPolicy(max_attempts=4, error_after=10).error_threshold == 10
