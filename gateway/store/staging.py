"""A unit of work that stages a bulk writer's changes in memory and writes the net result at once.

The social-care intake writes a few hundred extract rows per transaction, each row finding its
resources by identifier, comparing, merging and updating them. Done against the database that is a
dozen round trips per row. `StagingUnitOfWork` answers the same calls (`ids_by_token`,
`fetch_many`, `get`, `create`, `update`) from resources preloaded for the whole chunk (a query per
resource type for the identifiers, one for the resources holding them) and from what earlier rows
staged, so the shared write helpers (`find_one`, `upsert_by_identifier`, `PersonResolver`) run
unchanged on it. `apply()` then writes one new version per changed resource,
in bulk (COPY on PostgreSQL).

Semantics kept from `UnitOfWork`: the store's write hooks run when a resource is staged, and an
update equal to the current content (server meta aside) stages nothing. What differs, on purpose:
a resource changed by several rows of one chunk gets one new version, not one per row.

`mark()` / `undo(mark)` take back what one row staged, so a row that fails half way (an ambiguous
identifier) leaves no trace while the chunk's other rows go in.

In flight: on PostgreSQL a bulk writer stages its next chunk while the previous one is still being
copied in and committed on another connection (`InFlight`: the versions that chunk wrote, with their
identifier tokens). Those count as stored: their identifiers find them (and the database's stale
index rows for them are ignored) and their versions are the bases of this chunk's changes. Their
rows could not be read under a lock here (not committed yet), so `write_out` locks them once that
chunk has committed and checks that each still holds the version staged on, before anything is
written; a resource another writer changed in between makes the chunk a conflict (409).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import orjson
from sqlalchemy import delete, select

from gateway.fhir.errors import conflict
from gateway.store import probes
from gateway.store.api import (
    _INDEX_TABLES,
    SearchQuery,
    StoredResource,
    UnitOfWork,
    _comparable,
    keep_superseded,
    new_id,
)
from gateway.store.engine import is_sqlite
from gateway.store.schema import resource, sp_token
from gateway.store.search.paths import evaluate

Token = tuple[str, str | None, str]  # (resource type, system, code) of an `identifier`
Key = tuple[str, str]  # (resource type, id)

_IDENTIFIER = "identifier"
_BATCH = 500  # values per IN list


@dataclass(frozen=True)
class InFlight:
    """A version written by a transaction not committed yet, and the identifier tokens it holds."""

    stored: StoredResource
    tokens: frozenset[Token]


@dataclass(frozen=True)
class _Staged:
    """A resource's content as staged; `base` is the version it was read at (None: new)."""

    content: dict[str, Any]
    raw: bytes
    tokens: frozenset[Token]
    base: StoredResource | None
    method: str


class StagingUnitOfWork(UnitOfWork):
    """Reads through to `inner`'s transaction, writes into memory until `apply()`.

    Only what the intakes' identifier-keyed writes need is supported; search, history and delete
    raise, because they would not see the staged changes.
    """

    def __init__(self, inner: UnitOfWork, in_flight: Mapping[Key, InFlight] | None = None) -> None:
        super().__init__(inner.conn, inner.store)
        self.inner = inner
        self.prepare = inner.prepare
        self._lock = not is_sqlite(inner.store.engine)  # SQLite: the writer already holds the database
        self._base: dict[Key, StoredResource | None] = {}  # as read in this transaction (None: absent)
        self._db_tokens: dict[Token, set[str]] = {}  # ids holding each looked-up token, as read
        self._staged: dict[Key, _Staged] = {}
        self._staged_tokens: dict[Token, set[str]] = {}
        self._log: list[tuple[Key, _Staged | None]] = []  # undo log: (key, entry before)
        self._changes: dict[str, int] = {}  # stagings (and undos) per resource type
        self._flight: Mapping[Key, InFlight] = in_flight or {}
        self._flight_tokens: dict[Token, set[str]] = {}
        for (_, rid), flying in self._flight.items():
            for token in flying.tokens:
                self._flight_tokens.setdefault(token, set()).add(rid)
        self._unlocked: set[Key] = set()  # bases taken from in-flight versions: locked by `write_out`
        self._replaced: list[Key] = []  # current rows `write_out` replaces

    # -- loading --------------------------------------------------------------------------------

    def preload(self, tokens: Iterable[Token]) -> None:
        """Look up many identifier tokens at once, and read (and lock) the resources holding them."""
        wanted = {t for t in tokens if t not in self._db_tokens}
        if not wanted:
            return
        for token in wanted:
            self._db_tokens[token] = set()
        self._probe(wanted)

    def unheld(self, tokens: Iterable[Token]) -> list[Token]:
        """Of `tokens` (preloaded), those no stored resource held when they were looked up."""
        return [t for t in tokens if not self._db_tokens.get(t, True)]

    def reload(self, tokens: Iterable[Token]) -> None:
        """Look `tokens` up again (they were preloaded): after taking locks that another writer
        held while making the resources, this transaction's reads see what that writer committed."""
        wanted = {t for t in tokens if t in self._db_tokens}
        if wanted:
            self._probe(wanted)

    def _probe(self, wanted: set[Token]) -> None:
        self.inner.flush()
        by_type: dict[str, set[str]] = {}
        for rtype, _, code in wanted:
            by_type.setdefault(rtype, set()).add(code)
        found: set[Key] = set()
        for rtype, codes in by_type.items():
            values = sorted(codes)
            for start in range(0, len(values), _BATCH):
                for row in self._token_rows(rtype, values[start : start + _BATCH]):
                    token = (rtype, row.system, row.code)
                    if token in wanted:
                        self._db_tokens[token].add(row.res_id)
        if self._flight:  # the in-flight chunk's versions replace what the database still shows
            for token in wanted:
                rtype = token[0]
                ids = {i for i in self._db_tokens[token] if (rtype, i) not in self._flight}
                self._db_tokens[token] = ids | self._flight_tokens.get(token, set())
        for token in wanted:
            found.update((token[0], rid) for rid in self._db_tokens[token])
        self._read([k for k in found if k not in self._base])

    def _token_rows(self, rtype: str, codes: list[str]) -> Iterable[Any]:
        """(res_id, system, code) of the `identifier` index rows of `rtype` with one of `codes`."""
        if self._lock:
            # PostgreSQL without statistics (autovacuum off, a fresh table) reads `code IN (…)` as a
            # filter over every identifier of the type; one index probe per code keeps it a lookup.
            return probes.token_rows(self.conn, rtype, _IDENTIFIER, codes)
        t = sp_token.c
        return self.conn.execute(
            select(t.res_id, t.system, t.code).where(t.res_type == rtype, t.param == _IDENTIFIER, t.code.in_(codes))
        )

    def _read(self, keys: list[Key]) -> None:
        """Current versions of `keys` into `_base` (absent ones as None), locked on PostgreSQL; the
        in-flight chunk's from memory (the database would make this wait for its commit)."""
        if self._flight:
            for key in [k for k in keys if k in self._flight]:
                self._base[key] = self._flight[key].stored
                self._unlocked.add(key)
            keys = [k for k in keys if k not in self._flight]
        for key in keys:
            self._base[key] = None
        r = resource.c
        by_type: dict[str, list[str]] = {}
        for rtype, rid in keys:
            by_type.setdefault(rtype, []).append(rid)
        for rtype, ids in sorted(by_type.items()):
            ids.sort()  # one lock order for every writer
            for start in range(0, len(ids), _BATCH):
                stmt = select(resource).where(r.res_type == rtype, r.res_id.in_(ids[start : start + _BATCH]))
                if self._lock:
                    stmt = stmt.order_by(r.res_id).with_for_update()
                for row in self.conn.execute(stmt):
                    content = row.content
                    self._base[(rtype, row.res_id)] = StoredResource(
                        type=rtype,
                        id=row.res_id,
                        version_id=row.version_id,
                        last_updated=row.last_updated,
                        deleted=bool(row.deleted),
                        content=content.encode() if isinstance(content, str) else content,
                    )

    # -- reads ----------------------------------------------------------------------------------

    def _current(self, key: Key) -> StoredResource | None:
        entry = self._staged.get(key)
        if entry is not None:
            version = entry.base.version_id + 1 if entry.base is not None else 1
            base_time = entry.base.last_updated if entry.base is not None else self._now
            return StoredResource(key[0], key[1], version, base_time, False, entry.raw, entry.method)
        if key not in self._base:
            self._read([key])
        return self._base[key]

    def get(self, rtype: str, rid: str, *, for_update: bool = False) -> StoredResource | None:
        return self._current((rtype, rid))

    def fetch_many(self, refs: Iterable[tuple[str, str]]) -> list[StoredResource]:
        wanted = list(dict.fromkeys(refs))
        self._read([k for k in wanted if k not in self._staged and k not in self._base])
        found = (self._current(k) for k in wanted)
        return [s for s in found if s is not None and not s.deleted]

    def ids_by_token(self, rtype: str, param: str, system: str | None, code: str) -> list[str]:
        if param != _IDENTIFIER:
            raise NotImplementedError("staged lookups are by identifier only")
        token = (rtype, system, code)
        self.preload([token])
        ids = {i for i in self._db_tokens[token] if (rtype, i) not in self._staged}
        ids |= self._staged_tokens.get(token, set())
        live = self.fetch_many((rtype, i) for i in sorted(ids))
        return [s.id for s in live]

    # -- writes ---------------------------------------------------------------------------------

    def _tokens(self, res: dict[str, Any]) -> frozenset[Token]:
        rtype = res["resourceType"]
        param = self.store.registry.get(rtype, _IDENTIFIER)
        if param is None:
            return frozenset()
        ctx = self.store.index_ctx
        return frozenset(
            (rtype, row["system"], row["code"])
            for value in evaluate(param.paths, res)
            for row in param.kind.extract(value, ctx)
        )

    def _stage(self, res: dict[str, Any], base: StoredResource | None, method: str) -> StoredResource:
        key = (res["resourceType"], res["id"])
        previous = self._staged.get(key)
        if previous is not None:
            base, method = previous.base, previous.method
        entry = _Staged(res, orjson.dumps(res), self._tokens(res), base, method)
        self._log.append((key, previous))
        self._put(key, entry, previous)
        stored = self._current(key)
        assert stored is not None
        return stored

    def _put(self, key: Key, entry: _Staged | None, replacing: _Staged | None) -> None:
        self._changes[key[0]] = self._changes.get(key[0], 0) + 1
        if replacing is not None:
            for token in replacing.tokens:
                self._staged_tokens[token].discard(key[1])
        if entry is None:
            self._staged.pop(key, None)
            return
        self._staged[key] = entry
        for token in entry.tokens:
            self._staged_tokens.setdefault(token, set()).add(key[1])

    def create(self, res: dict[str, Any], *, rid: str | None = None) -> StoredResource:
        res = dict(res)
        res["id"] = rid or new_id()
        return self._stage(self._prepared(res), None, "POST")

    def update(self, res: dict[str, Any], *, if_match: int | None = None) -> tuple[StoredResource, bool]:
        if if_match is not None:
            raise NotImplementedError("staged updates are unconditional")
        res = self._prepared(dict(res))
        key = (res["resourceType"], res["id"])
        current = self._current(key)
        if current is None:
            return self._stage(res, None, "PUT"), True
        if not current.deleted and current.content is not None:
            if _comparable(orjson.loads(current.content)) == _comparable(res):
                return current, False
        base = self._base.get(key)
        return self._stage(res, base, "PUT"), current.deleted

    # -- rows: take back what one row staged ----------------------------------------------------

    def mark(self) -> int:
        return len(self._log)

    def undo(self, mark: int) -> None:
        """Forget everything staged since `mark`."""
        while len(self._log) > mark:
            key, previous = self._log.pop()
            self._put(key, previous, self._staged.get(key))

    def changes(self, rtype: str) -> int:
        """A counter that moves whenever a resource of `rtype` is staged or taken back."""
        return self._changes.get(rtype, 0)

    def changed_since(self, mark: int) -> list[Key]:
        """The resources staged since `mark`, in the order first staged."""
        return list(dict.fromkeys(key for key, _ in self._log[mark:]))

    def staged(self, rtype: str) -> Iterator[StoredResource]:
        """The staged resources of one type (as `get` returns them)."""
        for key in list(self._staged):
            if key[0] == rtype:
                stored = self._current(key)
                if stored is not None:
                    yield stored

    # -- writing out ----------------------------------------------------------------------------

    def apply(self) -> dict[Key, StoredResource]:
        """Write one version per resource that differs from what was read; returns them by key.

        A resource staged by several rows gets one version; one that ends where it started gets none.
        """
        written = self.finish()
        self.write_out()
        return {key: flying.stored for key, flying in written.items()}

    def finish(self) -> dict[Key, InFlight]:
        """`apply`'s work in memory: the new versions queued in the inner unit of work and returned
        with their identifier tokens (what a next chunk may stage on). `write_out` must follow
        before that unit of work flushes: it drops the current rows the new versions replace."""
        self.inner.flush()
        written: dict[Key, InFlight] = {}
        for key, entry in self._staged.items():
            base = entry.base
            if base is not None and not base.deleted and base.content is not None:
                if _comparable(orjson.loads(base.content)) == _comparable(entry.content):
                    continue
            if base is not None:
                self._replaced.append(key)
            version = base.version_id + 1 if base is not None else 1
            stored = self.inner._write(dict(entry.content), version, entry.method, exists=False)
            written[key] = InFlight(stored, entry.tokens)
        self._staged.clear()
        self._staged_tokens.clear()
        self._log.clear()
        return written

    def write_out(self) -> None:
        """The database half of `apply`, run once the in-flight chunk (if any) has committed: lock
        the bases taken from it and check each still holds the version staged on, then drop the
        current rows the new versions replace (their content kept in history). No flush: the new
        rows queued by `finish` must follow the drop.

        Raises a conflict (409) when another writer changed one of those resources in between.
        """
        self._check_unlocked(sorted(self._unlocked))
        self._unlocked.clear()
        self._delete_current(self._replaced)
        self._replaced = []

    def _check_unlocked(self, keys: list[Key]) -> None:
        r = resource.c
        by_type: dict[str, list[str]] = {}
        for rtype, rid in keys:
            by_type.setdefault(rtype, []).append(rid)
        for rtype, ids in sorted(by_type.items()):
            for start in range(0, len(ids), _BATCH):
                batch = ids[start : start + _BATCH]
                stmt = select(r.res_id, r.version_id, r.deleted).where(r.res_type == rtype, r.res_id.in_(batch))
                if self._lock:
                    stmt = stmt.order_by(r.res_id).with_for_update()
                held = {row.res_id: (row.version_id, bool(row.deleted)) for row in self.conn.execute(stmt)}
                for rid in batch:
                    base = self._base.get((rtype, rid))
                    if base is None or held.get(rid) != (base.version_id, base.deleted):
                        raise conflict(f"{rtype}/{rid} was changed by another writer while this chunk was staged")

    def _delete_current(self, keys: list[Key]) -> None:
        """Drop the current rows (and index rows) of resources about to get a new version, after
        their content is kept in the history row of the version they held."""
        by_type: dict[str, list[str]] = {}
        for rtype, rid in keys:
            by_type.setdefault(rtype, []).append(rid)
        for rtype, ids in by_type.items():
            for start in range(0, len(ids), _BATCH):
                batch = ids[start : start + _BATCH]
                self.conn.execute(keep_superseded(True), {"rtype": rtype, "rids": batch})
                for table in (resource, *_INDEX_TABLES):
                    self.conn.execute(delete(table).where(table.c.res_type == rtype, table.c.res_id.in_(batch)))

    # -- not supported while staging ------------------------------------------------------------

    def search(self, q: SearchQuery) -> NoReturn:
        raise _unsupported()

    def find_ids(self, q: SearchQuery) -> NoReturn:
        raise _unsupported()

    def history(
        self,
        rtype: str | None = None,
        rid: str | None = None,
        *,
        since: datetime | None = None,
        before_seq: int | None = None,
        count: int = 50,
    ) -> NoReturn:
        raise _unsupported()

    def vread(self, rtype: str, rid: str, vid: int) -> NoReturn:
        raise _unsupported()

    def delete(self, rtype: str, rid: str) -> NoReturn:
        raise _unsupported()


def _unsupported() -> NotImplementedError:
    return NotImplementedError("not available while writes are staged: they would not see them")


__all__ = ["InFlight", "Key", "StagingUnitOfWork", "Token"]
