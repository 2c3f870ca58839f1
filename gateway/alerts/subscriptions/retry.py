"""When to try a failed delivery again: exponential backoff with jitter, as a pure function.

Jitter spreads the retries of many subscriptions that failed together (one receiver down for all
its subscriptions) so they do not come back in lock-step. The random draw is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one notification, and when a subscription is declared in `error`.

    `max_attempts` tries per notification (the first one included); the subscription goes to
    `error` once `error_after` consecutive attempts have failed (default: one notification's worth).
    """

    max_attempts: int = 6
    base_delay: float = 0.5  # seconds before the first retry
    multiplier: float = 2.0
    max_delay: float = 60.0
    jitter: float = 0.5  # share of each delay that is random: 0 = none, 1 = "full jitter"
    error_after: int | None = None

    @property
    def error_threshold(self) -> int:
        return self.error_after if self.error_after is not None else self.max_attempts


def backoff_delay(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based); `rand` is uniform in [0, 1)."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    ceiling = min(policy.max_delay, policy.base_delay * policy.multiplier ** min(attempt - 1, 64))
    jitter = min(max(policy.jitter, 0.0), 1.0)
    return ceiling * (1.0 - jitter) + ceiling * jitter * min(max(rand, 0.0), 1.0)
