"""Database engines for the two supported back ends, with the settings each needs to be safe.

SQLite: WAL so readers never block the writer, `synchronous=FULL` so an acknowledged write
survives a crash, and `BEGIN IMMEDIATE` for write transactions so two writers queue on the
lock instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import heapq
import itertools
import sqlite3
import threading
import time
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

SQLITE_MAX_OVERFLOW = 100
PING_AFTER_IDLE = 10.0
"""Seconds a pooled PostgreSQL connection may sit unused before its next checkout pings it first."""


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database not in (None, "", ":memory:"):
            # A writer waiting for the database lock holds its connection meanwhile; with the default
            # 5 + 10 connections those waiters left WAL readers (the event loop's token checks, the
            # alert pipeline) queueing for a connection. A file connection is cheap: allow plenty.
            # LIFO: the connection returned last is handed out next. A SQLite connection drops its
            # whole page cache when it finds that another connection wrote since its last
            # transaction; taken in turn (FIFO), every write transaction ran on a cold cache and
            # read each page it touched back from the OS (~80 `pread`s per ADT message).
            pool = {"pool_size": pool_size, "max_overflow": SQLITE_MAX_OVERFLOW, "pool_use_lifo": True}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        url = str(parsed.set(drivername="postgresql+psycopg"))
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    ping_when_idle(engine, PING_AFTER_IDLE)
    return engine


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only when it has sat unused for `idle_seconds`.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip to PostgreSQL that a busy
    request paid two or three times (token check, reader, audit writer). A connection back in the
    pool a moment ago is as alive as it was then; one idle for long may have been cut (a server
    restart, a firewall), so that one is pinged, and a dead one is replaced before use. A
    connection cut while in use fails its request, as it would with the pre-ping.
    """

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # new, or back in the pool a moment ago
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its ping") from exc  # the pool reconnects


class WriteTurns:
    """Whose turn it is to write to one SQLite database, among the threads of this process.

    SQLite lets one writer in at a time; a writer that finds the lock taken sleeps in its busy
    handler, in steps that grow to 100 ms, and tries again. Under a flood of writers a thread could
    lose that race for seconds: at 100 presentations/s REST creates and MLLP batches waited p99
    5–17 s for `BEGIN IMMEDIATE` while the lock sat free between other writers' commits. Here the
    writers of one process queue instead, in arrival order with urgent writers (the alert path,
    `URGENT_WRITES`) first, and the next one is woken the moment the last one's connection is back.
    Writers in other processes still meet SQLite's own lock and busy handler.
    """

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout  # as the busy timeout: then the caller gets "database is locked"
        self._lock = threading.Lock()
        # heap of (0 urgent / 1 other, ticket, the waiter's own wake-up); tickets are unique, so the
        # events are never compared
        self._waiting: list[tuple[int, int, threading.Event]] = []
        self._tickets = itertools.count()
        self._held = False

    def acquire(self, *, urgent: bool) -> None:
        with self._lock:
            if not self._held and not self._waiting:
                self._held = True
                return
            wake = threading.Event()
            mine = (0 if urgent else 1, next(self._tickets), wake)
            heapq.heappush(self._waiting, mine)
        if wake.wait(self.timeout):
            return  # `release` handed the turn over: it stays held, now by this thread
        with self._lock:
            if wake.is_set():  # handed over just as the wait ran out
                return
            self._waiting.remove(mine)
            heapq.heapify(self._waiting)
        raise sqlite3.OperationalError("database is locked (no write turn within the timeout)")

    def release(self) -> None:
        """Hand the turn straight to the next writer in line, waking that one thread only (waking
        them all to look cost each waiter a GIL round per commit: ~5 % of a loaded gateway's CPU)."""
        with self._lock:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._held = False

    @property
    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)


_TURN = "sqlite_write_turn"  # key in a pooled connection's `info`: it holds the write turn


def _configure_sqlite(engine: Engine) -> None:
    turns = WriteTurns()

    def give_back(info: dict[Any, Any]) -> None:
        if info.pop(_TURN, None) is not None:
            turns.release()

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            give_back(record.info)  # the transaction is over: committed, or rolled back on return

    @event.listens_for(engine, "invalidate")
    def _invalidate(_dbapi_conn: Any, record: Any, _exc: Any) -> None:
        if record is not None:
            give_back(record.info)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # BEGIN goes to the driver itself: through SQLAlchemy's statement execution it was a quarter
        # of an empty transaction's cost, paid by every reader and writer (its errors are the
        # driver's, as the write turn's own timeout already is).
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode != "IMMEDIATE":
            conn.connection.dbapi_connection.execute(f"BEGIN {mode}")
            return
        info = conn.info  # the pooled connection's, shared with the pool events above
        give_back(info)  # a second transaction on a connection not yet returned queues again
        urgent = URGENT_WRITES.get()
        turns.acquire(urgent=urgent)
        info[_TURN] = True
        try:
            if urgent:
                _begin_urgently(conn.connection.dbapi_connection)
            else:
                conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE")
        except BaseException:
            give_back(info)
            raise


URGENT_WRITES: ContextVar[bool] = ContextVar("sqlite_urgent_writes", default=False)
"""Set where a write transaction is on a latency path (the event relay and alert delivery do).

SQLite's busy handler waits for the write lock in sleeps that grow to 100 ms, so under a flood of
ingest writers a waiter can lose the lock over and over for seconds. An urgent writer instead asks
again every `_URGENT_POLL` seconds: its (few, batched) transactions get the lock as soon as it is
free. Nothing else changes: the same BEGIN IMMEDIATE, the same durability.
"""
_URGENT_POLL = 0.0005
_URGENT_TIMEOUT = 30.0  # as the busy timeout


def _begin_urgently(dbapi_conn: Any) -> None:
    dbapi_conn.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + _URGENT_TIMEOUT
        while True:
            try:
                dbapi_conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(_URGENT_POLL)
    finally:
        dbapi_conn.execute("PRAGMA busy_timeout=30000")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
