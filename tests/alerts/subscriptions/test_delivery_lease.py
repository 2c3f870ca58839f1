"""Two gateway processes on one PostgreSQL database deliver one subscription's events: a delivery
lease per subscription makes one of them send everything, each event number exactly once, even
when both number events and flush at the same time (before, each flush read the other's events
too, and under load 1,186 notifications went out for 768 alerts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gateway.alerts.subscriptions import (
    Deliverer,
    EventFocus,
    RestHookChannel,
    SubscriptionStateRepository,
    Topic,
)
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade

from .conftest import Receiver
from .test_resthook_delivery import ALERT, BASE, numbers, spec_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def channel() -> AsyncIterator[RestHookChannel]:
    hook = RestHookChannel()
    yield hook
    await hook.aclose()


def deliverer(engine: Engine, channel: RestHookChannel, owner: str) -> Deliverer:
    return Deliverer(SubscriptionStateRepository(engine), {"rest-hook": channel}, fhir_base=BASE, lease_owner=owner)


def number_one(repo: SubscriptionStateRepository, sub_id: str, topic: str, n: int) -> int:
    focus = EventFocus("Communication", f"c{n}", 1, "create", (), ALERT)
    [got] = repo.record_events([(sub_id, topic, focus, None)], now=datetime(2025, 3, 1, 9))
    assert got is not None
    return got[0]


async def test_two_processes_flushing_at_once_send_each_event_once(
    topics: dict[str, Topic], receiver: Receiver, pg_engine: Engine, channel: RestHookChannel
) -> None:
    spec = spec_for(topics, receiver.add("leased"))
    a, b = deliverer(pg_engine, channel, "process-a"), deliverer(pg_engine, channel, "process-b")
    assert (await a.activate(spec)).status == "active"
    repo = SubscriptionStateRepository(pg_engine)

    async def busy(d: Deliverer, first: int) -> None:
        for n in range(first, first + 30):
            await asyncio.to_thread(number_one, repo, spec.id, spec.topic, n)
            await d.flush(spec)  # what a kick does after numbering

    await asyncio.gather(busy(a, 0), busy(b, 100))
    for d in (a, b):  # the timer's round, in both processes
        await d.flush(spec)
        await d.settle()

    sent = [n for _, body in receiver.hooks["leased"].received for n in numbers(body)]
    assert sorted(sent) == list(range(1, 61))  # every event, none twice
    assert repo.undelivered(spec.id) == []
    state = repo.get(spec.id)
    assert state is not None and state.last_delivered_event == 60


async def test_a_holders_lease_runs_out_and_another_process_takes_over(
    topics: dict[str, Topic], receiver: Receiver, pg_engine: Engine, channel: RestHookChannel
) -> None:
    spec = spec_for(topics, receiver.add("orphaned"))
    b = deliverer(pg_engine, channel, "process-b")
    assert (await b.activate(spec)).status == "active"
    repo = SubscriptionStateRepository(pg_engine)
    now = datetime.now()
    held, _, ok = repo.claim(spec.id, "process-dead", now=now, until=now + timedelta(seconds=0.3))
    assert ok and held is not None
    number_one(repo, spec.id, spec.topic, 1)

    assert await b.flush(spec) == 0  # the dead process still holds it
    await asyncio.sleep(0.4)
    assert await b.flush(spec) == 1  # its lease ran out
    await b.settle()
    assert [n for _, body in receiver.hooks["orphaned"].received for n in numbers(body)] == [1]
    assert repo.undelivered(spec.id) == []


async def test_a_process_shutting_down_gives_its_leases_back(
    topics: dict[str, Topic], receiver: Receiver, pg_engine: Engine, channel: RestHookChannel
) -> None:
    spec = spec_for(topics, receiver.add("handover"))
    a, b = deliverer(pg_engine, channel, "process-a"), deliverer(pg_engine, channel, "process-b")
    assert (await a.activate(spec)).status == "active"
    repo = SubscriptionStateRepository(pg_engine)
    now = datetime.now()
    repo.claim(spec.id, "process-a", now=now, until=now + timedelta(minutes=5))  # mid-flush, say
    number_one(repo, spec.id, spec.topic, 1)
    assert await b.flush(spec) == 0

    await a.settle()
    await a.release_leases()
    assert await b.flush(spec) == 1
    await b.settle()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_claim_takes_the_lease_and_reads_what_to_send(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`claim` (one autocommit statement on PostgreSQL, a transaction on SQLite): the state, the
    undelivered events (limit, less those excluded, each with its own topic) and whether it is held."""
    url = request.getfixturevalue("pg_url") if kind == "postgres" else f"sqlite:///{tmp_path / 'g.db'}"
    engine = make_engine(url)
    upgrade(engine)
    try:
        repo = SubscriptionStateRepository(engine)
        now = datetime(2026, 1, 1, 9, 0)
        until = now + timedelta(seconds=15)
        assert repo.claim("nobody", "a", now=now, until=until) == (None, [], False)
        repo.register("s1", "topic-old", now=now)
        state, events, held = repo.claim("s1", "a", now=now, until=until)
        assert state is not None and state.status == "requested" and (events, held) == ([], True)
        repo.set_status("s1", "active", now=now)
        for n in range(4):
            repo.record_event("s1", EventFocus("Communication", f"c{n}", version=1), now=now, topic=f"t{n}")
        repo.register("s1", "topic-new", now=now, status="active")
        state, events, held = repo.claim("s1", "a", now=now, until=until, limit=2, exclude=[1])
        assert held and state is not None and state.topic == "topic-new"
        assert [(e.number, e.topic, e.focus_id, e.delivered_at) for e in events] == [
            (2, "t1", "c1", None),
            (3, "t2", "c2", None),
        ]
        state, events, held = repo.claim("s1", "b", now=now, until=until)  # a holds it
        assert state is not None and state.status == "active" and (events, held) == ([], False)
        state, events, held = repo.claim(
            "s1", "b", now=until + timedelta(seconds=1), until=until + timedelta(seconds=16)
        )
        assert held and [e.number for e in events] == [1, 2, 3, 4]  # a's lease ran out
    finally:
        engine.dispose()


def test_a_claim_waiting_on_a_mark_sees_that_marks_events_delivered(pg_engine: Engine) -> None:
    """A claim that finds the lease free but the status row locked by another process's transaction
    (it took the lease meanwhile, sent, and is marking its events delivered and giving the lease back)
    waits, then must read the events as that transaction left them: read with the snapshot from
    before the wait they looked undelivered, and went out a second time."""
    import threading

    repo = SubscriptionStateRepository(pg_engine)
    now = datetime(2026, 1, 1, 9, 0)
    repo.register("s1", "t", now=now, status="active")
    for n in range(2):
        repo.record_event("s1", EventFocus("Communication", f"c{n}", version=1), now=now)
    until = now + timedelta(seconds=15)
    got: list[tuple[object, list[object], bool]] = []
    with pg_engine.connect() as conn, conn.begin():  # a's transaction, holding the row
        conn.exec_driver_sql("SELECT * FROM subscription_status WHERE sub_id = 's1' FOR UPDATE")
        claiming = threading.Thread(target=lambda: got.append(repo.claim("s1", "b", now=now, until=until)))
        claiming.start()
        claiming.join(0.5)  # b found the lease free and waits for the row
        conn.exec_driver_sql("UPDATE subscription_event SET delivered_at = now() WHERE sub_id = 's1'")
    claiming.join(10)
    [(_, events, held)] = got
    assert held and events == []
