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

from sqlalchemy import Connection, RootTransaction, bindparam, func, select, update

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
def _pending(after: bool, locking: bool = False) -> Any:
    """The oldest undispatched rows (`lim` of them, above `after` when asked). Built once: the relay
    claims after every commit."""
    o = outbox.c
    query = select(outbox).where(o.dispatched_at.is_(None))
    if after:
        query = query.where(o.seq > bindparam("after"))
    query = query.order_by(o.seq).limit(bindparam("lim"))
    return query.with_for_update(skip_locked=True) if locking else query


class OutboxClaim:
    """One claimed batch. Blocking calls: run them in a worker thread from async code."""

    def __init__(self, store: Store, events: list[Event], conn: Connection | None, trans: RootTransaction | None):
        self.store = store
        self.events = events
        self._conn = conn
        self._trans = trans

    @property
    def holds_locks(self) -> bool:
        """True for a PostgreSQL claim: its row locks are what keeps other relays off the batch."""
        return self._conn is not None

    def mark(self, seqs: Sequence[int]) -> None:
        """Set `dispatched_at` on these rows (and end the claim)."""
        if not seqs:
            self.release()
            return
        if self._conn is not None and self._trans is not None:
            self._conn.exec_driver_sql(*_mark_sql(seqs))
            self._trans.commit()
            self.release()
            return
        mark_dispatched(self.store, seqs)

    def release(self) -> None:
        """Give the batch back unmarked (rolls back a PostgreSQL claim). Safe to call twice."""
        if self._trans is not None and self._trans.is_active:
            self._trans.rollback()
        if self._conn is not None:
            self._conn.close()
        self._conn = self._trans = None


def _mark(seqs: Sequence[int]) -> Any:
    o = outbox.c
    return update(outbox).where(o.seq.in_(list(seqs)), o.dispatched_at.is_(None)).values(dispatched_at=utcnow())


def _mark_sql(seqs: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """The mark of a PostgreSQL claim: by key alone, one statement for any count. The claim holds the
    rows' locks, so they are still undispatched; `dispatched_at IS NULL` beside the key let a planner
    whose statistics saw nothing pending walk the pending index, every dead entry of it."""
    sql = f"UPDATE {outbox.name} SET dispatched_at = %(now)s WHERE seq = ANY(CAST(%(seqs)s AS bigint[]))"
    return sql, {"now": utcnow(), "seqs": list(seqs)}


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
        return OutboxClaim(store, events, None, None)
    conn = store.engine.connect()
    try:
        trans = conn.begin()
        rows = conn.execute(_pending(False, locking=True), {"lim": limit})
        events = [_event(r) for r in rows]
    except BaseException:
        conn.close()
        raise
    held = OutboxClaim(store, events, conn, trans)
    if not events:
        held.release()
    return held


def pending_count(store: Store) -> int:
    """Rows not yet dispatched (for health checks and tests)."""
    with store.reader() as uow:
        stmt = select(func.count()).select_from(outbox).where(outbox.c.dispatched_at.is_(None))
        return int(uow.conn.execute(stmt).scalar_one())
