"""Wiring the event machinery into the app lifespan: the relay and the bus workers as asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Mapping
from typing import Any

from gateway.events.inprocess import InProcessBus
from gateway.events.model import Consumer, EventBus
from gateway.events.redis_bus import RedisStreamBus
from gateway.events.relay import OutboxRelay
from gateway.fhir.services import Services

SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits for it (Python's default: 0.005).

Every database call releases the GIL and must win it back to go on. In a serving gateway many
request threads run Python at once, and with the default each of the relay's and the alert
pipeline's many short statements could wait up to 5 ms for it: an alert write of some fifteen
statements took 75 ms, and at 50 presentations/s the relay fell behind for good (alert latency
of seconds, ingest too). A shorter interval costs a little more switching and keeps the short
steps short.
"""


class EventRuntime:
    """The relay plus the bus's consuming side, started and stopped together."""

    def __init__(self, relay: OutboxRelay, bus: EventBus, *, stop_timeout: float = 5.0) -> None:
        self.relay = relay
        self.bus = bus
        self.stop_timeout = stop_timeout
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def start(self) -> None:
        if self._tasks:
            return
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self._tasks = [
            asyncio.create_task(self.relay.run(), name="events-relay"),
            asyncio.create_task(self.bus.run(), name="events-bus"),
        ]

    async def stop(self) -> None:
        """Let the relay finish the batch in hand, then cancel the rest; what was not dispatched stays
        in the outbox (and what was not acked stays pending in Redis) for next time."""
        if self._tasks:
            self.relay.stop()
            await asyncio.wait(self._tasks[:1], timeout=self.stop_timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.bus.close()


def make_bus(services: Services, consumers: Mapping[str, Consumer], **options: Any) -> EventBus:
    """Redis Streams when `redis_url` is set, otherwise straight from the outbox in this process."""
    url = services.settings.redis_url
    if url:
        return RedisStreamBus.from_url(url, consumers, **options)
    return InProcessBus(consumers)


def install(
    services: Services,
    consumers: dict[str, Consumer],
    *,
    bus_options: Mapping[str, Any] | None = None,
    relay_options: Mapping[str, Any] | None = None,
) -> EventRuntime:
    """Add startup/shutdown hooks that run the relay and the workers; `services.extras["events"]` holds them."""
    bus = make_bus(services, consumers, **dict(bus_options or {}))
    runtime = EventRuntime(OutboxRelay(services.store, bus, **dict(relay_options or {})), bus)
    services.extras.setdefault("startup", []).append(runtime.start)
    services.extras.setdefault("shutdown", []).append(runtime.stop)
    services.extras["events"] = runtime
    return runtime
