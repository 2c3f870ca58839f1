"""Embedded mode (no Redis): the relay delivers straight from the outbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from gateway.events import InProcessBus, OutboxRelay, pending_count
from gateway.fhir.services import Services
from gateway.store.api import Store
from gateway.store.schema import outbox
from tests.events.support import Recorder, write_patients


def _outbox(store: Store) -> list[tuple[int, str, bool]]:
    with store.reader() as uow:
        rows = uow.conn.execute(select(outbox).order_by(outbox.c.seq))
        return [(r.seq, r.res_id, r.dispatched_at is not None) for r in rows]


async def test_every_committed_write_reaches_consumers_in_seq_order(services: Services) -> None:
    store = services.store
    ids = write_patients(store, 7)
    first, second = Recorder(), Recorder()
    relay = OutboxRelay(store, InProcessBus({"a": first, "b": second}), batch_size=3)

    assert await relay.drain() == 7

    rows = _outbox(store)
    assert [e.seq for e in first.events] == [r[0] for r in rows]
    assert [e.res_id for e in first.events] == ids
    assert second.seqs == first.seqs
    assert all(e.method == "POST" and e.version_id == 1 and e.res_type == "Patient" for e in first.events)
    assert all(dispatched for _, _, dispatched in rows)
    assert await relay.drain() == 0  # nothing delivered twice


async def test_failing_consumer_is_retried_and_nothing_marked_until_it_succeeds(services: Services) -> None:
    store = services.store
    write_patients(store, 3)
    steady, flaky = Recorder(), Recorder(fail=2)
    relay = OutboxRelay(store, InProcessBus({"steady": steady, "flaky": flaky}))

    for _ in range(2):
        result = await relay.dispatch_once()
        assert (result.claimed, result.dispatched) == (3, 0)
        assert pending_count(store) == 3
    assert flaky.events == []

    result = await relay.dispatch_once()
    assert result.complete and result.dispatched == 3
    assert pending_count(store) == 0
    assert flaky.seqs == steady.seqs and len(steady.seqs) == 3
    assert steady.calls == 3  # not called again for the event it had already handled


async def test_failure_mid_batch_marks_only_the_delivered_prefix(services: Services) -> None:
    store = services.store
    write_patients(store, 4)

    class FailsOnThird(Recorder):
        async def handle(self, event: object) -> None:
            if len(self.events) == 2 and self.calls == 2:
                self.calls += 1
                raise RuntimeError("third event fails once")
            await super().handle(event)  # type: ignore[arg-type]

    consumer = FailsOnThird()
    relay = OutboxRelay(store, InProcessBus({"c": consumer}))
    result = await relay.dispatch_once()
    assert (result.claimed, result.dispatched) == (4, 2)
    assert [d for _, _, d in _outbox(store)] == [True, True, False, False]
    assert await relay.drain() == 2
    assert consumer.seqs == sorted(consumer.seqs) and len(consumer.seqs) == 4


async def test_restart_republishes_only_undispatched_rows(services: Services) -> None:
    store = services.store
    write_patients(store, 3)
    before = Recorder()
    assert await OutboxRelay(store, InProcessBus({"c": before})).drain() == 3

    # A "crash": the consumer raised, so these two stay undispatched; a new relay picks them up.
    later = write_patients(store, 2)
    assert await OutboxRelay(store, InProcessBus({"c": Recorder(fail=1)})).drain() == 0
    after = Recorder()
    assert await OutboxRelay(store, InProcessBus({"c": after})).drain() == 2
    assert [e.res_id for e in after.events] == later
    assert set(after.seqs).isdisjoint(before.seqs)


async def test_running_relay_wakes_on_commit_and_polls_for_other_processes(services: Services) -> None:
    store = services.store
    consumer = Recorder()
    relay = OutboxRelay(store, InProcessBus({"c": consumer}), poll_interval=30.0)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.05)
        await asyncio.to_thread(write_patients, store, 2)
        await consumer.wait_for(2, timeout=3.0)  # far sooner than the 30 s poll: the commit hint woke it

        # A write by another process sends no hint here; only the poll finds it.
        relay.stop()  # (the relay is already in its 30 s wait: restart it with a short poll)
        await asyncio.wait_for(task, 5)
        relay.poll_interval = 0.05
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.1)
        other = Store(store.engine, fhir_base=store.fhir_base)
        await asyncio.to_thread(write_patients, other, 1)
        await consumer.wait_for(3, timeout=3.0)
        async with asyncio.timeout(3.0):
            while pending_count(store):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert consumer.seqs == sorted(consumer.seqs) and len(set(consumer.seqs)) == 3


async def test_updates_and_deletes_carry_version_and_method(services: Services) -> None:
    store = services.store
    created = store.create({"resourceType": "Patient", "active": True})
    store.update({"resourceType": "Patient", "id": created.id, "active": False})
    with store.writer() as uow:
        uow.delete("Patient", created.id)
    consumer = Recorder()
    await OutboxRelay(store, InProcessBus({"c": consumer})).drain()
    assert [(e.method, e.version_id) for e in consumer.events] == [("POST", 1), ("PUT", 2), ("DELETE", 3)]


async def test_stop_ends_the_loop_even_while_backing_off(services: Services) -> None:
    write_patients(services.store, 1)
    consumer = Recorder(fail=1000)
    relay = OutboxRelay(services.store, InProcessBus({"c": consumer}), retry_base=60.0)
    task = asyncio.create_task(relay.run())
    async with asyncio.timeout(3):
        while consumer.calls == 0:
            await asyncio.sleep(0.01)
    relay.stop()
    await asyncio.wait_for(task, 2.0)  # well inside the 60 s backoff
    assert consumer.calls == 1 and pending_count(services.store) == 1
