"""Single use of client-assertion `jti`s: a replayed assertion must not buy a second token.

One small Protocol, two implementations: Redis `SET NX EX` (shared by every gateway process)
when a Redis URL is configured, and an in-process expiring set for the embedded single-process
default. A key only needs remembering until the assertion itself expires.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis


class ReplayGuard(Protocol):
    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        """Record `key` for `ttl_seconds`; True the first time, False if it is already recorded."""
        ...


class MemoryReplayGuard:
    """Expiring in-process set. Correct for one process only: several processes need Redis."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        now = self._clock()
        with self._lock:
            expires = self._seen.get(key)
            if expires is not None and expires > now:
                return False
            if len(self._seen) >= self._max:
                self._purge(now)
            if len(self._seen) >= self._max:
                # Full of live entries: refusing is safer than forgetting a jti that is still valid.
                return False
            self._seen[key] = now + max(ttl_seconds, 1.0)
            return True

    def _purge(self, now: float) -> None:
        for k in [k for k, exp in self._seen.items() if exp <= now]:
            del self._seen[k]


class RedisReplayGuard:
    """`SET key 1 NX EX ttl`: atomic across every process that shares the Redis."""

    def __init__(self, redis: Redis, prefix: str = "gateway:auth:jti:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        ok = await self._redis.set(self._prefix + key, b"1", nx=True, ex=max(1, math.ceil(ttl_seconds)))
        return bool(ok)


def replay_guard(redis_url: str | None) -> ReplayGuard:
    """Redis when configured, the in-process set otherwise."""
    if redis_url:
        return RedisReplayGuard(Redis.from_url(redis_url))
    return MemoryReplayGuard()
