"""The event bus fed from the store's transactional outbox (in-process, or Redis Streams).

Contract for consumers: `handle(event)` is called at least once per committed write; dedupe by
`event.seq`, read the resource version from the store, raise to have the event delivered again.
"""

from __future__ import annotations

from gateway.events.inprocess import InProcessBus
from gateway.events.model import Consumer, Event, EventBus
from gateway.events.outbox import OutboxClaim, claim, pending_count
from gateway.events.redis_bus import DEFAULT_STREAM, RedisStreamBus
from gateway.events.relay import OutboxRelay, RelayResult
from gateway.events.runtime import EventRuntime, install, make_bus

__all__ = [
    "DEFAULT_STREAM",
    "Consumer",
    "Event",
    "EventBus",
    "EventRuntime",
    "InProcessBus",
    "OutboxClaim",
    "OutboxRelay",
    "RedisStreamBus",
    "RelayResult",
    "claim",
    "install",
    "make_bus",
    "pending_count",
]
