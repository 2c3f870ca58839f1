"""Redis Streams: relay XADDs then marks; consumer groups share work; stuck messages are XAUTOCLAIMed."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from gateway.events import Event, OutboxRelay, RedisStreamBus, pending_count
from gateway.fhir.services import Services
from tests.events.support import Recorder, write_patients


def _bus(redis: Redis, stream: str, consumers: dict[str, Any], name: str, **options: Any) -> RedisStreamBus:
    return RedisStreamBus(redis, consumers, stream=stream, consumer_id=name, block_ms=50, **options)


async def test_relay_adds_to_stream_then_marks_and_a_group_reads_in_order(
    services: Services, redis: Redis, stream: str
) -> None:
    store = services.store
    ids = write_patients(store, 5)
    consumer = Recorder()
    bus = _bus(redis, stream, {"alerts": consumer}, "w1")
    assert await OutboxRelay(store, bus).drain() == 5
    assert pending_count(store) == 0
    assert await redis.xlen(stream) == 5

    assert await bus.read("alerts") == 5
    assert [e.res_id for e in consumer.events] == ids
    assert consumer.seqs == sorted(consumer.seqs)
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0


async def test_each_group_gets_every_event_even_if_created_after_publishing(redis: Redis, stream: str) -> None:
    producer = _bus(redis, stream, {}, "producer")
    events = [_event(seq) for seq in range(1, 4)]
    await producer.publish(events)
    alerts, subs = Recorder(), Recorder()
    bus = _bus(redis, stream, {"alerts": alerts, "subscriptions": subs}, "w1")
    assert await bus.read("alerts") == 3
    assert await bus.read("subscriptions") == 3
    assert alerts.events == events == subs.events


async def test_two_workers_in_one_group_share_events_without_loss(redis: Redis, stream: str) -> None:
    first, second = Recorder(), Recorder()
    bus_a = _bus(redis, stream, {"alerts": first}, "worker-a", batch=1)
    bus_b = _bus(redis, stream, {"alerts": second}, "worker-b", batch=1)
    await bus_a.ensure_group("alerts")
    workers = [asyncio.create_task(bus_a.work("alerts")), asyncio.create_task(bus_b.work("alerts"))]
    try:
        await asyncio.sleep(0.05)
        for seq in range(1, 41):
            await bus_a.publish([_event(seq)])
            if seq % 10 == 0:
                await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while len(first.events) + len(second.events) < 40:
                await asyncio.sleep(0.01)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    got = first.seqs + second.seqs
    assert sorted(got) == list(range(1, 41))  # none lost, none twice
    assert first.events and second.events  # both took a share
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0


async def test_message_read_by_a_dead_worker_is_autoclaimed_by_another(redis: Redis, stream: str) -> None:
    producer = _bus(redis, stream, {}, "producer")
    await producer.publish([_event(1), _event(2)])
    dead = Recorder()
    dead_bus = _bus(redis, stream, {"alerts": dead}, "dead")
    await dead_bus.ensure_group("alerts")
    # The dead worker read both messages and died before handling (no XACK).
    await redis.xreadgroup("alerts", "dead", {stream: ">"}, count=10)

    alive = Recorder()
    alive_bus = _bus(redis, stream, {"alerts": alive}, "alive", claim_idle_ms=50)
    assert await alive_bus.read("alerts") == 0  # nothing new: both are pending on "dead"
    assert await alive_bus.reclaim("alerts") == 0  # not idle long enough yet
    await asyncio.sleep(0.1)
    assert await alive_bus.reclaim("alerts") == 2
    assert alive.seqs == [1, 2] and dead.events == []
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0


async def test_failed_handler_leaves_message_pending_until_a_retry_succeeds(redis: Redis, stream: str) -> None:
    consumer = Recorder(fail=1)
    bus = _bus(redis, stream, {"alerts": consumer}, "w1", claim_idle_ms=30)
    await bus.publish([_event(7)])
    assert await bus.read("alerts") == 0
    assert (await redis.xpending(stream, "alerts"))["pending"] == 1
    await asyncio.sleep(0.06)
    assert await bus.reclaim("alerts") == 1
    assert consumer.seqs == [7]
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0


async def test_worker_restarted_under_its_id_handles_its_own_pending_first(redis: Redis, stream: str) -> None:
    consumer = Recorder()
    bus = _bus(redis, stream, {"alerts": consumer}, "same-id", claim_idle_ms=60_000)
    await bus.publish([_event(1)])
    await bus.ensure_group("alerts")
    await redis.xreadgroup("alerts", "same-id", {stream: ">"}, count=10)  # read, then "crashed"
    task = asyncio.create_task(bus.work("alerts"))
    try:
        await consumer.wait_for(1, timeout=3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert consumer.seqs == [1]


async def test_a_per_message_consumer_is_acked_in_one_command_and_a_failed_message_stays_pending(
    redis: Redis, stream: str
) -> None:
    consumer = Recorder(fail=1)  # the first message fails, the other two are handled
    bus = _bus(redis, stream, {"subscriptions": consumer}, "w1")
    await bus.publish([_event(1), _event(2), _event(3)])
    sent: list[tuple[Any, ...]] = []
    xack = redis.xack

    async def counted(*args: Any) -> Any:
        sent.append(args)
        return await xack(*args)

    redis.xack = counted  # type: ignore[method-assign]
    try:
        assert await bus.read("subscriptions") == 2
    finally:
        redis.xack = xack  # type: ignore[method-assign]
    assert len(sent) == 1 and len(sent[0]) == 4  # stream, group and the two handled ids
    assert consumer.seqs == [2, 3]
    assert (await redis.xpending(stream, "subscriptions"))["pending"] == 1


async def test_the_workers_ack_goes_with_its_next_read(redis: Redis, stream: str) -> None:
    consumer = Recorder()
    bus = _bus(redis, stream, {"alerts": consumer}, "w1")
    await bus.publish([_event(1), _event(2)])
    assert await bus.read("alerts", ack_later=True) == 2
    assert (await redis.xpending(stream, "alerts"))["pending"] == 2  # handled, XACK not sent yet
    await bus.publish([_event(3)])
    assert await bus.read("alerts", ack_later=True) == 1
    assert (await redis.xpending(stream, "alerts"))["pending"] == 1  # the first two acked with this read
    assert await bus.read("alerts") == 0
    assert (await redis.xpending(stream, "alerts"))["pending"] == 0
    assert consumer.seqs == [1, 2, 3]


def _event(seq: int) -> Event:
    from datetime import datetime

    return Event(seq, "Encounter", f"enc-{seq}", 1, "POST", datetime(2026, 1, 1, 12, 0, seq % 60))
