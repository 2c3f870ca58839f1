"""History (instance, type, system) for a caller who may not see every version.

Like a search: hidden versions are never counted or paged. Every matching version is named by
(type, id, version) and decided (by its remembered class, content read only where a decision
needs it), so `total` is the number of versions this caller may see, and a page holds `count` of
them, newest first, continuing below the last one shown. Above `TOTAL_LIMIT` matching versions
`total` is left out (R4 makes it optional for a history Bundle) rather than decide them all; the
page is then filled batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, select

from gateway.fhir.repository import Candidate, LoadVersions, Repository
from gateway.fhir.search.guarded import TOTAL_LIMIT
from gateway.fhir.search.versions import load_versions
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.schema import resource_version

_BATCH = 200  # versions named per statement when the total is left out


@dataclass
class HistoryPage:
    versions: list[StoredResource]
    total: int | None
    next_before_seq: int | None  # where the next page starts (below this commit sequence), if any


def guarded_history(
    uow: UnitOfWork,
    repo: Repository,
    rtype: str | None,
    rid: str | None,
    *,
    since: datetime | None,
    before_seq: int | None,
    count: int,
) -> HistoryPage:
    conds = uow.version_filter(rtype, rid, since)
    counted = uow.count_versions(conds)
    total: int | None = None
    picked: list[StoredResource] = []  # named versions (tombstones as such), newest first
    more = False
    load = _loader(uow)
    if counted <= TOTAL_LIMIT:
        named = _named(uow, conds, None, TOTAL_LIMIT + 1)
        shown = [row for row, ok in zip(named, repo.count_visible(uow, _candidates(named), load), strict=True) if ok]
        total = len(shown)
        below = [row for row in shown if before_seq is None or (row.seq or 0) < before_seq]
        picked, more = below[:count], len(below) > count
    else:
        cursor = before_seq
        while len(picked) <= count:
            named = _named(uow, conds, cursor, _BATCH)
            if not named:
                break
            decided = repo.count_visible(uow, _candidates(named), load)
            picked += [row for row, ok in zip(named, decided, strict=True) if ok]
            cursor = named[-1].seq
            if len(named) < _BATCH:
                break
        more = len(picked) > count
        picked = picked[:count]
    page = _content(uow, picked)
    shown_page = repo.visible(uow, page, interaction="history")  # audited; decided above already
    if total is not None:
        total -= len(page) - len(shown_page)
    last = picked[-1].seq if picked else None
    return HistoryPage(shown_page, total, last if more else None)


def _named(uow: UnitOfWork, conds: list[ColumnElement[bool]], below: int | None, limit: int) -> list[StoredResource]:
    """Matching versions newest first, without content (a tombstone keeps `deleted`)."""
    v = resource_version.c
    where = [*conds, v.seq < below] if below is not None else conds
    stmt = (
        select(v.res_type, v.res_id, v.version_id, v.last_updated, v.method, v.deleted, v.seq)
        .where(*where)
        .order_by(v.seq.desc())
        .limit(limit)
    )
    return [
        StoredResource(r.res_type, r.res_id, r.version_id, r.last_updated, bool(r.deleted), None, r.method, r.seq)
        for r in uow.conn.execute(stmt)
    ]


def _candidates(named: list[StoredResource]) -> list[Candidate]:
    """Tombstones as they are (never shown to a restricted caller); live versions by reference."""
    return [row if row.deleted else (row.type, row.id, row.version_id) for row in named]


def _loader(uow: UnitOfWork) -> LoadVersions:
    return lambda refs: load_versions(uow, refs)


def _content(uow: UnitOfWork, picked: list[StoredResource]) -> list[StoredResource]:
    """The picked versions with their content (tombstones stay as they are)."""
    live = [row for row in picked if not row.deleted]
    found = load_versions(uow, [(row.type, row.id, row.version_id) for row in live])
    by_ref = {(row.type, row.id, row.version_id): row for row in found if row is not None}
    out = []
    for row in picked:
        if row.deleted:
            out.append(row)
            continue
        full = by_ref.get((row.type, row.id, row.version_id))
        if full is not None:
            out.append(
                StoredResource(
                    row.type, row.id, row.version_id, row.last_updated, False, full.content, row.method, row.seq
                )
            )
    return out
