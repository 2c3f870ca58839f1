"""jti single use: the in-process guard and the Redis `SET NX EX` guard behave the same."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from gateway.auth.replay import MemoryReplayGuard, RedisReplayGuard, replay_guard

REDIS_URL = "redis://127.0.0.1:6379/0"


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_guard_refuses_second_use_until_expiry() -> None:
    ticker = Ticker()
    guard = MemoryReplayGuard(clock=ticker)
    assert await guard.first_use("app:1", 60)
    assert not await guard.first_use("app:1", 60)
    assert await guard.first_use("app:2", 60)
    ticker.now = 61
    assert await guard.first_use("app:1", 60)  # forgotten only once the assertion itself has expired


async def test_memory_guard_fails_closed_when_full_of_live_entries() -> None:
    ticker = Ticker()
    guard = MemoryReplayGuard(clock=ticker, max_entries=2)
    assert await guard.first_use("a", 60) and await guard.first_use("b", 60)
    assert not await guard.first_use("c", 60)
    ticker.now = 61  # expired entries are purged to make room
    assert await guard.first_use("c", 60)


def test_factory_picks_memory_without_redis() -> None:
    assert isinstance(replay_guard(None), MemoryReplayGuard)
    assert isinstance(replay_guard(REDIS_URL), RedisReplayGuard)


@pytest.mark.redis
async def test_redis_guard_is_set_nx_with_expiry() -> None:
    redis = Redis.from_url(REDIS_URL)
    prefix = f"test:auth:{uuid.uuid4().hex}:"
    try:
        guard = RedisReplayGuard(redis, prefix=prefix)
        other_process = RedisReplayGuard(Redis.from_url(REDIS_URL), prefix=prefix)
        assert await guard.first_use("app:jti-1", 30.2)
        assert not await other_process.first_use("app:jti-1", 30)
        ttl = await redis.ttl(prefix + "app:jti-1")
        assert 29 <= ttl <= 31
        await other_process._redis.aclose()  # type: ignore[attr-defined]
    finally:
        await redis.delete(prefix + "app:jti-1")
        await redis.aclose()  # type: ignore[attr-defined]
