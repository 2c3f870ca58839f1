"""SQLite writers of one process take turns (`WriteTurns`) instead of racing in SQLite's busy handler.

The busy handler sleeps in steps growing to 100 ms, so a writer could lose the lock for seconds
under load; queued writers are instead woken in arrival order, the alert path's urgent ones first.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.store.api import Store
from gateway.store.engine import URGENT_WRITES, WriteTurns, make_engine
from gateway.store.migrate import upgrade


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_turns_go_in_arrival_order_urgent_first() -> None:
    turns = WriteTurns()
    turns.acquire(urgent=False)
    order: list[str] = []

    def take(name: str, urgent: bool) -> None:
        turns.acquire(urgent=urgent)
        order.append(name)
        turns.release()

    threads = []
    for name, urgent in (("first", False), ("alert", True), ("second", False)):
        thread = threading.Thread(target=take, args=(name, urgent))
        thread.start()
        threads.append(thread)
        wait_for(lambda n=len(threads): turns.waiting == n, f"{name} queued")
    turns.release()
    for thread in threads:
        thread.join(5)
    assert order == ["alert", "first", "second"]


def test_a_release_hands_the_turn_to_the_next_writer_alone() -> None:
    """Only the writer whose turn it is wakes: the rest stay queued, untouched, until their turn."""
    turns = WriteTurns()
    turns.acquire(urgent=False)
    done: list[str] = []
    go_on = threading.Event()

    def take(name: str) -> None:
        turns.acquire(urgent=False)
        done.append(name)
        go_on.wait(5)
        turns.release()

    threads = [threading.Thread(target=take, args=(name,)) for name in ("a", "b", "c")]
    for n, thread in enumerate(threads, start=1):
        thread.start()
        wait_for(lambda n=n: turns.waiting == n, "queued")
    turns.release()
    assert turns.waiting == 2  # handed over at once, to one waiter
    wait_for(lambda: done == ["a"], "the first in line has the turn")
    time.sleep(0.02)
    assert done == ["a"] and turns.waiting == 2
    go_on.set()
    for thread in threads:
        thread.join(5)
    assert done == ["a", "b", "c"] and turns.waiting == 0
    turns.acquire(urgent=True)  # the last one gave it back: free again
    turns.release()


def test_a_turn_not_given_within_the_timeout_fails_like_a_locked_database() -> None:
    turns = WriteTurns(timeout=0.05)
    turns.acquire(urgent=False)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        turns.acquire(urgent=False)
    assert turns.waiting == 0
    turns.release()
    turns.acquire(urgent=True)  # the queue is clean: the next writer gets in
    turns.release()


def test_concurrent_writers_all_commit_and_hand_the_turn_on(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    upgrade(engine)
    store = Store(engine, fhir_base="http://testserver/fhir")
    errors: list[BaseException] = []

    def write(n: int, urgent: bool) -> None:
        URGENT_WRITES.set(urgent)
        try:
            for i in range(15):
                with store.writer() as uow:
                    uow.create({"resourceType": "Patient", "name": [{"family": f"Turn{n}-{i}"}]})
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n, n % 3 == 0)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM resource WHERE res_type = 'Patient'")).scalar_one() == 90
    with store.writer() as uow:  # every turn was given back: one more writer gets in at once
        uow.create({"resourceType": "Patient"})
    engine.dispose()
