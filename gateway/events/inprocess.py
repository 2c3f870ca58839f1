"""The embedded bus (no Redis): publishing *is* delivery, to every registered consumer in turn.

The relay marks an outbox row dispatched only after `publish` counted it, i.e. after every
consumer returned for it, so a crash or a failing consumer leaves the row to be delivered again.
A failing consumer holds back the events behind it (seq order is kept); consumers that already
handled the failing event are not called again for it while this process lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from gateway.events.model import Consumer, Event

log = structlog.get_logger(__name__)


class InProcessBus:
    def __init__(self, consumers: Mapping[str, Consumer]) -> None:
        self.consumers = dict(consumers)
        self._handled: dict[int, set[str]] = {}  # seq -> consumers done with it, while others retry

    async def publish(self, events: Sequence[Event]) -> int:
        for index, event in enumerate(events):
            done = self._handled.setdefault(event.seq, set())
            for name, consumer in self.consumers.items():
                if name in done:
                    continue
                try:
                    await consumer.handle(event)
                except Exception:
                    log.exception("events.consumer_failed", consumer=name, seq=event.seq, ref=event.reference)
                    return index
                done.add(name)
            del self._handled[event.seq]
        return len(events)

    async def run(self) -> None:
        """Nothing to consume: delivery happens in `publish`."""

    async def close(self) -> None:
        self._handled.clear()
