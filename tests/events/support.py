"""Helpers shared by the event tests: a recording consumer and writes that make outbox rows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.events import Event
from gateway.store.api import Store

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Recorder:
    """A consumer that records what it got; `fail` failures first, then succeeds."""

    fail: int = 0
    events: list[Event] = field(default_factory=list)
    calls: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, event: Event) -> None:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("consumer not ready")
        self.events.append(event)
        self.changed.set()

    @property
    def seqs(self) -> list[int]:
        return [e.seq for e in self.events]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()


def write_patients(store: Store, count: int) -> list[str]:
    """`count` committed writes (one per transaction); their ids."""
    ids = []
    for _ in range(count):
        ids.append(store.create({"resourceType": "Patient", "active": True}).id)
    return ids
