"""Event-machinery fixtures: a real Redis stream with a unique name per test (deleted afterwards).
Redis missing = the tests fail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.events.support import REDIS_URL


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    await client.ping()  # no Redis: fail here, loudly
    yield client
    await client.aclose()  # type: ignore[attr-defined]


@pytest.fixture
async def stream(redis: Redis) -> AsyncIterator[str]:
    name = f"test:events:{uuid.uuid4().hex}"
    yield name
    await redis.delete(name)
