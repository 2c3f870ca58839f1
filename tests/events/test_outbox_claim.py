"""Several gateway processes on one PostgreSQL: claims never overlap, and a dead claimer's rows come back."""

from __future__ import annotations

from gateway.events import claim, pending_count
from gateway.events.outbox import _mark_sql
from gateway.store.api import Store
from tests.events.support import write_patients


def test_concurrent_claims_take_disjoint_rows_in_seq_order(pg_store: Store) -> None:
    write_patients(pg_store, 5)
    first = claim(pg_store, 3)
    second = claim(pg_store, 3)  # another process: skips the locked rows
    try:
        a, b = [e.seq for e in first.events], [e.seq for e in second.events]
        assert len(a) == 3 and len(b) == 2
        assert a == sorted(a) and b == sorted(b) and max(a) < min(b)
        first.mark(a)
        assert pending_count(pg_store) == 2
    finally:
        first.release()
        second.release()


def test_released_claim_leaves_rows_for_the_next_claimer(pg_store: Store) -> None:
    write_patients(pg_store, 2)
    dead = claim(pg_store, 10)
    assert len(dead.events) == 2
    dead.release()  # what a dropped connection amounts to: the locks go, nothing is marked
    again = claim(pg_store, 10)
    try:
        assert [e.seq for e in again.events] == [e.seq for e in dead.events]
    finally:
        again.release()
    assert pending_count(pg_store) == 2


def test_a_claims_mark_is_by_key_whatever_the_statistics(pg_store: Store) -> None:
    """Analysed when every row was dispatched (the alert bench's set-up; autovacuum off), the mark's
    `seq IN (…) AND dispatched_at IS NULL` was planned on the pending index: it walked every dead
    entry of a row ever pending (~430 buffers a mark in the bench), and the SQL differed per count."""
    with pg_store.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO outbox (created_at, res_type, res_id, version_id, method) "
            "SELECT now(), 'Patient', 'p' || g, 1, 'POST' FROM generate_series(1, 5000) g"
        )
        conn.exec_driver_sql("UPDATE outbox SET dispatched_at = created_at")
        conn.exec_driver_sql("ANALYZE outbox")
    write_patients(pg_store, 3)
    held = claim(pg_store, 10)
    try:
        seqs = [e.seq for e in held.events]
        assert len(seqs) == 3
        with pg_store.engine.connect() as conn:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + _mark_sql(seqs)))
        assert "ix_outbox_pending" not in plan and "Seq Scan" not in plan, plan
        held.mark(seqs)
    finally:
        held.release()
    assert pending_count(pg_store) == 0
