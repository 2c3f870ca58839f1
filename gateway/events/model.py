"""What travels on the bus: one `Event` per outbox row, and the two roles around it.

An event names a resource version, never carries its content: consumers read the version they
need from the store, so a delayed or repeated event can never resurrect stale data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Event:
    """One committed write, as recorded in the outbox. `seq` is unique and increasing."""

    seq: int
    res_type: str
    res_id: str
    version_id: int
    method: str  # POST / PUT / DELETE
    created_at: datetime  # naive UTC

    @property
    def reference(self) -> str:
        return f"{self.res_type}/{self.res_id}"

    def to_fields(self) -> dict[str, str]:
        """Flat string fields, the shape a Redis stream entry takes."""
        return {
            "seq": str(self.seq),
            "res_type": self.res_type,
            "res_id": self.res_id,
            "version_id": str(self.version_id),
            "method": self.method,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Event:
        f = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            seq=int(f["seq"]),
            res_type=f["res_type"],
            res_id=f["res_id"],
            version_id=int(f["version_id"]),
            method=f["method"],
            created_at=datetime.fromisoformat(f["created_at"]),
        )


def check_cancelled() -> None:
    """Re-raise a cancellation that a library swallowed (redis-py can lose one while a command
    finishes); long-running loops call this each round so `task.cancel()` always ends them."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Consumer(Protocol):
    """Something that reacts to committed writes.

    Delivery is at least once: the same event can arrive again after a crash, a retry or a
    reclaimed Redis message, so `handle` must be idempotent (dedupe by `event.seq`). Raising means
    "not handled": the event is delivered again later; returning means it is done.
    """

    async def handle(self, event: Event) -> None: ...


class BatchConsumer(Consumer, Protocol):
    """A consumer that can take several events at once (one read and one write transaction for
    all of them, say), so its cost per event falls as the load rises.

    `handle_batch` has the same contract as `handle` for every event in it: returning means all
    were handled; raising means none is counted, and the bus hands them over again one by one
    (events already handled inside the failed batch are recognised by seq and skipped).
    """

    async def handle_batch(self, events: Sequence[Event]) -> None: ...


async def handle_in_order(consumer: Consumer, events: Sequence[Event], *, name: str) -> int:
    """Hand `events` to `consumer` (as one batch when it takes batches); how many, from the start, it handled.

    A failed batch is retried event by event, so the count stops exactly at the event that fails.
    """
    if not events:
        return 0
    handle_batch = getattr(consumer, "handle_batch", None)
    if handle_batch is not None and len(events) > 1:
        try:
            await handle_batch(events)
            return len(events)
        except Exception:
            log.warning("events.batch_failed", consumer=name, first_seq=events[0].seq, count=len(events))
    for index, event in enumerate(events):
        try:
            await consumer.handle(event)
        except Exception:
            log.exception("events.consumer_failed", consumer=name, seq=event.seq, ref=event.reference)
            return index
    return len(events)


class EventBus(Protocol):
    """Carries events from the outbox relay to the consumers."""

    async def publish(self, events: Sequence[Event]) -> int:
        """Hand `events` (in seq order) over durably; return how many, from the start, were.

        The relay marks exactly that many outbox rows dispatched, so anything not counted here
        is published again later.
        """
        ...

    async def run(self) -> None:
        """Run the consuming side until cancelled (nothing to do for a bus that delivers in publish)."""
        ...

    async def close(self) -> None: ...
