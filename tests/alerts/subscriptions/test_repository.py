"""Event numbering and subscription state on a migrated SQLite store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from gateway.alerts.subscriptions import EventFocus, SubscriptionStateRepository, heartbeat_due
from gateway.alerts.subscriptions.repository import _PG_KNOWN_SQL
from gateway.codes import TOPIC_PRESENTED
from gateway.fhir.errors import FhirError
from gateway.store.api import Store
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.schema import metadata

NOW = datetime(2025, 3, 1, 9, 0, 0)
FOCUS = EventFocus("Communication", "c1", version=1, interaction="create", context=("Encounter/e1",))


def test_migration_matches_schema_for_subscription_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if "subscription" in repr(d)] == []


def test_numbers_start_at_one_and_count_up(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    repo.register("s2", TOPIC_PRESENTED, now=NOW)
    assert [repo.record_event("s1", FOCUS, now=NOW) for _ in range(3)] == [1, 2, 3]
    assert repo.record_event("s2", FOCUS, now=NOW) == 1  # per subscription
    state = repo.get("s1")
    assert state is not None and state.events_since_start == 3 and state.status == "requested"
    [first] = repo.events("s1", 1, 1)
    assert (first.focus_reference, first.focus_version, first.interaction, first.context) == (
        "Communication/c1",
        1,
        "create",
        ("Encounter/e1",),
    )


def test_concurrent_writers_never_share_a_number(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(lambda _: repo.record_event("s1", FOCUS, now=NOW), range(80)))
    assert sorted(numbers) == list(range(1, 81))
    assert [e.number for e in repo.events("s1")] == list(range(1, 81))


def test_unknown_subscription_is_not_found(repo: SubscriptionStateRepository) -> None:
    with pytest.raises(FhirError) as caught:
        repo.record_event("nope", FOCUS, now=NOW)
    assert caught.value.status == 404


def test_delivery_bookkeeping(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW, heartbeat_period=60)
    repo.set_status("s1", "active", now=NOW)
    for _ in range(4):
        repo.record_event("s1", FOCUS, now=NOW)
    failed = repo.mark_failed("s1", [1, 2], "endpoint answered HTTP 503", now=NOW)
    assert failed.error_count == 1 and failed.last_error == "endpoint answered HTTP 503"
    done = repo.mark_delivered("s1", [2, 3], now=NOW + timedelta(seconds=5))
    assert done.last_delivered_event == 3 and done.error_count == 0 and done.last_error is None
    assert done.next_heartbeat == NOW + timedelta(seconds=65)
    assert [e.number for e in repo.undelivered("s1")] == [1, 4]
    assert [(e.number, e.attempts) for e in repo.events("s1", 1, 2)] == [(1, 1), (2, 2)]
    assert repo.pending_subscriptions() == ["s1"]


def test_delivery_brings_error_back_to_active(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    repo.set_status("s1", "error", now=NOW, error="down")
    assert repo.mark_delivered("s1", [], now=NOW).status == "active"


def test_events_range(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    for _ in range(6):
        repo.record_event("s1", FOCUS, now=NOW)
    assert [e.number for e in repo.events("s1", since=3)] == [3, 4, 5, 6]
    assert [e.number for e in repo.events("s1", until=2)] == [1, 2]
    assert [e.number for e in repo.events("s1", 2, 5, limit=2)] == [2, 3]


def test_register_again_keeps_numbers_and_running_status(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    repo.set_status("s1", "active", now=NOW)
    repo.record_event("s1", FOCUS, now=NOW)
    again = repo.register("s1", TOPIC_PRESENTED, now=NOW, heartbeat_period=30)
    assert (again.status, again.events_since_start, again.heartbeat_period) == ("active", 1, 30)
    repo.set_status("s1", "error", now=NOW)
    assert repo.register("s1", TOPIC_PRESENTED, now=NOW).status == "requested"  # retry handshake
    assert repo.register("s1", TOPIC_PRESENTED, now=NOW, status="off").status == "off"


def test_heartbeats_due_only_for_active(repo: SubscriptionStateRepository) -> None:
    repo.register("beat", TOPIC_PRESENTED, now=NOW, heartbeat_period=30)
    repo.register("quiet", TOPIC_PRESENTED, now=NOW)
    repo.register("broken", TOPIC_PRESENTED, now=NOW, heartbeat_period=30)
    for sub in ("beat", "quiet", "broken"):
        repo.set_status(sub, "active", now=NOW)
    repo.set_status("broken", "error", now=NOW)
    assert repo.due_heartbeats(NOW + timedelta(seconds=29)) == []
    assert repo.due_heartbeats(NOW + timedelta(seconds=30)) == ["beat"]
    state = repo.get("beat")
    assert state is not None and heartbeat_due(state, NOW + timedelta(seconds=30))
    repo.schedule_heartbeat("beat", now=NOW + timedelta(seconds=30))
    assert repo.due_heartbeats(NOW + timedelta(seconds=59)) == []


def test_off_clears_heartbeat_and_remove_forgets(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW, heartbeat_period=30)
    repo.set_status("s1", "active", now=NOW)
    repo.record_event("s1", FOCUS, now=NOW)
    off = repo.set_status("s1", "off", now=NOW)
    assert off.next_heartbeat is None
    repo.remove("s1")
    assert repo.get("s1") is None and repo.events("s1") == []


def test_record_event_in_callers_transaction_rolls_back_with_it(
    engine: Engine, repo: SubscriptionStateRepository
) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert repo.record_event("s1", FOCUS, now=NOW, conn=conn) == 1
        raise RuntimeError("the resource write failed")
    assert repo.events("s1") == []
    assert repo.record_event("s1", FOCUS, now=NOW) == 1


@pytest.mark.postgres
def test_concurrent_writers_on_postgres(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        repo = SubscriptionStateRepository(engine)
        repo.register("s1", TOPIC_PRESENTED, now=NOW)
        with ThreadPoolExecutor(max_workers=8) as pool:
            numbers = list(pool.map(lambda _: repo.record_event("s1", FOCUS, now=NOW), range(80)))
        assert sorted(numbers) == list(range(1, 81))
        state = repo.get("s1")
        assert state is not None and state.events_since_start == 80
    finally:
        engine.dispose()


def test_a_redelivered_focus_version_keeps_its_number(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    first = repo.record_event("s1", FOCUS, now=NOW, once_per_version=True)
    again = repo.record_event("s1", FOCUS, now=NOW, once_per_version=True)
    newer = EventFocus("Communication", "c1", version=2, interaction="update")
    assert (first, again, repo.record_event("s1", newer, now=NOW, once_per_version=True)) == (1, 1, 2)
    state = repo.get("s1")
    assert state is not None and state.events_since_start == 2


def test_record_events_numbers_a_batch_in_one_go_and_once_per_focus_version(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    repo.register("off", TOPIC_PRESENTED, now=NOW, status="off")
    second = EventFocus("Communication", "c2", version=1)
    got = repo.record_events(
        [
            ("s1", TOPIC_PRESENTED, FOCUS, None),
            ("s1", TOPIC_PRESENTED, second, None),
            ("new", TOPIC_PRESENTED, FOCUS, 60),  # not registered yet: registered `requested`
            ("off", TOPIC_PRESENTED, FOCUS, None),  # the client turned it off: nothing numbered
        ],
        now=NOW,
    )
    assert got == [(1, True), (2, True), (1, True), None]
    new = repo.get("new")
    assert new is not None and new.status == "requested" and new.heartbeat_period == 60

    # the same focus versions again (a redelivered bus batch): same numbers, no gap, nothing new
    again = repo.record_events([("s1", TOPIC_PRESENTED, second, None), ("s1", TOPIC_PRESENTED, FOCUS, None)], now=NOW)
    assert again == [(2, False), (1, False)]
    assert repo.record_events(
        [("s1", TOPIC_PRESENTED, EventFocus("Communication", "c1", version=2), None)], now=NOW
    ) == [(3, True)]
    assert [e.number for e in repo.events("s1")] == [1, 2, 3]


def test_a_focus_version_twice_in_one_batch_gets_one_number(repo: SubscriptionStateRepository) -> None:
    repo.register("s1", TOPIC_PRESENTED, now=NOW)
    unversioned = EventFocus("Communication", "c9")  # no version: numbered every time
    got = repo.record_events(
        [
            ("s1", TOPIC_PRESENTED, FOCUS, None),
            ("s1", TOPIC_PRESENTED, unversioned, None),
            ("s1", TOPIC_PRESENTED, FOCUS, None),
            ("s1", TOPIC_PRESENTED, unversioned, None),
        ],
        now=NOW,
    )
    assert got == [(1, True), (2, True), (1, False), (3, True)]
    assert [(e.number, e.focus_id) for e in repo.events("s1")] == [(1, "c1"), (2, "c9"), (3, "c9")]


def test_batches_over_the_same_subscriptions_in_opposite_orders_never_deadlock(pg_url: str) -> None:
    """Two gateway processes number and mark batches that name the same subscriptions in opposite
    orders; PostgreSQL once found deadlocks there (rows locked in batch order). Locked in id order,
    every batch goes through and the numbers stay gap-free."""
    engine = make_engine(pg_url)
    upgrade(engine)
    try:
        repo = SubscriptionStateRepository(engine)
        subs = [f"s{i}" for i in range(6)]
        for sub in subs:
            repo.register(sub, TOPIC_PRESENTED, now=NOW)

        def batch(n: int) -> None:
            order = subs if n % 2 else list(reversed(subs))
            focus = EventFocus("Communication", f"c{n}", version=1)
            got = repo.record_events([(s, TOPIC_PRESENTED, focus, None) for s in order], now=NOW)
            numbers = [[g[0]] for g in got if g is not None]
            repo.mark_delivered_many(list(zip(order, numbers, strict=True)), now=NOW)

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(batch, range(40)))
        for sub in subs:
            assert [e.number for e in repo.events(sub)] == list(range(1, 41))
            assert repo.undelivered(sub) == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_known_numbers_on_postgres_are_focus_index_probes_whatever_the_statistics(pg_store: Store) -> None:
    """Analysed while the log was empty (the alert bench; autovacuum off), the IN-list lookup of the
    numbers focus versions already have walked every event of every subscription asked about
    (~1,150 buffers a call in the bench); the probes stay on the focus index and find the same."""
    repo = SubscriptionStateRepository(pg_store.engine)
    subs = [f"s{n:02d}" for n in range(20)]
    for sub_id in subs:
        repo.register(sub_id, TOPIC_PRESENTED, now=NOW)
    with pg_store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE subscription_event")
    for sub_id in subs:
        foci = [EventFocus("Communication", f"c{n}", version=1, interaction="create") for n in range(150)]
        repo.record_events([(sub_id, TOPIC_PRESENTED, focus, None) for focus in foci], now=NOW)
    with pg_store.engine.connect() as conn:
        params = {"subs": subs[:2], "types": ["Communication"] * 2, "ids": ["c7", "c8"]}
        plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + _PG_KNOWN_SQL, params))
        assert "ix_subscription_event_focus" in plan and "ix_subscription_event_pending" not in plan, plan
        foci = [("Communication", "c7", 1), ("Communication", "c7", 2), ("Communication", "nope", 1)]
        assert repo.numbered_versions(conn, subs[3:5], foci) == {("Communication", "c7", 1)}
    again = EventFocus("Communication", "c9", version=1, interaction="create")
    newer = EventFocus("Communication", "c9", version=2, interaction="update")
    numbered = repo.record_events(
        [("s05", TOPIC_PRESENTED, again, None), ("s05", TOPIC_PRESENTED, newer, None)], now=NOW
    )
    assert numbered == [(10, False), (151, True)]


@pytest.mark.postgres
def test_numbering_a_transactions_own_writes_on_postgres(pg_store: Store) -> None:
    """The alert's path (`written_here`): one statement per subscription bumps and logs; an `off`
    subscription gets nothing, an unknown one is registered `requested` and numbered, all in the
    caller's transaction, and concurrent writers never share a number."""
    repo = SubscriptionStateRepository(pg_store.engine)
    for sub_id in ("s1", "s2", "s3"):
        repo.register(sub_id, TOPIC_PRESENTED, now=NOW)
    repo.set_status("s3", "off", now=NOW)
    assert repo.record_event("s1", FOCUS, now=NOW) == 1
    foci = [
        EventFocus("Communication", f"n{i}", version=1, interaction="create", context=("Encounter/e",))
        for i in range(3)
    ]
    items = [("s2", TOPIC_PRESENTED, foci[0], None), ("s1", TOPIC_PRESENTED, foci[0], None)]
    items += [("s3", TOPIC_PRESENTED, foci[1], None), ("s1", TOPIC_PRESENTED, foci[1], None)]
    items += [("s4", TOPIC_PRESENTED, foci[2], 60)]
    with pg_store.engine.begin() as conn:
        got = repo.record_events(items, now=NOW, conn=conn, written_here=True)
    assert got == [(1, True), (2, True), None, (3, True), (1, True)]
    logged = [(e.number, e.focus_id, e.context) for e in repo.events("s1")]
    assert logged == [(1, "c1", ("Encounter/e1",)), (2, "n0", ("Encounter/e",)), (3, "n1", ("Encounter/e",))]
    s4 = repo.get("s4")
    assert s4 is not None and (s4.status, s4.events_since_start, s4.heartbeat_period) == ("requested", 1, 60)
    with pytest.raises(RuntimeError), pg_store.engine.begin() as conn:
        repo.record_events([("s1", TOPIC_PRESENTED, foci[2], None)], now=NOW, conn=conn, written_here=True)
        raise RuntimeError("the alert's write failed")
    assert [e.number for e in repo.events("s1")] == [1, 2, 3]

    def number(i: int) -> int | None:
        focus = EventFocus("Communication", f"t{i}", version=1, interaction="create")
        with pg_store.engine.begin() as conn:
            [got] = repo.record_events([("s2", TOPIC_PRESENTED, focus, None)], now=NOW, conn=conn, written_here=True)
        return got[0] if got is not None else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(number, range(40)))
    assert sorted(n for n in numbers if n is not None) == list(range(2, 42))
