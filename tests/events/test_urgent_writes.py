"""Urgent SQLite writes (the event machinery's): they wait for the write lock by asking again and
again instead of through SQLite's busy handler, and then write exactly as any writer does."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.events.threads import in_thread, in_thread_unhurried
from gateway.fhir.services import Services
from gateway.store.engine import URGENT_WRITES


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # the write-lock poll is SQLite's
async def test_an_urgent_writer_waits_for_a_held_write_lock_then_commits(services: Services) -> None:
    store = services.store
    holder = store.engine.raw_connection()
    holder.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    started = threading.Event()

    def write() -> str:
        assert URGENT_WRITES.get()  # set for every call on the event machinery's pool
        started.set()
        return store.create({"resourceType": "Patient", "active": True}).id

    writing = in_thread(write)
    try:
        task = asyncio.ensure_future(writing)
        await asyncio.to_thread(started.wait, 5)
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting: the lock is held
    finally:
        holder.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]
        holder.close()
    created = await task
    assert store.read("Patient", created).id == created
    assert not URGENT_WRITES.get()  # only inside the pool's calls


async def test_bookkeeping_calls_on_the_pool_are_not_urgent() -> None:
    # the relay's marks: polling for the lock while the intake commits cost more CPU than the message
    assert await in_thread(URGENT_WRITES.get)
    assert not await in_thread_unhurried(URGENT_WRITES.get)
