"""Search for a caller who may not see everything: hidden entries never count, page or leak.

The store answers the query; this module makes the answer safe for one caller:
- chained and `_has` criteria are evaluated over the targets the caller may see, so a search
  cannot be used as an oracle for hidden values;
- matches are filtered before paging (keyset cursors come from the last *visible* row), and
  `total` counts only visible matches (omitted when that would mean deciding more than
  `TOTAL_LIMIT` rows);
- `_include`/`_revinclude` resources are filtered like matches.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.fhir.errors import FhirError
from gateway.fhir.repository import Candidate, Repository
from gateway.fhir.search.versions import match_versions
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.schema import sp_reference
from gateway.store.search.query import Criterion, Cursor, SearchPage, SearchQuery

INNER_LIMIT = 1000  # chained/_has targets decided per criterion
TOTAL_LIMIT = 10_000
FIRST_FETCH = 200  # matches the first pass of a counted search fetches with the count
_NOTHING = "__none__"


def _visible_ids(uow: UnitOfWork, repo: Repository, rtype: str, crit: Criterion, query: str) -> list[str]:
    page = uow.search(SearchQuery(rtype, (crit,), count=INNER_LIMIT, total="none"))
    if page.has_next:
        raise FhirError("too-costly", "the chained or _has criterion matches too many resources; narrow it")
    return [r.id for r in repo.visible(uow, page.rows, interaction="search", query=query)]


def _safe_criterion(uow: UnitOfWork, repo: Repository, rtype: str, crit: Criterion, query: str) -> Criterion:
    if crit.has_type is not None and crit.chain is not None:
        sources = _visible_ids(uow, repo, crit.has_type, crit.chain, query)
        ref = sp_reference.c
        referenced = uow.conn.execute(
            sp_reference.select()
            .with_only_columns(ref.target_id)
            .where(ref.res_type == crit.has_type, ref.param == crit.param.code, ref.target_type == rtype)
            .where(ref.res_id.in_(sources or [_NOTHING]))
        ).scalars()
        return _id_criterion(uow, rtype, sorted(set(referenced)) or [_NOTHING])
    if crit.chain is not None and crit.chain_type is not None:
        targets = _visible_ids(uow, repo, crit.chain_type, crit.chain, query)
        values = tuple(f"{crit.chain_type}/{t}" for t in targets) or (f"{crit.chain_type}/{_NOTHING}",)
        return Criterion(crit.param, values)
    return crit


def search_as(uow: UnitOfWork, repo: Repository, q: SearchQuery, query_text: str) -> SearchPage:
    """The page of `q` for the repository's caller: the store's answer when nothing is hidden from them."""
    q = repo.narrow(uow, q)  # the caller's patient context, if any, as an index criterion
    return uow.search(q) if repo.is_open else guarded_search(uow, repo, q, query_text)


def guarded_search(uow: UnitOfWork, repo: Repository, q: SearchQuery, query_text: str) -> SearchPage:
    """The page of `q` as this caller may see it."""
    q = replace(q, criteria=tuple(_safe_criterion(uow, repo, q.resource_type, c, query_text) for c in q.criteria))
    if q.count == 0:
        total = _visible_total(uow, repo, q, query_text) if q.total != "none" else None
        return SearchPage([], total, None, None, False, False)
    if q.total != "none" and q.cursor is None:
        first = _first_page_with_total(uow, repo, q, query_text)
        if first is not None:
            return _with_includes(uow, repo, q, query_text, first)
    backwards = q.cursor.backwards if q.cursor else False
    batch = q.count + 1  # enough when nothing is hidden (the common case); grows when rows are hidden
    rows: list[StoredResource] = []
    keys: list[tuple[Any, ...]] = []
    cursor = q.cursor
    more = True
    while more and len(rows) <= q.count:
        page = uow.search(replace(q, count=batch, cursor=cursor, total="none", includes=(), revincludes=()))
        shown = {id(r) for r in repo.visible(uow, page.rows, interaction="search", query=query_text)}
        picked = [(r, k) for r, k in zip(page.rows, page.keys, strict=True) if id(r) in shown]
        if len(picked) < len(page.rows):
            batch = min(max(batch * 2, 50), INNER_LIMIT)
        if backwards:
            rows = [r for r, _ in picked] + rows
            keys = [k for _, k in picked] + keys
            more = page.has_previous
            cursor = Cursor(True, page.first_key) if page.first_key is not None else None
        else:
            rows += [r for r, _ in picked]
            keys += [k for _, k in picked]
            more = page.has_next
            cursor = Cursor(False, page.last_key) if page.last_key is not None else None
        if cursor is None:
            more = False
    extra = len(rows) > q.count
    total = None
    if q.total != "none":
        # A first page that saw every match already knows the visible total; otherwise count it.
        complete = q.cursor is None and not more
        total = len(rows) if complete else _visible_total(uow, repo, q, query_text)
    if backwards:
        rows, keys = rows[-q.count :], keys[-q.count :]
    else:
        rows, keys = rows[: q.count], keys[: q.count]
    result = SearchPage(
        rows=rows,
        total=total,
        first_key=keys[0] if keys else None,
        last_key=keys[-1] if keys else None,
        has_next=(extra or more) if not backwards else True,
        has_previous=(q.cursor is not None) if not backwards else (extra or more),
        keys=keys,
    )
    return _with_includes(uow, repo, q, query_text, result)


def _with_includes(
    uow: UnitOfWork, repo: Repository, q: SearchQuery, query_text: str, result: SearchPage
) -> SearchPage:
    """`_include`/`_revinclude` of the page's rows, filtered like matches."""
    rows = result.rows
    if rows and (q.includes or q.revincludes):
        ids_q = replace(q, count=len(rows), cursor=None, total="none")
        included = uow.search(
            replace(ids_q, criteria=(*ids_q.criteria, _id_criterion(uow, q.resource_type, [r.id for r in rows])))
        ).included
        result.included = repo.visible(uow, included, interaction="search", query=query_text)
    return result


def _first_page_with_total(uow: UnitOfWork, repo: Repository, q: SearchQuery, query_text: str) -> SearchPage | None:
    """The first page and its visible total from one pass over every match (None above `TOTAL_LIMIT`).

    One statement names the first `FIRST_FETCH` matches by version, with their content (no count
    statement: a first page rarely has more); more matches, if any, are counted and named from its
    last key. Every match is decided unaudited (a count), mostly by its remembered class, then the
    page alone as the search (audited, obligations met): the decisions of this transaction are
    remembered, so that costs little.
    """
    bare = replace(q, cursor=None, includes=(), revincludes=())
    head = max(q.count + 1, FIRST_FETCH)
    matches = match_versions(uow, bare, limit=head + 1, content=True)
    if len(matches) > head:
        counted = uow.search(replace(bare, count=0, total="accurate")).total or 0
        if counted > TOTAL_LIMIT:
            return None
        last = matches.keys[head - 1]
        matches.truncate(head)
        matches.extend(match_versions(uow, bare, limit=TOTAL_LIMIT + 1 - head, content=False, after=last))
    if not matches:
        return SearchPage([], 0, None, None, False, False)
    load = matches.loader(uow)
    candidates: list[Candidate] = list(matches.refs)
    shown = [i for i, ok in enumerate(repo.count_visible(uow, candidates, load)) if ok]
    chosen = shown[: q.count]
    on_page = [(row, matches.keys[i]) for i, row in zip(chosen, load([matches.refs[i] for i in chosen]), strict=True)]
    page_rows = [row for row, _ in on_page if row is not None]
    kept = {id(row) for row in repo.visible(uow, page_rows, interaction="search", query=query_text)}
    page = [(row, key) for row, key in on_page if row is not None and id(row) in kept]
    page_keys = [key for _, key in page]
    return SearchPage(
        rows=[row for row, _ in page],
        total=len(shown) - (len(chosen) - len(page)),
        first_key=page_keys[0] if page_keys else None,
        last_key=page_keys[-1] if page_keys else None,
        has_next=len(shown) > q.count,
        has_previous=False,
        keys=page_keys,
    )


def _id_criterion(uow: UnitOfWork, rtype: str, ids: list[str]) -> Criterion:
    param = uow.store.registry.get(rtype, "_id")
    assert param is not None
    return Criterion(param, tuple(ids))


def _visible_total(uow: UnitOfWork, repo: Repository, q: SearchQuery, query_text: str) -> int | None:
    """How many matches of `q` the caller may see (None above `TOTAL_LIMIT`): decided by version,
    content read only where a decision needs it."""
    counted = uow.search(replace(q, count=0, cursor=None, total="accurate")).total or 0
    if counted > TOTAL_LIMIT:
        return None
    if counted == 0:
        return 0
    matches = match_versions(uow, replace(q, cursor=None, sort=()), limit=TOTAL_LIMIT + 1, content=False)
    candidates: list[Candidate] = list(matches.refs)
    return sum(repo.count_visible(uow, candidates, matches.loader(uow)))
