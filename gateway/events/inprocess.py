"""The embedded bus (no Redis): publishing *is* delivery, to every registered consumer in turn.

Each consumer gets the whole batch (in one call when it takes batches), then the next one.
Consumers must not rely on an order between them: the Redis bus's groups have none either.

The relay marks an outbox row dispatched only after `publish` counted it, i.e. after every
consumer returned for it, so a crash or a failing consumer leaves the row to be delivered again.
A failing consumer holds back the events behind it (seq order is kept); consumers that already
handled the failing event are not called again for it while this process lives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.events.model import Consumer, Event, handle_in_order


class InProcessBus:
    def __init__(self, consumers: Mapping[str, Consumer]) -> None:
        self.consumers = dict(consumers)
        self._handled: dict[int, set[str]] = {}  # seq -> consumers done with it, while others retry

    async def publish(self, events: Sequence[Event]) -> int:
        limit = len(events)  # events[:limit] are handled by every consumer so far
        for name, consumer in self.consumers.items():
            todo = [e for e in events[:limit] if name not in self._handled.get(e.seq, ())]
            handled = await handle_in_order(consumer, todo, name=name)
            for event in todo[:handled]:
                self._handled.setdefault(event.seq, set()).add(name)
            if handled < len(todo):
                failed = todo[handled].seq
                limit = next(i for i, e in enumerate(events) if e.seq == failed)
        for event in events[:limit]:
            self._handled.pop(event.seq, None)
        return limit

    async def run(self) -> None:
        """Nothing to consume: delivery happens in `publish`."""

    async def close(self) -> None:
        self._handled.clear()
