"""A search's matches named by stored version, for a caller who may not see them all.

Counting what a restricted caller may see means deciding every match, and a decision needs a
resource's class, which is remembered per stored version (`gateway.fhir.access`). So the
matches come back as (type, id, version) and their sort keys; a match becomes a resource (its
content parsed to a `StoredResource`) only when a decision or the page needs it, from the
content its statement brought or, if it brought none, read exactly by version. A version never
changes, so what is read later is what matched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, null, select

from gateway.fhir.repository import LoadVersions, VersionRef
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.schema import resource, resource_version
from gateway.store.search.query import SearchQuery, base_conditions, keyset_condition, sort_columns

_CHUNK = 500  # ids per IN list


class Matches:
    """Matches of a search in its sort order: each named by version, with its sort key, and the
    content the statement brought (if it was asked to)."""

    def __init__(self) -> None:
        self.refs: list[VersionRef] = []
        self.keys: list[tuple[Any, ...]] = []
        self._rows: dict[VersionRef, tuple[datetime, Any]] = {}

    def __len__(self) -> int:
        return len(self.refs)

    def extend(self, other: Matches) -> None:
        self.refs += other.refs
        self.keys += other.keys
        self._rows.update(other._rows)

    def truncate(self, n: int) -> None:
        for ref in self.refs[n:]:
            self._rows.pop(ref, None)
        del self.refs[n:], self.keys[n:]

    def loader(self, uow: UnitOfWork) -> LoadVersions:
        """Versions from the content already fetched, the others read exactly (`load_versions`)."""

        def load(refs: list[VersionRef]) -> list[StoredResource | None]:
            out: list[StoredResource | None] = []
            missing: list[int] = []
            for i, ref in enumerate(refs):
                row = self._rows.get(ref)
                if row is None or row[1] is None:
                    out.append(None)
                    missing.append(i)
                else:
                    out.append(StoredResource(ref[0], ref[1], ref[2], row[0], False, _bytes(row[1])))
            if missing:
                for i, found in zip(missing, load_versions(uow, [refs[i] for i in missing]), strict=True):
                    out[i] = found
            return out

        return load


def match_versions(
    uow: UnitOfWork, q: SearchQuery, *, limit: int, content: bool, after: tuple[Any, ...] | None = None
) -> Matches:
    """The first `limit` matches of `q` in its sort order (after the key `after`), by version.

    With `content`, the statement brings each match's content too (SQLite reads it cheaply; what
    costs is turning rows into resources, and that is left to the rows a decision or the page needs).
    """
    uow.flush()
    res = resource
    conds = base_conditions(res, q, uow.store.index_ctx)
    cols = sort_columns(res, q)
    if after is not None:
        conds.append(keyset_condition(cols, after, False))
    order = [c.desc() if desc else c.asc() for c, desc in cols]
    body = res.c.content if content else null()
    stmt = (
        select(res.c.res_id, res.c.version_id, res.c.last_updated, body, *[c for c, _ in cols])
        .where(*conds)
        .order_by(*order)
        .limit(limit)
    )
    rtype = q.resource_type
    found = Matches()
    for row in uow.conn.execute(stmt):
        ref = (rtype, row[0], row[1])
        found.refs.append(ref)
        found.keys.append(tuple(row[4:]))
        found._rows[ref] = (row[2], row[3])
    return found


def load_versions(uow: UnitOfWork, refs: list[VersionRef]) -> list[StoredResource | None]:
    """These exact versions (None for one not stored, or a tombstone), parallel to `refs`."""
    wanted: dict[str, tuple[set[str], set[int]]] = {}
    for rtype, rid, version in refs:
        ids, versions = wanted.setdefault(rtype, (set(), set()))
        ids.add(rid)
        versions.add(version)
    v, r = resource_version.c, resource.c
    # A version's content is in its history row, or (for the current version, where the history row
    # may leave it out) in the resource row of the same version.
    current = and_(r.res_type == v.res_type, r.res_id == v.res_id, r.version_id == v.version_id)
    content = func.coalesce(v.content, r.content).label("content")
    found: dict[VersionRef, StoredResource] = {}
    for rtype, (ids, versions) in wanted.items():
        listed = sorted(ids)
        for start in range(0, len(listed), _CHUNK):
            stmt = (
                select(v.res_id, v.version_id, v.last_updated, v.method, content)
                .select_from(resource_version.outerjoin(resource, current))
                .where(
                    v.res_type == rtype,
                    v.res_id.in_(listed[start : start + _CHUNK]),
                    v.version_id.in_(sorted(versions)),
                )
            )
            for row in uow.conn.execute(stmt):
                if row.content is not None:
                    found[(rtype, row.res_id, row.version_id)] = StoredResource(
                        rtype, row.res_id, row.version_id, row.last_updated, False, _bytes(row.content), row.method
                    )
    return [found.get(ref) for ref in refs]


def _bytes(content: Any) -> bytes:
    return content.encode() if isinstance(content, str) else bytes(content)
