"""Batch-taking consumers and the running relay's background marks (SQLite).

A consumer with `handle_batch` gets a whole bus batch in one call; if the batch fails, the bus
hands the events over one by one, so the count of handled events stops exactly at the one that
fails. The running relay on SQLite writes a batch's mark in the background and claims the next
batch above the last seq published, so nothing is published twice while a mark is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from redis.asyncio import Redis

from gateway.events import Event, InProcessBus, OutboxRelay, RedisStreamBus, pending_count
from gateway.fhir.services import Services
from tests.events.support import Recorder, write_patients

WHEN = datetime(2026, 1, 1)


@dataclass
class BatchRecorder(Recorder):
    """Records batches; the batch call fails while `fail_batches` > 0 (single events still work)."""

    fail_batches: int = 0
    batches: list[list[int]] = field(default_factory=list)

    async def handle_batch(self, events: Sequence[Event]) -> None:
        if self.fail_batches > 0:
            self.fail_batches -= 1
            raise RuntimeError("batch not ready")
        self.batches.append([e.seq for e in events])
        self.events.extend(events)


async def test_a_batch_consumer_gets_the_whole_batch_in_one_call(services: Services) -> None:
    store = services.store
    write_patients(store, 5)
    batched, single = BatchRecorder(), Recorder()
    relay = OutboxRelay(store, InProcessBus({"batched": batched, "single": single}))

    assert await relay.drain() == 5
    assert len(batched.batches) == 1 and batched.batches[0] == single.seqs
    assert single.calls == 5
    assert pending_count(store) == 0


async def test_a_failed_batch_is_retried_event_by_event_and_stops_at_the_failing_event(services: Services) -> None:
    store = services.store
    write_patients(store, 4)

    @dataclass
    class FailsOnThird(BatchRecorder):
        async def handle(self, event: Event) -> None:
            if len(self.events) == 2 and self.calls == 2:
                self.calls += 1
                raise RuntimeError("third event fails once")
            await super().handle(event)

    consumer = FailsOnThird(fail_batches=1)
    relay = OutboxRelay(store, InProcessBus({"c": consumer}))
    result = await relay.dispatch_once()
    assert (result.claimed, result.dispatched) == (4, 2)
    assert pending_count(store) == 2
    assert await relay.drain() == 2  # the rest comes as a batch again
    assert consumer.seqs == sorted(consumer.seqs) and len(set(consumer.seqs)) == 4


@pytest.mark.parametrize(
    "database", ["sqlite"], indirect=True
)  # background marks are SQLite's (PostgreSQL claims hold row locks until marked)
async def test_running_relay_does_not_republish_while_a_mark_is_in_flight(services: Services) -> None:
    store = services.store
    write_patients(store, 3)
    consumer = Recorder()
    relay = OutboxRelay(store, InProcessBus({"c": consumer}))

    first = await relay.dispatch_once(mark_later=True)
    assert (first.claimed, first.dispatched) == (3, 3)
    write_patients(store, 2)
    second = await relay.dispatch_once(mark_later=True)  # claims above the last seq published
    assert (second.claimed, second.dispatched) == (2, 2)
    await relay.settle()
    assert pending_count(store) == 0
    assert len(consumer.seqs) == 5 == len(set(consumer.seqs))


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # background marks are SQLite's
async def test_background_marks_of_several_batches_wait_and_are_written_together(services: Services) -> None:
    store = services.store
    consumer = Recorder()
    relay = OutboxRelay(store, InProcessBus({"c": consumer}), mark_delay=30.0)
    for _ in range(3):  # a lone sender: one message, one batch of one
        write_patients(store, 1)
        assert (await relay.dispatch_once(mark_later=True)).dispatched == 1
    assert pending_count(store) == 3  # published, marks still queued (a crash now only repeats them)
    assert (await relay.dispatch_once(mark_later=True)).claimed == 0  # nor are they claimed again
    await asyncio.wait_for(relay.settle(), 5)  # settle does not wait out the delay
    assert pending_count(store) == 0
    assert len(consumer.seqs) == 3 == len(set(consumer.seqs))


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_full_batch_of_marks_is_written_without_waiting_out_the_delay(services: Services) -> None:
    store = services.store
    write_patients(store, 2)
    relay = OutboxRelay(store, InProcessBus({"c": Recorder()}), batch_size=2, mark_delay=30.0)
    assert (await relay.dispatch_once(mark_later=True)).dispatched == 2
    for _ in range(200):
        if pending_count(store) == 0:
            break
        await asyncio.sleep(0.01)
    assert pending_count(store) == 0


async def test_running_relay_marks_everything_it_published_before_it_stops(services: Services) -> None:
    store = services.store
    write_patients(store, 6)
    consumer = Recorder()
    relay = OutboxRelay(store, InProcessBus({"c": consumer}), batch_size=2, poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    await consumer.wait_for(6)
    relay.stop()
    await asyncio.wait_for(task, 5)
    assert pending_count(store) == 0
    assert sorted(consumer.seqs) == consumer.seqs and len(set(consumer.seqs)) == 6


async def test_redis_group_hands_a_batch_consumer_all_it_read_and_acks_them_at_once(redis: Redis, stream: str) -> None:
    producer = RedisStreamBus(redis, {}, stream=stream, consumer_id="producer")
    events = [Event(seq, "Patient", f"p{seq}", 1, "POST", WHEN) for seq in range(1, 5)]
    await producer.publish(events)
    batched = BatchRecorder()
    bus = RedisStreamBus(redis, {"alerts": batched}, stream=stream, consumer_id="w1", block_ms=50)

    assert await bus.read("alerts") == 4
    assert batched.batches == [[1, 2, 3, 4]]
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0


async def test_redis_failed_batch_falls_back_to_one_by_one(redis: Redis, stream: str) -> None:
    producer = RedisStreamBus(redis, {}, stream=stream, consumer_id="producer")
    await producer.publish([Event(seq, "Patient", f"p{seq}", 1, "POST", WHEN) for seq in range(1, 4)])
    batched = BatchRecorder(fail_batches=1)
    bus = RedisStreamBus(redis, {"alerts": batched}, stream=stream, consumer_id="w1", block_ms=50)

    assert await bus.read("alerts") == 3
    assert batched.batches == [] and batched.seqs == [1, 2, 3]
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0
