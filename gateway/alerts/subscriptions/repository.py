"""Subscription status and the numbered event log, over a SQLAlchemy Engine (SQLite or PostgreSQL).

Event numbers are allocated by bumping `subscription_status.events_since_start` with one
`UPDATE … RETURNING` inside the transaction that writes the event row: PostgreSQL row-locks the
status row and SQLite writes under `BEGIN IMMEDIATE`, so two workers never hand out the same number
and a number is never used without its row. Receivers detect gaps and duplicates from these
numbers; `$events` replays any range from the log, which is why events are never deleted on
delivery failure.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Engine, Row, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gateway.alerts.subscriptions.backport import STATUSES, SubscriptionStatus
from gateway.alerts.subscriptions.records import EventFocus, EventRecord, SubscriptionState
from gateway.fhir.errors import not_found
from gateway.store import probes
from gateway.store.schema import subscription_event as ev
from gateway.store.schema import subscription_status as st

_MAX_ERROR_TEXT = 500


class SubscriptionStateRepository:
    """Synchronous access to subscription state; async callers run it in a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _write(self, conn: Connection | None = None) -> Iterator[Connection]:
        if conn is not None:  # the caller's transaction (e.g. the outbox dispatcher's)
            yield conn
            return
        with self._engine.connect().execution_options(sqlite_begin="IMMEDIATE") as own, own.begin():
            yield own

    # --- status -----------------------------------------------------------------------------

    def register(
        self,
        sub_id: str,
        topic: str,
        *,
        now: datetime,
        status: SubscriptionStatus = "requested",
        heartbeat_period: int | None = None,
    ) -> SubscriptionState:
        """Create the status row, or refresh it for an updated Subscription (numbering continues).

        Call it on Subscription create and update, not at start-up: re-registering an `error` or
        `off` subscription as `requested` asks for a new handshake.
        """
        _check_status(status)
        for _ in range(2):  # a concurrent first insert loses the race once, then updates
            try:
                with self._write() as conn:
                    row = _locked(conn, sub_id)
                    if row is None:
                        conn.execute(
                            insert(st).values(
                                sub_id=sub_id,
                                topic=topic,
                                status=status,
                                events_since_start=0,
                                last_delivered_event=0,
                                error_count=0,
                                heartbeat_period=heartbeat_period,
                                updated_at=now,
                            )
                        )
                    else:
                        # An update keeps a running subscription running; an `off` or `error` one that the
                        # client asks for again starts over with a handshake.
                        keep = status != "off" and row.status not in ("off", "error")
                        conn.execute(
                            update(st)
                            .where(st.c.sub_id == sub_id)
                            .values(
                                topic=topic,
                                status=row.status if keep else status,
                                heartbeat_period=heartbeat_period,
                                updated_at=now,
                            )
                        )
                    return _require(conn, sub_id)
            except IntegrityError:
                continue
        raise RuntimeError(f"could not register subscription {sub_id}")  # pragma: no cover

    def get(self, sub_id: str) -> SubscriptionState | None:
        with self._engine.connect() as conn:
            row = conn.execute(_state_of(), {"sub": sub_id}).first()
        return _state(row) if row is not None else None

    def states(self, sub_ids: Iterable[str] | None = None) -> list[SubscriptionState]:
        """States of the given subscriptions (all when None), in id order; unknown ids are skipped."""
        query = select(st).order_by(st.c.sub_id)
        if sub_ids is not None:
            query = query.where(st.c.sub_id.in_(list(sub_ids)))
        with self._engine.connect() as conn:
            return [_state(r) for r in conn.execute(query)]

    def set_status(
        self, sub_id: str, status: SubscriptionStatus, *, now: datetime, error: str | None = None
    ) -> SubscriptionState:
        """Move a subscription to `status`; `active` resets the error count and schedules a heartbeat."""
        _check_status(status)
        with self._write() as conn:
            row = _locked(conn, sub_id)
            if row is None:
                raise not_found(f"Subscription/{sub_id}")
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if status == "active":
                values |= {"error_count": 0, "next_heartbeat": _next_beat(row.heartbeat_period, now)}
            elif status == "off":
                values["next_heartbeat"] = None
            if error is not None:
                values["last_error"] = error[:_MAX_ERROR_TEXT]
            conn.execute(update(st).where(st.c.sub_id == sub_id).values(**values))
            return _require(conn, sub_id)

    def remove(self, sub_id: str) -> None:
        """Forget a deleted Subscription and its event log."""
        with self._write() as conn:
            conn.execute(delete(ev).where(ev.c.sub_id == sub_id))
            conn.execute(delete(st).where(st.c.sub_id == sub_id))

    # --- events -----------------------------------------------------------------------------

    def record_event(
        self,
        sub_id: str,
        focus: EventFocus,
        *,
        topic: str | None = None,
        now: datetime,
        conn: Connection | None = None,
        once_per_version: bool = False,
    ) -> int:
        """Allocate the next event number for `sub_id` and log the event; returns the number.

        Raises `FhirError` (not-found) for an unregistered subscription. Pass `conn` to write in the
        caller's transaction. With `once_per_version`, a focus version already logged for this
        subscription (a redelivered event) keeps the number it got, so duplicates stay detectable.
        """
        with self._write(conn) as c:
            if once_per_version and focus.version is not None:
                known = _known_number(c, sub_id, focus)
                if known is not None:
                    return known
            bumped = c.execute(
                update(st)
                .where(st.c.sub_id == sub_id)
                .values(events_since_start=st.c.events_since_start + 1, updated_at=now)
                .returning(st.c.events_since_start, st.c.topic)
            ).first()
            if bumped is None:
                raise not_found(f"Subscription/{sub_id}")
            number = int(bumped.events_since_start)
            c.execute(insert(ev), [_event_row(sub_id, number, topic or bumped.topic, focus, now)])
            return number

    def record_events(
        self,
        items: Sequence[tuple[str, str, EventFocus, int | None]],
        *,
        now: datetime,
        conn: Connection | None = None,
        written_here: bool = False,
    ) -> list[tuple[int, bool] | None]:
        """Number and log several events in ONE transaction, each once per focus version.

        `items` are (subscription id, topic, focus, heartbeat period); a subscription not yet
        registered is registered `requested` (as `register` would). Per item: (number, whether it
        is new), or None for a subscription that is `off`. All or nothing: numbers stay gap-free.
        The status rows are locked in id order first, so two processes' batches never deadlock.

        A fixed handful of statements for the whole batch: the status rows locked in one, the
        numbers focus versions already have in one, one counter bump per subscription, and the new
        event rows in one executemany. With `conn`, in the caller's transaction (a concurrent first
        registration then fails that transaction, for the caller to retry); `written_here` says the
        caller wrote the focus versions in that transaction, so none has a number yet (no lookup).
        """
        if conn is not None:
            return self._record_all(conn, items, now=now, written_here=written_here)
        for attempt in range(2):  # a concurrent first registration loses the race once
            try:
                with self._write() as conn:
                    return self._record_all(conn, items, now=now)
            except IntegrityError:
                if attempt:
                    raise
        return []  # pragma: no cover

    def _record_all(
        self,
        conn: Connection,
        items: Sequence[tuple[str, str, EventFocus, int | None]],
        *,
        now: datetime,
        written_here: bool = False,
    ) -> list[tuple[int, bool] | None]:
        if written_here and conn.dialect.name == "postgresql" and _distinct_foci(items):
            return self._number_new_pg(conn, items, now=now)
        statuses = self._lock_all(conn, items, now=now)
        known = (
            {}
            if written_here
            else _known_numbers(conn, [(sub_id, focus) for sub_id, _, focus, _ in items if statuses[sub_id] != "off"])
        )
        out: list[tuple[int, bool] | None] = [None] * len(items)
        fresh: dict[str, list[int]] = {}  # sub id -> indexes of items that need a new number, in order
        claimed: dict[tuple[str, str, str, int], int] = {}  # a focus version twice in one batch: one number
        for index, (sub_id, _, focus, _) in enumerate(items):
            if statuses[sub_id] == "off":
                continue
            key = _focus_key(sub_id, focus)
            if key is not None and key in known:
                out[index] = (known[key], False)
            elif key is not None and key in claimed:
                continue  # numbered below, with the first of the pair
            else:
                if key is not None:
                    claimed[key] = index
                fresh.setdefault(sub_id, []).append(index)
        rows: list[dict[str, Any]] = []
        for sub_id in sorted(fresh):
            indexes = fresh[sub_id]
            top = conn.execute(_bump(), {"b_sub": sub_id, "b_count": len(indexes), "b_now": now}).scalar_one()
            for number, index in enumerate(indexes, start=int(top) - len(indexes) + 1):
                _, topic, focus, _ = items[index]
                out[index] = (number, True)
                rows.append(_event_row(sub_id, number, topic, focus, now))
        for index, (sub_id, _, focus, _) in enumerate(items):  # the repeats within this batch
            key = _focus_key(sub_id, focus)
            if out[index] is None and key is not None and key in claimed and claimed[key] != index:
                first = out[claimed[key]]
                out[index] = (first[0], False) if first is not None else None
        if rows:
            conn.execute(insert(ev), rows)
        return out

    def _number_new_pg(
        self, conn: Connection, items: Sequence[tuple[str, str, EventFocus, int | None]], *, now: datetime
    ) -> list[tuple[int, bool] | None]:
        """`_record_all` for foci the caller's transaction wrote (none has a number yet), on PostgreSQL:
        per subscription ONE statement bumps the counter and logs the events (`_PG_NUMBER_SQL`), where
        the general path takes three (lock, bump, insert) inside the alert's write transaction. The
        rows are locked in id order, one statement each, as the general path locks them; a
        subscription that is `off` or not yet registered goes the general way, in that order too."""
        out: list[tuple[int, bool] | None] = [None] * len(items)
        by_sub: dict[str, list[int]] = {}
        for index, (sub_id, _, _, _) in enumerate(items):
            by_sub.setdefault(sub_id, []).append(index)
        for sub_id in sorted(by_sub):
            indexes = by_sub[sub_id]
            mine = [items[i] for i in indexes]
            rows = probes.pg_rows(conn, _PG_NUMBER_SQL, _number_params(sub_id, mine, now))
            if rows:
                top = max(int(row.event_number) for row in rows)
                for number, index in enumerate(indexes, start=top - len(indexes) + 1):
                    out[index] = (number, True)
                continue
            got = self._record_all(conn, mine, now=now)  # off, or to be registered `requested` first
            for index, numbered in zip(indexes, got, strict=True):
                out[index] = numbered
        return out

    @staticmethod
    def _lock_all(
        conn: Connection, items: Sequence[tuple[str, str, EventFocus, int | None]], *, now: datetime
    ) -> dict[str, str]:
        """Lock (or create, `requested`) each subscription's status row, in id order; their statuses."""
        first = {sub_id: (topic, period) for sub_id, topic, _, period in reversed(items)}
        wanted = sorted(first)
        statuses = {row.sub_id: row.status for row in conn.execute(_lock_rows(), {"subs": wanted})}
        for sub_id in wanted:
            if sub_id in statuses:
                continue
            topic, period = first[sub_id]
            conn.execute(
                insert(st).values(
                    sub_id=sub_id,
                    topic=topic,
                    status="requested",
                    events_since_start=0,
                    last_delivered_event=0,
                    error_count=0,
                    heartbeat_period=period,
                    updated_at=now,
                )
            )
            statuses[sub_id] = "requested"
        return statuses

    def events(
        self, sub_id: str, since: int | None = None, until: int | None = None, *, limit: int | None = None
    ) -> list[EventRecord]:
        """Logged events with `since <= number <= until` (both optional), oldest first."""
        conds = [ev.c.sub_id == sub_id]
        if since is not None:
            conds.append(ev.c.event_number >= since)
        if until is not None:
            conds.append(ev.c.event_number <= until)
        query = select(ev).where(and_(*conds)).order_by(ev.c.event_number)
        if limit is not None:
            query = query.limit(limit)
        with self._engine.connect() as conn:
            return [_event(r) for r in conn.execute(query)]

    @staticmethod
    def numbered_versions(
        conn: Connection, sub_ids: Sequence[str], foci: Sequence[tuple[str, str, int]]
    ) -> set[tuple[str, str, int]]:
        """Which of these focus versions (type, id, version) have an event in any of these
        subscriptions' logs (one query, on the focus index)."""
        if not sub_ids or not foci:
            return set()
        wanted = set(foci)
        rows = _known_rows(conn, [(sub_id, t, i) for sub_id in set(sub_ids) for t, i, _ in wanted])
        return wanted & {(row.focus_type, row.focus_id, row.focus_version) for row in rows}

    def undelivered(self, sub_id: str, *, limit: int | None = None, exclude: Iterable[int] = ()) -> list[EventRecord]:
        """Events not yet delivered (less `exclude`: delivered, mark not yet written), oldest first."""
        with self._engine.connect() as conn:
            return _undelivered(conn, sub_id, limit, exclude)

    def pending(
        self, sub_id: str, *, limit: int | None = None, exclude: Iterable[int] = ()
    ) -> tuple[SubscriptionState | None, list[EventRecord]]:
        """`get` and `undelivered` on one connection (a flush's first look, in one thread hop)."""
        with self._engine.connect() as conn:
            row = conn.execute(_state_of(), {"sub": sub_id}).first()
            if row is None:
                return None, []
            state = _state(row)
            if state.status in ("requested", "off"):
                return state, []
            return state, _undelivered(conn, sub_id, limit, exclude)

    def claim(
        self,
        sub_id: str,
        owner: str,
        *,
        now: datetime,
        until: datetime,
        limit: int | None = None,
        exclude: Iterable[int] = (),
    ) -> tuple[SubscriptionState | None, list[EventRecord], bool]:
        """Take (or renew) the delivery lease and read what to deliver, in one transaction.

        Returns (state, undelivered events, whether `owner` holds the lease). The lease is free when
        nobody holds it, `owner` does, or the holder's time ran out (a process that died). Several
        gateway processes deliver one subscription's events only one at a time this way: the
        holder sends everything, including events the others numbered, so nothing goes out twice.
        """
        lease = {"l_sub": sub_id, "l_owner": owner, "l_now": now, "l_until": until}
        if self._engine.dialect.name == "postgresql":
            return self._claim_in_one(lease, limit, exclude)
        with self._write() as conn:
            row = conn.execute(_take_lease(), lease).first()
            if row is None:
                other = conn.execute(_state_of(), {"sub": sub_id}).first()
                return (_state(other) if other is not None else None), [], False
            state = _state(row)
            if state.status in ("requested", "off"):
                return state, [], True
            return state, _undelivered(conn, sub_id, limit, exclude), True

    def _claim_in_one(
        self, lease: dict[str, Any], limit: int | None, exclude: Iterable[int]
    ) -> tuple[SubscriptionState | None, list[EventRecord], bool]:
        """`claim` on PostgreSQL, in autocommit: the lease taken and the state read in ONE statement
        (`_PG_CLAIM_SQL`), then, when taken, the events in another; two round trips instead of a
        transaction of five (BEGIN, SET LOCAL, UPDATE, SELECT, COMMIT), per notification.

        Not one statement for both: an UPDATE that waited for the row (another process's mark
        transaction, giving the lease back) takes it on the row as that left it, but a read in the same
        statement keeps the snapshot from before the wait, in which the events just marked delivered
        are not, and they went out again. The second statement reads after the lease is ours."""
        with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            rows = probes.pg_rows(conn, _PG_CLAIM_SQL, lease)
            if not rows:
                return None, [], False
            state, held = _state(rows[0]), bool(rows[0].held)
            if not held or state.status in ("requested", "off"):
                return state, [], held
            return state, _undelivered(conn, state.sub_id, limit, exclude), True

    def release_leases(self, owner: str) -> None:
        """Give back every lease `owner` holds (a process shutting down)."""
        with self._write() as conn:
            conn.execute(update(st).where(st.c.lease_owner == owner).values(lease_owner=None, lease_until=None))

    def pending_subscriptions(self, *, created_before: datetime | None = None) -> list[str]:
        """Ids of subscriptions with at least one undelivered event (logged before `created_before`)."""
        query = select(ev.c.sub_id).where(ev.c.delivered_at.is_(None)).distinct().order_by(ev.c.sub_id)
        if created_before is not None:
            query = query.where(ev.c.created_at < created_before)
        with self._engine.connect() as conn:
            return [r.sub_id for r in conn.execute(query)]

    def mark_delivered(self, sub_id: str, numbers: Sequence[int], *, now: datetime) -> SubscriptionState:
        """Record a successful delivery (of `numbers`, or of a handshake/heartbeat when empty).

        Clears the error count, brings an `error` subscription back to `active` and pushes the next
        heartbeat out by one period (any notification proves the channel is alive).
        """
        with self._write() as conn:
            return _mark_delivered_in(conn, sub_id, numbers, now)

    def mark_delivered_many(
        self,
        deliveries: Sequence[tuple[str, Sequence[int]]],
        *,
        now: datetime,
        release: Sequence[str] = (),
        owner: str | None = None,
    ) -> set[str]:
        """`mark_delivered` for several deliveries in ONE transaction (a subscription deleted
        meanwhile is skipped: its log is gone with it); then give back `owner`'s leases on `release`
        where nothing is left undelivered. Returns the subscriptions whose lease was given back.

        A lease is kept while events are waiting (another process numbered them while this one was
        sending): its holder delivers them next, so a process that found the lease taken can leave
        its events to the holder.
        """
        merged: dict[str, list[int]] = {}
        for sub_id, numbers in deliveries:
            merged.setdefault(sub_id, []).extend(numbers)
        releasing = sorted(set(release)) if owner is not None else []
        with self._write() as conn:
            # one statement locks every row this touches, in id order as `record_events` does: no deadlock
            locked = conn.execute(_lock_rows(), {"subs": sorted(set(merged) | set(releasing))}).all()
            events = [
                {"m_sub": row.sub_id, "m_number": n, "m_now": now} for row in locked for n in merged.get(row.sub_id, ())
            ]
            if events:
                conn.execute(_mark_event(), events)
            statuses = [_delivered_status(row, merged[row.sub_id], now) for row in locked if row.sub_id in merged]
            if statuses:
                conn.execute(_mark_status(), statuses)
            if not releasing:
                return set()
            return {row.sub_id for row in conn.execute(_give_back(), {"g_subs": releasing, "g_owner": owner})}

    def mark_failed(self, sub_id: str, numbers: Sequence[int], error: str, *, now: datetime) -> SubscriptionState:
        """Record a failed attempt; the events stay undelivered. Returns the new state (error count)."""
        with self._write() as conn:
            if numbers:
                conn.execute(
                    update(ev)
                    .where(ev.c.sub_id == sub_id, ev.c.event_number.in_(list(numbers)))
                    .values(attempts=ev.c.attempts + 1)
                )
            done = conn.execute(
                update(st)
                .where(st.c.sub_id == sub_id)
                .values(error_count=st.c.error_count + 1, last_error=error[:_MAX_ERROR_TEXT], updated_at=now)
            )
            if done.rowcount == 0:
                raise not_found(f"Subscription/{sub_id}")
            return _require(conn, sub_id)

    # --- heartbeats -------------------------------------------------------------------------

    def due_heartbeats(self, now: datetime) -> list[str]:
        """Ids of active subscriptions whose next heartbeat is due at `now`."""
        query = (
            select(st.c.sub_id)
            .where(st.c.status == "active", st.c.next_heartbeat.is_not(None), st.c.next_heartbeat <= now)
            .order_by(st.c.next_heartbeat)
        )
        with self._engine.connect() as conn:
            return [r.sub_id for r in conn.execute(query)]

    def schedule_heartbeat(self, sub_id: str, *, now: datetime) -> None:
        """Push the next heartbeat one period past `now` (also after a failed one, to avoid a storm)."""
        with self._write() as conn:
            row = _locked(conn, sub_id)
            if row is not None:
                conn.execute(
                    update(st).where(st.c.sub_id == sub_id).values(next_heartbeat=_next_beat(row.heartbeat_period, now))
                )


def heartbeat_due(state: SubscriptionState, now: datetime) -> bool:
    """The pure rule `due_heartbeats` applies in SQL, for callers holding states already."""
    return state.status == "active" and state.next_heartbeat is not None and state.next_heartbeat <= now


def _next_beat(period: int | None, now: datetime) -> datetime | None:
    return now + timedelta(seconds=period) if period else None


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown subscription status {status!r}")


def _locked(conn: Connection, sub_id: str) -> Row[Any] | None:
    # FOR UPDATE on PostgreSQL; SQLite is already serialised by BEGIN IMMEDIATE (and ignores it).
    return conn.execute(select(st).where(st.c.sub_id == sub_id).with_for_update()).first()


def _mark_delivered_in(conn: Connection, sub_id: str, numbers: Sequence[int], now: datetime) -> SubscriptionState:
    row = _locked(conn, sub_id)
    if row is None:
        raise not_found(f"Subscription/{sub_id}")
    _mark_row_delivered(conn, row, numbers, now)
    return _require(conn, sub_id)


def _mark_row_delivered(conn: Connection, row: Row[Any], numbers: Sequence[int], now: datetime) -> None:
    """Mark `numbers` delivered under the locked status `row` and bring the status up to date."""
    if numbers:
        conn.execute(_mark_event(), [{"m_sub": row.sub_id, "m_number": n, "m_now": now} for n in numbers])
    conn.execute(_mark_status(), [_delivered_status(row, numbers, now)])


def _delivered_status(row: Row[Any], numbers: Sequence[int], now: datetime) -> dict[str, Any]:
    """The status row's new values after a delivery: errors cleared, `error` back to `active`, the next
    heartbeat one period on (any notification proves the channel is alive)."""
    beat = _next_beat(row.heartbeat_period, now) if row.status in ("active", "error") else row.next_heartbeat
    return {
        "d_sub": row.sub_id,
        "d_last": max([int(row.last_delivered_event), *numbers]),
        "d_status": "active" if row.status == "error" else row.status,
        "d_beat": beat,
        "d_now": now,
    }


# Statements built once (SQLAlchemy reuses their compiled form): the delivery path runs them per alert.
@functools.cache
def _state_of() -> Any:
    return select(st).where(st.c.sub_id == bindparam("sub"))


@functools.cache
def _lock_rows() -> Any:
    # FOR UPDATE on PostgreSQL, in id order (no deadlock between batches); SQLite ignores it.
    return select(st).where(st.c.sub_id.in_(bindparam("subs", expanding=True))).order_by(st.c.sub_id).with_for_update()


@functools.cache
def _bump() -> Any:
    return (
        update(st)
        .where(st.c.sub_id == bindparam("b_sub"))
        .values(events_since_start=st.c.events_since_start + bindparam("b_count"), updated_at=bindparam("b_now"))
        .returning(st.c.events_since_start)
    )


@functools.cache
def _take_lease() -> Any:
    free = or_(
        st.c.lease_owner.is_(None), st.c.lease_owner == bindparam("l_owner"), st.c.lease_until < bindparam("l_now")
    )
    return (
        update(st)
        .where(st.c.sub_id == bindparam("l_sub"), free)
        .values(lease_owner=bindparam("l_owner"), lease_until=bindparam("l_until"))
        .returning(*st.c)
    )


_STATUS_COLUMNS = ", ".join(c.name for c in st.c)
# `claim` on PostgreSQL, one autocommit statement: take (or renew) the lease if it is free, and say
# whether it was taken, with the state (the row taken, else the row as it is). A lease lost in a
# crash only runs out, so its commit need not wait for the WAL flush: `set_config(…, true)` in the
# UPDATE's condition turns synchronous_commit off for this statement's own transaction whenever it
# writes (a statement that writes nothing has no WAL to wait for).
_PG_CLAIM_SQL = (
    f"WITH took AS (UPDATE {st.name} SET lease_owner = %(l_owner)s, lease_until = %(l_until)s "
    f"WHERE sub_id = %(l_sub)s AND (lease_owner IS NULL OR lease_owner = %(l_owner)s OR lease_until < %(l_now)s) "
    f"AND set_config('synchronous_commit', 'off', true) = 'off' RETURNING {_STATUS_COLUMNS}) "
    f"SELECT true AS held, {_STATUS_COLUMNS} FROM took UNION ALL "
    f"SELECT false, {_STATUS_COLUMNS} FROM {st.name} WHERE sub_id = %(l_sub)s AND NOT EXISTS (SELECT FROM took)"
)


@functools.cache
def _give_back() -> Any:
    waiting = select(ev.c.event_number).where(ev.c.sub_id == st.c.sub_id, ev.c.delivered_at.is_(None)).exists()
    return (
        update(st)
        .where(st.c.sub_id.in_(bindparam("g_subs", expanding=True)), st.c.lease_owner == bindparam("g_owner"), ~waiting)
        .values(lease_owner=None, lease_until=None)
        .returning(st.c.sub_id)
    )


@functools.cache
def _mark_event() -> Any:
    return (
        update(ev)
        .where(
            ev.c.sub_id == bindparam("m_sub"),
            ev.c.event_number == bindparam("m_number"),
            ev.c.delivered_at.is_(None),
        )
        .values(delivered_at=bindparam("m_now"), attempts=ev.c.attempts + 1)
    )


@functools.cache
def _mark_status() -> Any:
    return (
        update(st)
        .where(st.c.sub_id == bindparam("d_sub"))
        .values(
            last_delivered_event=bindparam("d_last"),
            error_count=0,
            last_error=None,
            status=bindparam("d_status"),
            next_heartbeat=bindparam("d_beat"),
            updated_at=bindparam("d_now"),
        )
    )


@functools.cache
def _undelivered_query(skipping: bool, limited: bool) -> Any:
    query = select(ev).where(ev.c.sub_id == bindparam("sub"), ev.c.delivered_at.is_(None))
    if skipping:
        query = query.where(ev.c.event_number.not_in(bindparam("skip", expanding=True)))
    query = query.order_by(ev.c.event_number)
    return query.limit(bindparam("lim")) if limited else query


@functools.cache
def _known_query() -> Any:
    return select(ev.c.sub_id, ev.c.focus_type, ev.c.focus_id, ev.c.focus_version, ev.c.event_number).where(
        ev.c.sub_id.in_(bindparam("k_subs", expanding=True)),
        ev.c.focus_type.in_(bindparam("k_types", expanding=True)),
        ev.c.focus_id.in_(bindparam("k_ids", expanding=True)),
    )


# PostgreSQL: one probe of `ix_subscription_event_focus` per (subscription, type, id), whatever the
# statistics say (`gateway.store.probes`). Planned from statistics taken while the log was small, the
# IN-list form walked `ix_subscription_event_pending`: every event of every subscription asked about.
_PG_KNOWN_SQL = (
    f"SELECT e.sub_id, e.focus_type, e.focus_id, e.focus_version, e.event_number FROM unnest("
    f"CAST(%(subs)s AS varchar[]), CAST(%(types)s AS varchar[]), CAST(%(ids)s AS varchar[])) AS k(s, t, id) "
    f"CROSS JOIN LATERAL (SELECT sub_id, focus_type, focus_id, focus_version, event_number FROM {ev.name} "
    f"WHERE sub_id = k.s AND focus_type = k.t AND focus_id = k.id OFFSET 0) AS e"
)


def _known_rows(conn: Connection, keys: Iterable[tuple[str, str, str]]) -> Sequence[Any]:
    """The logged events of these (subscription, focus type, focus id) keys, in one query (on SQLite
    a superset: the product of the values asked for)."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    if conn.dialect.name == "postgresql":
        params = {"subs": [k[0] for k in wanted], "types": [k[1] for k in wanted], "ids": [k[2] for k in wanted]}
        return probes.pg_rows(conn, _PG_KNOWN_SQL, params)
    subs, types, ids = (sorted({k[i] for k in wanted}) for i in range(3))
    return conn.execute(_known_query(), {"k_subs": subs, "k_types": types, "k_ids": ids}).all()


_EVENT_COLUMNS = "sub_id, event_number, topic, focus_type, focus_id, focus_version, interaction, context"
# One subscription's new events: the counter bumped (unless `off`; nothing for an unknown one) and the
# events logged under the numbers it hands out, in the order given (WITH ORDINALITY).
_PG_NUMBER_SQL = (
    f"WITH b AS (UPDATE {st.name} SET events_since_start = events_since_start + %(n)s, updated_at = %(now)s "
    f"WHERE sub_id = %(sub)s AND status <> 'off' RETURNING events_since_start AS top) "
    f"INSERT INTO {ev.name} ({_EVENT_COLUMNS}, created_at, delivered_at, attempts) "
    f"SELECT %(sub)s, b.top - %(n)s + e.ord, e.topic, e.ftype, e.fid, e.fver, e.inter, e.ctx, %(now)s, NULL, 0 "
    f"FROM b CROSS JOIN unnest(CAST(%(topics)s AS varchar[]), CAST(%(ftypes)s AS varchar[]), "
    f"CAST(%(fids)s AS varchar[]), CAST(%(fvers)s AS integer[]), CAST(%(inters)s AS varchar[]), "
    f"CAST(%(ctxs)s AS text[])) WITH ORDINALITY AS e(topic, ftype, fid, fver, inter, ctx, ord) "
    f"RETURNING event_number"
)


def _number_params(
    sub_id: str, items: Sequence[tuple[str, str, EventFocus, int | None]], now: datetime
) -> dict[str, Any]:
    rows = [_event_row(sub_id, 0, topic, focus, now) for _, topic, focus, _ in items]
    return {
        "sub": sub_id,
        "n": len(rows),
        "now": now,
        "topics": [r["topic"] for r in rows],
        "ftypes": [r["focus_type"] for r in rows],
        "fids": [r["focus_id"] for r in rows],
        "fvers": [r["focus_version"] for r in rows],
        "inters": [r["interaction"] for r in rows],
        "ctxs": [r["context"] for r in rows],
    }


def _distinct_foci(items: Sequence[tuple[str, str, EventFocus, int | None]]) -> bool:
    """No focus version twice for one subscription (those share a number: the general path)."""
    keys = [_focus_key(sub_id, focus) for sub_id, _, focus, _ in items]
    return None not in keys and len(set(keys)) == len(keys)


def _event_row(sub_id: str, number: int, topic: str, focus: EventFocus, now: datetime) -> dict[str, Any]:
    return {
        "sub_id": sub_id,
        "event_number": number,
        "topic": topic,
        "focus_type": focus.res_type,
        "focus_id": focus.res_id,
        "focus_version": focus.version,
        "interaction": focus.interaction,
        "context": orjson.dumps(list(focus.context)).decode() if focus.context else None,
        "created_at": now,
        "delivered_at": None,
        "attempts": 0,
    }


def _focus_key(sub_id: str, focus: EventFocus) -> tuple[str, str, str, int] | None:
    return (sub_id, focus.res_type, focus.res_id, focus.version) if focus.version is not None else None


def _known_numbers(conn: Connection, wanted: Sequence[tuple[str, EventFocus]]) -> dict[tuple[str, str, str, int], int]:
    """The numbers these focus versions already have in their subscriptions' logs (one query)."""
    keys = {k for sub_id, focus in wanted if (k := _focus_key(sub_id, focus)) is not None}
    if not keys:
        return {}
    rows = _known_rows(conn, [k[:3] for k in keys])
    found: dict[tuple[str, str, str, int], int] = {}
    for row in rows:
        if row.focus_version is None:
            continue
        key = (row.sub_id, row.focus_type, row.focus_id, int(row.focus_version))
        if key in keys and key not in found:
            found[key] = int(row.event_number)
    return found


def _undelivered(conn: Connection, sub_id: str, limit: int | None, exclude: Iterable[int]) -> list[EventRecord]:
    skip = list(exclude)
    params: dict[str, Any] = {"sub": sub_id, "lim": limit, "skip": skip}
    return [_event(r) for r in conn.execute(_undelivered_query(bool(skip), limit is not None), params)]


def _known_number(conn: Connection, sub_id: str, focus: EventFocus) -> int | None:
    """The number this focus version already has in the subscription's log, if any."""
    row = conn.execute(
        select(ev.c.event_number).where(
            ev.c.sub_id == sub_id,
            ev.c.focus_type == focus.res_type,
            ev.c.focus_id == focus.res_id,
            ev.c.focus_version == focus.version,
        )
    ).first()
    return int(row.event_number) if row is not None else None


def _require(conn: Connection, sub_id: str) -> SubscriptionState:
    row = conn.execute(select(st).where(st.c.sub_id == sub_id)).first()
    if row is None:
        raise not_found(f"Subscription/{sub_id}")
    return _state(row)


def _state(row: Row[Any]) -> SubscriptionState:
    return SubscriptionState(
        sub_id=row.sub_id,
        topic=row.topic,
        status=cast(SubscriptionStatus, row.status),
        events_since_start=int(row.events_since_start),
        last_delivered_event=int(row.last_delivered_event),
        error_count=int(row.error_count),
        last_error=row.last_error,
        heartbeat_period=row.heartbeat_period,
        next_heartbeat=row.next_heartbeat,
        updated_at=row.updated_at,
    )


def _event(row: Row[Any]) -> EventRecord:
    return EventRecord(
        sub_id=row.sub_id,
        number=int(row.event_number),
        topic=row.topic,
        focus_type=row.focus_type,
        focus_id=row.focus_id,
        focus_version=row.focus_version,
        interaction=row.interaction,
        context=tuple(orjson.loads(row.context)) if row.context else (),
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        attempts=int(row.attempts),
    )
