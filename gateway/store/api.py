"""The store facade: versioned FHIR resources, their search index and the outbox, in one transaction.

Everything above the store reaches the database through `Store.writer()` / `Store.reader()`,
which yield a `UnitOfWork` bound to one transaction. A write puts the new version, its index
rows and its outbox row in that transaction, so a committed resource is always searchable
and always has its event; a failed transaction leaves no trace.

Errors: `FhirError` from `gateway.fhir.errors` (not-found 404, gone 410, precondition 412,
conflict 409). Database integrity errors become conflicts here, at the boundary.
"""

from __future__ import annotations

import functools
import io
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.copy import Copy, FileWriter, LibpqWriter
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import DATETIME as SqliteDateTime
from sqlalchemy.exc import DBAPIError, IntegrityError

from gateway.fhir.errors import conflict, gone, not_found, precondition_failed
from gateway.store import probes
from gateway.store.engine import is_sqlite
from gateway.store.ids import new_id
from gateway.store.schema import INDEX_TABLES, outbox, resource, resource_version, sp_token
from gateway.store.search.index import index_rows
from gateway.store.search.kinds import IndexContext
from gateway.store.search.query import (
    Cursor,
    IncludeSpec,
    SearchPage,
    SearchQuery,
    base_conditions,
    keyset_condition,
    sort_columns,
)
from gateway.store.search.registry import SearchRegistry, default_registry

_INDEX_TABLES: tuple[Table, ...] = tuple(dict.fromkeys(INDEX_TABLES.values()))
# Types no consumer reacts to: their writes put no event in the outbox (audit volume stays off the bus).
SILENT_TYPES = frozenset({"AuditEvent"})
_COPY_THRESHOLD = 50  # below this many rows a multi-row INSERT is as quick as COPY


def utcnow() -> datetime:
    """Naive UTC, the form every stored time takes."""
    return datetime.now(UTC).replace(tzinfo=None)


def instant(moment: datetime) -> str:
    """A FHIR instant for a naive-UTC time."""
    return moment.isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored; `content` is the exact JSON served to clients."""

    type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: bytes | None
    method: str = "PUT"
    seq: int | None = None

    def json(self) -> dict[str, Any]:
        if self.content is None:
            raise gone(f"{self.type}/{self.id}")
        data: dict[str, Any] = orjson.loads(self.content)
        return data

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def reference(self) -> str:
        return f"{self.type}/{self.id}"


def _comparable(res: dict[str, Any]) -> bytes:
    """The content that makes two versions different (server-set meta excluded)."""
    meta = {k: v for k, v in (res.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in res.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _row_to_stored(row: Any, method: str = "PUT", seq: int | None = None) -> StoredResource:
    content = row.content
    return StoredResource(
        type=row.res_type,
        id=row.res_id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        deleted=bool(row.deleted),
        content=content.encode() if isinstance(content, str) else content,
        method=method,
        seq=seq,
    )


@functools.cache
def _insert(table: Table) -> Insert:
    """One INSERT construct per table, so SQLAlchemy's compiled-statement cache key is built once."""
    return table.insert()


_PROBE_TIMES = (
    datetime(1, 1, 1),
    datetime(999, 12, 31, 23, 59, 59, 999999),
    datetime(2026, 7, 14, 9, 5, 3),
    datetime(2026, 7, 14, 9, 5, 3, 7),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
)


def _fast_datetime(slow: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """SQLite DATETIME's bind processor for naive datetimes through `isoformat` (a C call) instead
    of a %-format of a seven-key dict: ~16 per ADT message. Used only when it gives exactly the
    processor's text (checked here on sample times, and in tests/store); anything else goes to it."""

    def process(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return slow(value)

    same = all(process(t) == slow(t) for t in _PROBE_TIMES)
    return process if same else slow


@functools.lru_cache(maxsize=512)
def _insert_plan(
    table: Table, columns: tuple[str, ...], dialect: Dialect
) -> tuple[str, tuple[tuple[int, Callable[[Any], Any]], ...]]:
    """A driver-level INSERT of `columns` into `table` (qmark for sqlite3, `%s` for psycopg), and
    (position, bind processor) of the columns that have one; ("", ()) when a column left out has a
    default SQLAlchemy fills in itself (then it inserts)."""
    if any(c.default is not None for c in table.c if c.name not in columns):
        return "", ()
    mark = "?" if dialect.name == "sqlite" else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join([mark] * len(columns))})'
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for i, c in enumerate(columns):
        impl = table.c[c].type.dialect_impl(dialect)
        processor = impl.bind_processor(dialect)
        if processor is not None:
            processors.append((i, _fast_datetime(processor) if isinstance(impl, SqliteDateTime) else processor))
    return sql, tuple(processors)


@functools.cache
def _values_of(columns: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A row's values in `columns` order, taken in C (`itemgetter`; KeyError when a row lacks one):
    the audit writer inserts ~17 rows per event, and a generator per row was a fifth of its insert
    CPU, all of it holding the GIL; COPY rows are taken the same way."""
    if len(columns) == 1:
        (only,) = columns
        return lambda row: (row[only],)
    return operator.itemgetter(*columns)


def _converted(values: tuple[Any, ...], converting: Sequence[tuple[int, Callable[[Any], Any]]]) -> list[Any]:
    out = list(values)
    for i, process in converting:
        out[i] = process(out[i])
    return out


def sqlite_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table` on SQLite, in `conn`'s transaction,
    through the driver's own `executemany` with the columns' bind processors (DATETIME text,
    Boolean 0/1) applied here: a third of the cost of the same INSERT through SQLAlchemy's per-row
    parameter handling."""
    columns = tuple(rows[0])
    sql, processors = _insert_plan(table, columns, conn.dialect)
    if not sql:
        conn.execute(_insert(table), rows)
        return
    params: list[Any] = list(map(_values_of(columns), rows))
    if processors:  # (position, converter) of the columns that need one
        params = [_converted(values, processors) for values in params]
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    dbapi.executemany(sql, params)


def pg_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys) into `table` on PostgreSQL, in `conn`'s transaction,
    straight through psycopg (several rows as one `unnest` INSERT, `_unnest_insert`; pipelined, the
    statement prepared by psycopg after a few runs) with the columns' bind processors applied here.
    SQLAlchemy's executemany built its parameters row by row first: a quarter of the audit writer's
    CPU, and of every small write's flush. Driver errors come out as SQLAlchemy's (an
    `IntegrityError` is a conflict, as ever)."""
    if not _pipelined(conn.dialect, table, rows):
        conn.execute(_insert(table), rows)
        return
    with pg_pipeline(conn):
        _pg_insert(conn, table, rows)


def _pg_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    columns = tuple(rows[0])
    sql, processors = _insert_plan(table, columns, conn.dialect)
    try:
        params: list[Any] = list(map(_values_of(columns), rows)) if sql else []
    except KeyError:  # rows of one table with different keys: SQLAlchemy sends NULL for the missing
        sql = ""
    if not sql:
        conn.execute(_insert(table), rows)
        return
    if processors:
        params = [_converted(values, processors) for values in params]
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        if len(params) > 1:  # one array per column, one statement
            cur.execute(_unnest_insert(table, columns, conn.dialect), [list(c) for c in zip(*params, strict=True)])
        else:
            cur.executemany(sql, params)


@functools.lru_cache(maxsize=512)
def _unnest_insert(table: Table, columns: tuple[str, ...], dialect: Dialect) -> str:
    """`INSERT … SELECT * FROM unnest(column arrays)`: several rows of one table in ONE statement
    (its text fixed, so psycopg prepares it), each column one array parameter. psycopg's
    `executemany` of the same rows, even pipelined, handles every row in its Python layers and sends
    and reads back a message per row: 20 rows cost ~300 µs of client CPU that way, ~130 this way,
    and less server CPU too (micro-benchmark, session 7). The arrays go in binary (`%b`): in text,
    psycopg quotes every element with a regular expression, half the client CPU of such an insert
    (20 rows of seven columns: 220–243 µs in text, 122–126 in binary, session 8)."""
    casts = []
    for name in columns:
        pg_type = table.c[name].type.dialect_impl(dialect).compile(dialect=dialect)
        # No collation (the column's own applies) and no length: an explicit CAST to VARCHAR(64)
        # truncates silently, where storing into the column refuses a value too long, as before.
        pg_type = re.sub(r"\(.*?\)", "", pg_type.split(" COLLATE ")[0])
        casts.append(f"CAST(%b AS {pg_type}[])")
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({", ".join(casts)})'


def _pipelined(dialect: Dialect, table: Table, rows: list[dict[str, Any]]) -> bool:
    """Whether a table's pending rows go out by `_pg_insert`'s driver path, which may share a
    pipeline (COPY may not; a row set SQLAlchemy must complete goes through SQLAlchemy, outside)."""
    if not rows:
        return True
    columns = tuple(rows[0])
    return (
        len(rows) < _COPY_THRESHOLD
        and bool(_insert_plan(table, columns, dialect)[0])
        and all(len(row) == len(columns) and all(c in row for c in columns) for row in rows)
    )


@contextmanager
def pg_pipeline(conn: Connection) -> Iterator[None]:
    """A psycopg pipeline on `conn` for the driver-level statements inside: they go out together and
    are synced once at the end (one round trip for a flush's inserts into every table, not one
    per table). A driver error raised inside, or at the sync, comes out as SQLAlchemy's
    (`DBAPIError.instance`: an `IntegrityError` for a duplicate key)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with driver_errors(), raw.pipeline():
        yield


@contextmanager
def driver_errors() -> Iterator[None]:
    """psycopg errors raised inside come out as SQLAlchemy's, as if SQLAlchemy had sent the
    statement (`DBAPIError.instance`: an `IntegrityError` for a duplicate key, hence a 409)."""
    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(None, None, exc, psycopg.Error) from exc


# Statements built once (SQLAlchemy then reuses their compiled form): the hot reads of every write path.
@functools.cache
def _get_current(for_update: bool) -> Select[Any]:
    stmt = select(resource).where(resource.c.res_type == bindparam("rtype"), resource.c.res_id == bindparam("rid"))
    return stmt.with_for_update() if for_update else stmt


@functools.cache
def _versions() -> Select[Any]:
    """History rows with their content: a version's own, or, for the current version (stored once,
    in `resource`), the current row's."""
    v, r = resource_version.c, resource.c
    same_version = and_(r.res_type == v.res_type, r.res_id == v.res_id, r.version_id == v.version_id)
    return select(
        v.seq,
        v.res_type,
        v.res_id,
        v.version_id,
        v.last_updated,
        v.method,
        v.deleted,
        func.coalesce(v.content, r.content).label("content"),
    ).select_from(resource_version.outerjoin(resource, same_version))


@functools.cache
def _get_version() -> Select[Any]:
    v = resource_version.c
    return _versions().where(
        v.res_type == bindparam("rtype"), v.res_id == bindparam("rid"), v.version_id == bindparam("vid")
    )


@functools.cache
def keep_superseded(many: bool) -> Update:
    """Copy the current content of resources into their current version's history row.

    A version's content is stored once: while it is current, only in `resource` (its history row's
    content is NULL). Whatever replaces or deletes it runs this first, in the same transaction, so
    the history row keeps the content the current row is about to lose. Rows written before content
    was stored once already hold theirs and are left alone. Parameters: `rtype`, and `rid` (or,
    `many`, the list `rids`).
    """
    v, r = resource_version.c, resource.c
    content = (
        select(r.content)
        .where(r.res_type == v.res_type, r.res_id == v.res_id, r.version_id == v.version_id)
        .scalar_subquery()
    )
    which = v.res_id.in_(bindparam("rids", expanding=True)) if many else v.res_id == bindparam("rid")
    return (
        update(resource_version)
        .where(v.res_type == bindparam("rtype"), which, v.content.is_(None), v.deleted == false())
        .values(content=content)
    )


@functools.cache
def _set_current() -> Update:
    """The current row of a resource replaced by a new version (an update or a tombstone)."""
    r = resource.c
    return (
        update(resource)
        .where(r.res_type == bindparam("u_type"), r.res_id == bindparam("u_id"))
        .values(
            version_id=bindparam("u_version"),
            last_updated=bindparam("u_now"),
            deleted=bindparam("u_deleted"),
            content=bindparam("u_content"),
        )
    )


@functools.cache
def _delete_index(table: Table) -> Any:
    """A resource's rows in one index table (an update re-indexes it; a delete drops them)."""
    return delete(table).where(table.c.res_type == bindparam("rtype"), table.c.res_id == bindparam("rid"))


@functools.cache
def _pg_replace_current() -> Update:
    """PostgreSQL: `keep_superseded`, `_set_current` and every index table's `_delete_index` as ONE
    statement (data-modifying CTEs): one round trip instead of eight for each update or delete, a
    quarter of the MLLP intake's statements. The parts share one snapshot, so the history row still
    gets the content that the UPDATE of `resource` replaces."""
    stmt = _set_current().add_cte(keep_superseded(False).cte("keep"))
    for table in _INDEX_TABLES:
        stmt = stmt.add_cte(_delete_index(table).cte(f"drop_{table.name}"))
    return stmt


@functools.cache
def _ids_by_token(with_system: bool) -> Select[tuple[str]]:
    t = sp_token.c
    r = resource.c
    conds = [t.res_type == bindparam("rtype"), t.param == bindparam("param"), t.code == bindparam("code")]
    conds.append(t.system == bindparam("system") if with_system else t.system.is_(None))
    # IN (subquery) keeps SQLite on the (type, param, code, system) index without statistics.
    return select(r.res_id).where(
        r.res_type == bindparam("rtype"), r.deleted == false(), r.res_id.in_(select(t.res_id).where(*conds))
    )


@functools.cache
def _token_rows_stmt() -> Select[Any]:
    t = sp_token.c
    return select(t.res_id, t.system, t.code).where(
        t.res_type == bindparam("rtype"), t.param == bindparam("param"), t.code.in_(bindparam("codes", expanding=True))
    )


@functools.cache
def live_ids_stmt() -> Select[tuple[str]]:
    r = resource.c
    return select(r.res_id).where(
        r.res_type == bindparam("rtype"), r.res_id.in_(bindparam("ids", expanding=True)), r.deleted == false()
    )


def sqlite_rows(conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """A read straight through the sqlite3 driver, in `conn`'s transaction: for the few per-write
    lookups where SQLAlchemy's handling of an expanding list cost more than the query (the SQL is
    built once per count of values, with `?` marks; rows come back as the driver's tuples)."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    rows: list[Any] = dbapi.execute(sql, params).fetchall()
    return rows


@functools.lru_cache(maxsize=128)
def _sqlite_token_rows_sql(codes: int) -> str:
    """`_token_rows_stmt` as the SQLite driver takes it, for `codes` codes (the same statement text
    SQLAlchemy compiles, so the same plan: the (type, param, code, system) index)."""
    t = sp_token.name
    marks = ", ".join("?" * codes)
    return f"SELECT res_id, system, code FROM {t} WHERE res_type = ? AND param = ? AND code IN ({marks})"


def token_rows(conn: Connection, rtype: str, param: str, codes: list[str]) -> Iterable[Any]:
    """(res_id, system, code) of the `param` token index rows of `rtype` with one of `codes`.

    On SQLite straight through the driver: this is the intake's per-transaction identifier lookup,
    and SQLAlchemy's handling of the expanding list cost ~0.1–0.2 ms per call (every column is text).
    """
    if conn.dialect.name == "postgresql":
        return probes.token_rows(conn, rtype, param, codes)
    if conn.dialect.name == "sqlite" and codes:
        return sqlite_rows(conn, _sqlite_token_rows_sql(len(codes)), [rtype, param, *codes])
    return conn.execute(_token_rows_stmt(), {"rtype": rtype, "param": param, "codes": codes})


def refs_in(table: Table, refs: Iterable[tuple[str, str]]) -> Any:
    """`(res_type, res_id) IN refs` that SQLite answers from the primary key: grouped by type.

    A row-value IN list makes SQLite scan the whole key index (every stored resource) per query.
    """
    by_type: dict[str, list[str]] = {}
    for rtype, rid in refs:
        by_type.setdefault(rtype, []).append(rid)
    return or_(false(), *(and_(table.c.res_type == t, table.c.res_id.in_(ids)) for t, ids in by_type.items()))


@functools.lru_cache(maxsize=64)
def _fetch_stmt(types: int) -> Select[Any]:
    """`fetch_many`'s read of live rows of `types` resource types (`t0`, `i0` … type and ids), in the
    `refs_in` shape SQLite answers from the primary key. Built once per count of types, so a call
    costs no statement construction or cache-key walk (it ran per alert, per consent decision)."""
    r = resource.c
    by_type = (
        and_(r.res_type == bindparam(f"t{i}"), r.res_id.in_(bindparam(f"i{i}", expanding=True))) for i in range(types)
    )
    return select(resource).where(or_(*by_type), r.deleted == false())


class Store:
    """The one entry point to stored resources."""

    def __init__(self, engine: Engine, *, fhir_base: str, registry: SearchRegistry | None = None) -> None:
        self.engine = engine
        self.registry = registry or default_registry()
        self.index_ctx = IndexContext(fhir_base=fhir_base)
        self.fhir_base = fhir_base
        self._listeners: list[Callable[[list[StoredResource]], None]] = []
        self._before_write: dict[str, list[Callable[[dict[str, Any]], dict[str, Any]]]] = {}

    def before_write(self, rtype: str, hook: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Run `hook` on every `rtype` ("*": every type) about to be stored (any path: REST, bundles, intake).

        The hook returns the resource to store (possibly changed, e.g. a server-set status) or
        raises FhirError to refuse the write; it runs inside the writing transaction.
        """
        self._before_write.setdefault(rtype, []).append(hook)

    def on_commit(self, listener: Callable[[list[StoredResource]], None]) -> None:
        """Call `listener` with the versions a transaction wrote, after it commits."""
        self._listeners.append(listener)

    @contextmanager
    def writer(self) -> Iterator[UnitOfWork]:
        tx = WriteTransaction(self)
        try:
            yield tx.uow
        except IntegrityError as exc:
            tx.rollback()
            raise _write_conflict() from exc
        except BaseException:
            tx.rollback()
            raise
        tx.commit()
        self.committed(tx.uow.written)

    def committed(self, written: list[StoredResource]) -> None:
        """Tell the on-commit listeners the versions a transaction wrote, once it has committed
        (`writer` does; a writer that commits its own transaction calls it itself)."""
        if written:
            for listener in self._listeners:
                listener(written)

    @contextmanager
    def reader(self, *, autocommit: bool = False) -> Iterator[UnitOfWork]:
        """A read transaction. With `autocommit`, on PostgreSQL each statement runs on its own,
        with no BEGIN and COMMIT round trips: for a reader that writes nothing and needs no savepoint
        (at READ COMMITTED a transaction gives its statements no common snapshot anyway)."""
        if autocommit and self.engine.dialect.name == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                yield UnitOfWork(conn, self)
            return
        with self.engine.connect() as conn, conn.begin():
            yield UnitOfWork(conn, self)

    # Conveniences: one transaction each.
    def read(self, rtype: str, rid: str) -> StoredResource:
        with self.reader() as uow:
            return uow.read(rtype, rid)

    def create(self, res: dict[str, Any], *, rid: str | None = None) -> StoredResource:
        with self.writer() as uow:
            return uow.create(res, rid=rid)

    def update(self, res: dict[str, Any], *, if_match: int | None = None) -> StoredResource:
        with self.writer() as uow:
            return uow.update(res, if_match=if_match)[0]

    def search(self, q: SearchQuery) -> SearchPage:
        with self.reader() as uow:
            return uow.search(q)


def _write_conflict() -> Exception:
    return conflict("the write conflicts with a concurrent change; retry it")


class WriteTransaction:
    """One write transaction, opened here and ended by `commit` or `rollback`, possibly in another
    thread (`Store.writer` is this as a block). The bulk intake on PostgreSQL stages a chunk in one
    thread and commits it in another while it stages the next; the caller then tells the on-commit
    listeners itself (`Store.committed`)."""

    def __init__(self, store: Store) -> None:
        conn = store.engine.connect()
        if is_sqlite(store.engine):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        self._conn = conn
        self._trans = conn.begin()
        self.uow = UnitOfWork(conn, store)

    def commit(self) -> None:
        """Flush and commit; the connection is closed either way (rolled back on an error). Raises a
        conflict (409) for an integrity error."""
        try:
            if self.uow.pipelined():
                # the inserts and the COMMIT in one round trip (psycopg syncs the pipeline at COMMIT)
                try:
                    with pg_pipeline(self._conn):
                        self.uow.flush_tables()
                        self._trans.commit()
                except BaseException:
                    # a pipeline that failed at its COMMIT can leave the session in the aborted
                    # transaction whatever psycopg believes: the connection is not reused
                    self._conn.invalidate()
                    raise
            else:
                self.uow.flush()
                self._trans.commit()
        except IntegrityError as exc:
            raise _write_conflict() from exc
        finally:
            self._conn.close()

    def rollback(self) -> None:
        self._conn.close()  # closing a connection rolls its open transaction back


_FLUSH_ORDER = (resource, resource_version, *_INDEX_TABLES, outbox)


class UnitOfWork:
    """Reads and writes inside one database transaction."""

    def __init__(self, conn: Connection, store: Store) -> None:
        self.conn = conn
        self.store = store
        self.written: list[StoredResource] = []
        # Set by the caller's repository: completes each resource for who is writing it.
        self.prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._pending: dict[Table, list[dict[str, Any]]] = {}
        self._now = datetime.min
        # Stored live ids per (type, param, system, code) read by `preload_tokens`, kept current
        # with this transaction's own index changes (flushed rows added, dropped owners removed).
        self._token_ids: dict[tuple[str, str, str | None, str], list[str]] = {}
        # (system, value) Patient identifiers locked until commit and looked up again after the lock
        # (`gateway.intake.new_person.claim_new_people`): no other writer can make a Patient with one
        # unseen by this transaction, so making one needs no further lock or check.
        self.claimed_identifiers: set[tuple[str, str]] = set()
        # COPY data formatted ahead by `format_pending`: table → (rows it covers, statement, data).
        self._formatted: dict[Table, tuple[int, str, bytes]] = {}

    # -- buffering: inserts go out in one executemany per table --------------------------------

    def _queue(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._pending.setdefault(table, []).extend(rows)

    def pipelined(self) -> bool:
        """Whether what is buffered goes out in one psycopg pipeline (PostgreSQL, small batches, no COPY)."""
        dialect = self.conn.dialect
        return (
            dialect.name == "postgresql"
            and bool(self._pending)
            and all(_pipelined(dialect, t, rows) for t, rows in self._pending.items())
        )

    def flush(self) -> None:
        if self.pipelined():
            with pg_pipeline(self.conn):  # every table's small batch in one round trip
                self.flush_tables()
            return
        self.flush_tables()

    def flush_tables(self) -> None:
        """Send what is buffered, table by table in dependency order (inside the caller's pipeline
        when it opened one)."""
        self._flush_tables(_FLUSH_ORDER, copy=self.conn.dialect.name == "postgresql")

    def _flush_tables(self, order: Sequence[Table], *, copy: bool) -> None:
        sqlite = self.conn.dialect.name == "sqlite"
        for table in order:
            rows = self._pending.pop(table, None)
            if not rows:
                continue
            formatted = self._formatted.pop(table, None)
            if formatted is not None and formatted[0] == len(rows):
                self._send_copy(formatted[1], formatted[2])
            elif copy and len(rows) >= _COPY_THRESHOLD:
                self._copy(table, rows)
            elif sqlite:
                self._sqlite_insert(table, rows)
            elif copy:
                _pg_insert(self.conn, table, rows)
            else:
                self.conn.execute(_insert(table), rows)
            if table is sp_token and self._token_ids:
                for row in rows:
                    ids = self._token_ids.get((row["res_type"], row["param"], row.get("system"), row["code"]))
                    if ids is not None and row["res_id"] not in ids:
                        ids.append(row["res_id"])
        self._formatted.clear()

    def format_pending(self) -> None:
        """Format the COPY data of what is buffered now (PostgreSQL; elsewhere nothing to do), so that
        the next `flush`, run from another thread, only sends bytes.

        The bulk intake stages its next chunk while another thread copies in and commits the last:
        formatting row by row there held Python's lock ~15,000 times per chunk against the staging
        thread, and each hand-off cost both. Rows buffered after this call are formatted by `flush`.
        """
        if self.conn.dialect.name != "postgresql":
            return
        for table, rows in self._pending.items():
            if len(rows) >= _COPY_THRESHOLD:
                self._formatted[table] = (len(rows), *self._copy_data(table, rows))

    def _sqlite_insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        sqlite_insert(self.conn, table, rows)

    def _copy_rows(self, table: Table, rows: list[dict[str, Any]]) -> tuple[str, Iterable[Any]]:
        """The COPY statement for `rows` and their values in its column order."""
        columns = tuple(rows[0])
        names = ", ".join(f'"{c}"' for c in columns)
        # Rows of one table nearly always carry the same keys: one C-level itemgetter per row (a
        # fifth of the per-column `get`s' cost, ~300,000 rows per 10,000 extract rows). A row
        # lacking a column (a number row beside quantity rows) sends NULL for it, as `get` does.
        try:
            values: Iterable[Any] = list(map(_values_of(columns), rows))
        except KeyError:
            values = ()
        if not values:
            values = ([row.get(c) for c in columns] for row in rows)
        return f'COPY "{table.name}" ({names}) FROM STDIN', values

    def _copy(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """PostgreSQL COPY: one round trip for a bulk of rows, in this same transaction (formatted,
        then sent whole, as `format_pending` does ahead of time)."""
        self._send_copy(*self._copy_data(table, rows))

    def _copy_data(self, table: Table, rows: list[dict[str, Any]]) -> tuple[str, bytes]:
        """The COPY statement for `rows` and its text-format data, formatted by psycopg as `_copy`
        would send it (a `Copy` writing to memory: nothing goes to the server)."""
        raw = self.conn.connection.driver_connection
        assert raw is not None
        sql, values = self._copy_rows(table, rows)
        data = io.BytesIO()
        with raw.cursor() as cur, Copy(cur, binary=False, writer=FileWriter(data)) as out:
            for value in values:
                out.write_row(value)
        return sql, data.getvalue()

    def _send_copy(self, sql: str, data: bytes) -> None:
        """COPY of data formatted by `_copy_data`, all of it handed to libpq at once (no flush
        before the end), so the sending thread waits on the socket, not on Python, a few times. A
        driver error comes out as SQLAlchemy's (a duplicate key: `IntegrityError`, a conflict)."""
        raw = self.conn.connection.driver_connection
        assert raw is not None
        with (
            driver_errors(),
            raw.cursor() as cur,
            cur.copy(sql, writer=LibpqWriter(cur, flush_threshold=len(data) + 1)) as out,
        ):
            out.write(data)

    def _tick(self) -> datetime:
        """Strictly increasing write times inside this transaction, so history orders cleanly."""
        now = utcnow()
        if now <= self._now:
            now = self._now + timedelta(microseconds=1)
        self._now = now
        return now

    # -- reads ----------------------------------------------------------------------------------

    def get(self, rtype: str, rid: str, *, for_update: bool = False) -> StoredResource | None:
        """The current version (possibly a tombstone), or None if it never existed."""
        self.flush()
        stmt = _get_current(for_update and not is_sqlite(self.store.engine))
        row = self.conn.execute(stmt, {"rtype": rtype, "rid": rid}).first()
        return _row_to_stored(row) if row is not None else None

    def read(self, rtype: str, rid: str) -> StoredResource:
        found = self.get(rtype, rid)
        if found is None:
            raise not_found(f"{rtype}/{rid}")
        if found.deleted:
            raise gone(f"{rtype}/{rid}")
        return found

    def vread(self, rtype: str, rid: str, vid: int) -> StoredResource:
        self.flush()
        row = self.conn.execute(_get_version(), {"rtype": rtype, "rid": rid, "vid": vid}).first()
        if row is None:
            raise not_found(f"{rtype}/{rid}/_history/{vid}")
        stored = _row_to_stored(row, row.method, row.seq)
        if stored.deleted:
            raise gone(f"{rtype}/{rid}/_history/{vid}")
        return stored

    def fetch_many(self, refs: Iterable[tuple[str, str]]) -> list[StoredResource]:
        """Current, non-deleted versions of the given (type, id) pairs, in the order asked."""
        wanted = list(dict.fromkeys(refs))
        if not wanted:
            return []
        if self.written and not {(w.type, w.id) for w in self.written}.isdisjoint(wanted):
            self.flush()  # only this transaction's own writes need sending before they can be read back
        found: dict[tuple[str, str], StoredResource] = {}
        if self.conn.dialect.name == "postgresql":  # a probe per key, whatever the statistics say
            for row in probes.resource_rows(self.conn, wanted):
                if not row.deleted:
                    found[(row.res_type, row.res_id)] = _row_to_stored(row)
            return [found[r] for r in wanted if r in found]
        for start in range(0, len(wanted), 500):
            by_type: dict[str, list[str]] = {}
            for rtype, rid in wanted[start : start + 500]:
                by_type.setdefault(rtype, []).append(rid)
            params: dict[str, Any] = {}
            for i, (rtype, ids) in enumerate(by_type.items()):
                params[f"t{i}"] = rtype
                params[f"i{i}"] = ids
            for row in self.conn.execute(_fetch_stmt(len(by_type)), params):
                found[(row.res_type, row.res_id)] = _row_to_stored(row)
        return [found[r] for r in wanted if r in found]

    @staticmethod
    def version_filter(rtype: str | None, rid: str | None, since: datetime | None) -> list[ColumnElement[bool]]:
        """The history rows of a type, one resource or the whole system, optionally since a time."""
        v = resource_version.c
        conds: list[ColumnElement[bool]] = []
        if rtype:
            conds.append(v.res_type == rtype)
        if rid:
            conds.append(v.res_id == rid)
        if since:
            conds.append(v.last_updated >= since)
        return conds

    def count_versions(self, conds: list[ColumnElement[bool]]) -> int:
        """How many history rows match `conds` (after flushing this transaction's writes)."""
        self.flush()
        return int(self.conn.execute(select(func.count()).select_from(resource_version).where(*conds)).scalar_one())

    def history(
        self,
        rtype: str | None = None,
        rid: str | None = None,
        *,
        since: datetime | None = None,
        before_seq: int | None = None,
        count: int = 50,
    ) -> tuple[list[StoredResource], int]:
        """Versions newest first, `count` per page below `before_seq`; and the total."""
        v = resource_version.c
        conds = self.version_filter(rtype, rid, since)
        total = self.count_versions(conds)
        if before_seq is not None:
            conds.append(v.seq < before_seq)
        rows = self.conn.execute(_versions().where(*conds).order_by(v.seq.desc()).limit(count))
        return [_row_to_stored(r, r.method, r.seq) for r in rows], int(total)

    def versions(self, rtype: str, wanted: Iterable[tuple[str, int]]) -> list[StoredResource]:
        """These versions ((id, version) pairs of one type) as stored, tombstones included; unknown
        ones are left out. One query per 500 ids."""
        keep = set(wanted)
        ids = sorted({rid for rid, _ in keep})
        if not ids:
            return []
        self.flush()
        if self.conn.dialect.name == "postgresql":  # a probe per key, whatever the statistics say
            rows = probes.version_rows(self.conn, [(rtype, rid, version) for rid, version in sorted(keep)])
            return [_row_to_stored(r, r.method, r.seq) for r in rows]
        v = resource_version.c
        out: list[StoredResource] = []
        for start in range(0, len(ids), 500):
            # by id, then the versions wanted picked here: a row-value IN would scan every version
            stmt = _versions().where(v.res_type == rtype, v.res_id.in_(ids[start : start + 500]))
            out.extend(
                _row_to_stored(r, r.method, r.seq) for r in self.conn.execute(stmt) if (r.res_id, r.version_id) in keep
            )
        return out

    def search(self, q: SearchQuery) -> SearchPage:
        self.flush()
        res = resource
        ctx = self.store.index_ctx
        conds = base_conditions(res, q, ctx)
        total: int | None = None
        if q.total != "none":
            total = int(self.conn.execute(select(func.count()).select_from(res).where(*conds)).scalar_one())
        if q.count == 0:
            return SearchPage([], total, None, None, False, False)
        cols = sort_columns(res, q)
        backwards = q.cursor.backwards if q.cursor else False
        if q.cursor is not None:
            conds.append(keyset_condition(cols, q.cursor.key, backwards))
        order = [c.desc() if (desc != backwards) else c.asc() for c, desc in cols]
        key_cols = [c.label(f"k{i}") for i, (c, _) in enumerate(cols)]
        stmt = (
            select(
                res.c.res_type,
                res.c.res_id,
                res.c.version_id,
                res.c.last_updated,
                res.c.deleted,
                res.c.content,
                *key_cols,
            )
            .where(*conds)
            .order_by(*order)
            .limit(q.count + 1)
        )
        rows = list(self.conn.execute(stmt))
        more = len(rows) > q.count
        rows = rows[: q.count]
        if backwards:
            rows.reverse()
        keys = [tuple(row[6 + i] for i in range(len(cols))) for row in rows]
        page = SearchPage(
            rows=[_row_to_stored(r) for r in rows],
            total=total,
            first_key=keys[0] if keys else None,
            last_key=keys[-1] if keys else None,
            has_next=more if not backwards else True,
            has_previous=(q.cursor is not None) if not backwards else more,
            keys=keys,
        )
        if rows and (q.includes or q.revincludes):
            page.included = self._included(q, [r.id for r in page.rows])
        return page

    def _included(self, q: SearchQuery, ids: list[str]) -> list[StoredResource]:
        from gateway.store.schema import sp_reference

        ref = sp_reference.c
        targets: list[tuple[str, str]] = []
        for inc in q.includes:
            conds = [ref.res_type == inc.source_type, ref.param == inc.param.code, ref.res_id.in_(ids)]
            if inc.target_type:
                conds.append(ref.target_type == inc.target_type)
            for row in self.conn.execute(select(ref.target_type, ref.target_id).where(*conds)):
                if row.target_type and row.target_id:
                    targets.append((row.target_type, row.target_id))
        for rev in q.revincludes:
            rows = self.conn.execute(
                select(ref.res_id).where(
                    ref.res_type == rev.source_type,
                    ref.param == rev.param.code,
                    ref.target_type == q.resource_type,
                    ref.target_id.in_(ids),
                )
            )
            targets.extend((rev.source_type, r.res_id) for r in rows)
        already = {(q.resource_type, i) for i in ids}
        return self.fetch_many(t for t in targets if t not in already)

    def preload_tokens(self, param: str, tokens: Iterable[tuple[str, str | None, str]]) -> None:
        """Look up many (type, system, code) tokens under `param` at once, so that `ids_by_token`
        answers them without a query each (a group commit's batch: one query per type, not three
        per message). Answers stay current for the rest of this transaction."""
        wanted = {(rtype, param, system, code) for rtype, system, code in tokens}
        wanted -= self._token_ids.keys()
        if not wanted:
            return
        self.flush()
        by_type: dict[str, set[str]] = {}
        for rtype, _, _, code in wanted:
            by_type.setdefault(rtype, set()).add(code)
        for key in wanted:
            self._token_ids[key] = []
        for rtype, codes in by_type.items():
            found: list[tuple[tuple[str, str, str | None, str], str]] = []
            for rid, system, code in token_rows(self.conn, rtype, param, sorted(codes)):
                key = (rtype, param, system, code)
                if key in wanted:
                    found.append((key, rid))
            if found:
                params = {"rtype": rtype, "ids": sorted({rid for _, rid in found})}
                live = {row.res_id for row in self.conn.execute(live_ids_stmt(), params)}
                for key, rid in found:
                    if rid in live and rid not in self._token_ids[key]:
                        self._token_ids[key].append(rid)

    def ids_by_token(self, rtype: str, param: str, system: str | None, code: str) -> list[str]:
        """Live ids with a token (system|code) under `param`: the intake's identifier lookup, one query
        (none when `preload_tokens` read it already).

        Index rows still buffered in this unit of work count without being flushed first (a write
        drops a resource's old index rows at once, so stored + buffered is the current answer).
        """
        preloaded = self._token_ids.get((rtype, param, system, code))
        if preloaded is not None:
            ids = list(preloaded)
        else:
            params = {"rtype": rtype, "param": param, "code": code, "system": system}
            ids = [row.res_id for row in self.conn.execute(_ids_by_token(system is not None), params)]
        for row in self._pending.get(sp_token, ()):
            if (
                row.get("code") == code
                and row["res_id"] not in ids
                and (row["res_type"], row["param"], row.get("system")) == (rtype, param, system)
            ):
                ids.append(row["res_id"])
        return ids

    def find_ids(self, q: SearchQuery) -> list[str]:
        """Ids matching a (conditional-operation) search, at most `q.count + 1` of them."""
        page = self.search(replace(q, total="none"))
        return [r.id for r in page.rows]

    # -- writes ---------------------------------------------------------------------------------

    def _write(self, res: dict[str, Any], version: int, method: str, *, exists: bool) -> StoredResource:
        rtype, rid = res["resourceType"], res["id"]
        now = self._tick()
        meta = dict(res.get("meta") or {})
        meta["versionId"] = str(version)
        meta["lastUpdated"] = instant(now)
        res["meta"] = meta
        content = orjson.dumps(res)
        text = content.decode()
        if exists:
            self.flush()
            self._replace_current(rtype, rid, version, now, text)
        else:
            self._queue(
                resource,
                [
                    dict(
                        res_type=rtype,
                        res_id=rid,
                        version_id=version,
                        last_updated=now,
                        deleted=False,
                        content=text,
                    )
                ],
            )
        self._queue(
            resource_version,
            [
                dict(
                    res_type=rtype,
                    res_id=rid,
                    version_id=version,
                    last_updated=now,
                    method=method,
                    deleted=False,
                    content=None,  # stored once, in `resource`, until a later version supersedes it
                )
            ],
        )
        for table, rows in index_rows(res, self.store.registry, self.store.index_ctx).items():
            self._queue(table, rows)
        if rtype not in SILENT_TYPES:
            self._queue(outbox, [dict(created_at=now, res_type=rtype, res_id=rid, version_id=version, method=method)])
        stored = StoredResource(rtype, rid, version, now, False, content, method)
        self.written.append(stored)
        return stored

    def _prepared(self, res: dict[str, Any]) -> dict[str, Any]:
        """The resource as it will be stored: completed for its writer, then by the store's hooks.

        Runs before the no-change comparison, so a re-sent resource that the hooks complete the same
        way writes nothing.
        """
        if self.prepare is not None:
            res = self.prepare(res)
        rtype = res["resourceType"]
        for hook in (*self.store._before_write.get(rtype, ()), *self.store._before_write.get("*", ())):
            res = hook(res)
        return res

    def _replace_current(self, rtype: str, rid: str, version: int, now: datetime, content: str | None) -> None:
        """The current row replaced by `version` (`content` None: a tombstone): the superseded
        content kept in its history row first, and the resource's index rows dropped."""
        current = {"u_type": rtype, "u_id": rid, "u_version": version, "u_now": now}
        current |= {"u_deleted": content is None, "u_content": content, "rtype": rtype, "rid": rid}
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(_pg_replace_current(), current)  # one statement, not eight
            self._forget_tokens(rtype, rid)
            return
        self.conn.execute(keep_superseded(False), current)
        self.conn.execute(_set_current(), current)
        self._drop_index(rtype, rid)

    def _drop_index(self, rtype: str, rid: str) -> None:
        for table in _INDEX_TABLES:
            self.conn.execute(_delete_index(table), {"rtype": rtype, "rid": rid})
        self._forget_tokens(rtype, rid)

    def _forget_tokens(self, rtype: str, rid: str) -> None:
        """Drop `rid` from the identifier lookups answered so far (its index rows are gone)."""
        for key, ids in self._token_ids.items():
            if key[0] == rtype and rid in ids:
                ids.remove(rid)

    def create(self, res: dict[str, Any], *, rid: str | None = None) -> StoredResource:
        """Store a new resource with a server-assigned (or given) id, as version 1."""
        res = dict(res)
        res["id"] = rid or new_id()
        return self._write(self._prepared(res), 1, "POST", exists=False)

    def update(self, res: dict[str, Any], *, if_match: int | None = None) -> tuple[StoredResource, bool]:
        """Store a new version (or create with the client's id); returns (stored, created).

        An update whose content equals the current version writes nothing and returns the
        current version, so re-sent data never makes new versions or events.
        """
        rtype, rid = res["resourceType"], res["id"]
        res = self._prepared(dict(res))
        current = self.get(rtype, rid, for_update=True)
        if if_match is not None:
            if current is None or current.deleted or current.version_id != if_match:
                have = "no current version" if current is None or current.deleted else f"version {current.version_id}"
                raise precondition_failed(f"If-Match expected version {if_match} of {rtype}/{rid}, found {have}")
        if current is None:
            return self._write(dict(res), 1, "PUT", exists=False), True
        if not current.deleted and current.content is not None:
            if _comparable(orjson.loads(current.content)) == _comparable(res):
                return current, False
        return self._write(dict(res), current.version_id + 1, "PUT", exists=True), current.deleted

    def delete(self, rtype: str, rid: str) -> StoredResource | None:
        """Write a tombstone version; None when there was nothing live to delete."""
        current = self.get(rtype, rid, for_update=True)
        if current is None or current.deleted:
            return None
        now = self._tick()
        version = current.version_id + 1
        self._replace_current(rtype, rid, version, now, None)
        self._queue(
            resource_version,
            [
                dict(
                    res_type=rtype,
                    res_id=rid,
                    version_id=version,
                    last_updated=now,
                    method="DELETE",
                    deleted=True,
                    content=None,
                )
            ],
        )
        self._queue(outbox, [dict(created_at=now, res_type=rtype, res_id=rid, version_id=version, method="DELETE")])
        stored = StoredResource(rtype, rid, version, now, True, None, "DELETE")
        self.written.append(stored)
        return stored


__all__ = [
    "Cursor",
    "IncludeSpec",
    "SearchPage",
    "SearchQuery",
    "Store",
    "StoredResource",
    "UnitOfWork",
    "instant",
    "new_id",
    "utcnow",
]
