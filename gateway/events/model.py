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
