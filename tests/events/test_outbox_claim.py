"""Several gateway processes on one PostgreSQL: claims never overlap, and a dead claimer's rows come back."""

from __future__ import annotations

from gateway.events import claim, pending_count
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
