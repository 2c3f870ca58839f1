"""Claiming undispatched outbox rows, and marking them dispatched once published.

PostgreSQL (several gateway processes): the batch is claimed with `FOR UPDATE SKIP LOCKED` and the
row locks are held until the mark commits, so two relays never publish the same row at the same
time, and a relay that dies mid-publish just drops its connection: its rows unlock and another
process takes them.

SQLite (one process): rows are read in a short read transaction and marked in a short
`store.writer()` (BEGIN IMMEDIATE) afterwards. Holding the write lock while publishing would
deadlock an in-process consumer that itself writes to the store.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection, bindparam, func, select, update

from gateway.events.model import Event
from gateway.store.api import Store, utcnow
from gateway.store.engine import is_sqlite
from gateway.store.schema import outbox


def _event(row: Any) -> Event:
    return Event(
        seq=int(row.seq),
        res_type=row.res_type,
        res_id=row.res_id,
        version_id=int(row.version_id),
        method=row.method,
        created_at=row.created_at,
    )


@functools.cache
def _pending(after: bool) -> Any:
    """The oldest undispatched rows (`lim` of them, above `after` when asked). Built once: the relay
    claims after every commit."""
    o = outbox.c
    query = select(outbox).where(o.dispatched_at.is_(None))
    if after:
        query = query.where(o.seq > bindparam("after"))
    return query.order_by(o.seq).limit(bindparam("lim"))


class OutboxClaim:
    """One claimed batch. Blocking calls: run them in a worker thread from async code.

    On PostgreSQL it holds an autocommit connection on which the claim began a transaction of its
    own (`_pg_claim_sql`): the BEGIN goes with the locking read, and the COMMIT with the mark, each
    pair in one simple-protocol message, so a batch costs two round trips, not four.
    """

    def __init__(self, store: Store, events: list[Event], conn: Connection | None):
        self.store = store
        self.events = events
        self._conn = conn

    @property
    def holds_locks(self) -> bool:
        """True for a PostgreSQL claim: its row locks are what keeps other relays off the batch."""
        return self._conn is not None

    def mark(self, seqs: Sequence[int]) -> None:
        """Set `dispatched_at` on these rows (and end the claim)."""
        if not seqs:
            self.release()
            return
        if self._conn is not None:
            try:
                _simple(self._conn, _mark_sql(seqs) + "; COMMIT")
            finally:
                self.release()
            return
        mark_dispatched(self.store, seqs)

    def release(self) -> None:
        """Give the batch back unmarked (rolls back a PostgreSQL claim). Safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            raw = conn.connection.driver_connection
            if raw is not None and not raw.closed and raw.info.transaction_status != TransactionStatus.IDLE:
                raw.execute("ROLLBACK")
        finally:
            conn.close()


def _mark(seqs: Sequence[int]) -> Any:
    o = outbox.c
    return update(outbox).where(o.seq.in_(list(seqs)), o.dispatched_at.is_(None)).values(dispatched_at=utcnow())


def _mark_sql(seqs: Sequence[int]) -> str:
    """The mark of a PostgreSQL claim: by key alone. The claim holds the rows' locks, so they are
    still undispatched; `dispatched_at IS NULL` beside the key let a planner whose statistics saw
    nothing pending walk the pending index, every dead entry of it. Its values are written into the
    text (integers and a timestamp of ours) so that the COMMIT can go in the same message."""
    keys = ",".join(str(int(seq)) for seq in seqs)
    return f"UPDATE {outbox.name} SET dispatched_at = '{utcnow().isoformat(sep=' ')}' WHERE seq IN ({keys})"


def _pg_claim_sql(limit: int) -> str:
    """BEGIN and the locking read of the oldest undispatched rows, in one message."""
    return (
        f"BEGIN ISOLATION LEVEL READ COMMITTED; SELECT seq, created_at, res_type, res_id, version_id, method "
        f"FROM {outbox.name} WHERE dispatched_at IS NULL ORDER BY seq LIMIT {int(limit)} FOR UPDATE SKIP LOCKED"
    )


def _simple(conn: Connection, sql: str) -> list[Any]:
    """Run `sql` (one or more statements, no parameters: the simple query protocol) on `conn`'s
    psycopg connection; the rows of its last statement."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor(row_factory=namedtuple_row) as cur:
        cur.execute(sql, prepare=False)
        while cur.nextset():
            pass
        return cur.fetchall() if cur.description is not None else []


def mark_dispatched(store: Store, seqs: Sequence[int]) -> None:
    """Mark rows dispatched in a transaction of their own (SQLite: the claim holds no locks)."""
    if seqs:
        with store.writer() as uow:
            uow.conn.execute(_mark(seqs))


def claim(store: Store, limit: int, *, after: int | None = None) -> OutboxClaim:
    """The oldest undispatched rows (at most `limit`), held for this relay.

    `after` (SQLite only) skips rows up to that seq: published rows whose mark is still being
    written. SQLite commits one writer at a time, so seq order is commit order and no row can
    appear later below a seq already seen.
    """
    if is_sqlite(store.engine):
        with store.reader() as uow:
            rows = uow.conn.execute(_pending(after is not None), {"lim": limit, "after": after})
            events = [_event(r) for r in rows]
        return OutboxClaim(store, events, None)
    held = OutboxClaim(store, [], store.engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
    try:
        assert held._conn is not None
        held.events = [_event(r) for r in _simple(held._conn, _pg_claim_sql(limit))]
    except BaseException:
        held.release()
        raise
    if not held.events:
        held.release()
    return held


def pending_count(store: Store) -> int:
    """Rows not yet dispatched (for health checks and tests)."""
    with store.reader() as uow:
        stmt = select(func.count()).select_from(outbox).where(outbox.c.dispatched_at.is_(None))
        return int(uow.conn.execute(stmt).scalar_one())
