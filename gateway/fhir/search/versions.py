"""A search's matches named by stored version, for a caller who may not see them all.

Counting what a restricted caller may see means deciding every match, and a decision needs a
resource's class, which is remembered per stored version (`gateway.fhir.access`). So the
matches come back as (type, id, version) and their sort keys, with content only for the first
few rows (the page, when nothing in it is hidden); any other version is read exactly, by
reference, only when a decision or the page needs it. A version never changes, so what is
read later is what matched.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, null, select

from gateway.fhir.repository import Candidate, VersionRef
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.schema import resource, resource_version
from gateway.store.search.query import SearchQuery, base_conditions, keyset_condition, sort_columns

_CHUNK = 500  # ids per IN list


def match_versions(
    uow: UnitOfWork, q: SearchQuery, *, limit: int, with_content: int = 0, after: tuple[Any, ...] | None = None
) -> tuple[list[Candidate], list[tuple[Any, ...]]]:
    """The first `limit` matches of `q` in its sort order (after the key `after`), and their keys.

    The first `with_content` come with their content (one statement either way: a window
    function numbers the rows); the rest are named by version only.
    """
    uow.flush()
    res = resource
    conds = base_conditions(res, q, uow.store.index_ctx)
    cols = sort_columns(res, q)
    if after is not None:
        conds.append(keyset_condition(cols, after, False))
    order = [c.desc() if desc else c.asc() for c, desc in cols]
    content = (
        case((func.row_number().over(order_by=order) <= with_content, res.c.content), else_=null())
        if with_content > 0
        else null()
    )
    stmt = (
        select(res.c.res_id, res.c.version_id, res.c.last_updated, content.label("content"), *[c for c, _ in cols])
        .where(*conds)
        .order_by(*order)
        .limit(limit)
    )
    rtype = q.resource_type
    rows: list[Candidate] = []
    keys: list[tuple[Any, ...]] = []
    for row in uow.conn.execute(stmt):
        body = row[3]
        if body is None:
            rows.append((rtype, row[0], row[1]))
        else:
            body = body.encode() if isinstance(body, str) else bytes(body)
            rows.append(StoredResource(rtype, row[0], row[1], row[2], False, body))
        keys.append(tuple(row[4:]))
    return rows, keys


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
                    body = row.content.encode() if isinstance(row.content, str) else bytes(row.content)
                    found[(rtype, row.res_id, row.version_id)] = StoredResource(
                        rtype, row.res_id, row.version_id, row.last_updated, False, body, row.method
                    )
    return [found.get(ref) for ref in refs]
