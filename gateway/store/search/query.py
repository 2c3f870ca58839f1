"""A parsed search, as the store understands it, and its translation into SQL.

`gateway/fhir/search/parse.py` builds a `SearchQuery` from the HTTP request; nothing below
that point sees raw query strings. Every criterion becomes `res_id IN (index subquery)`,
so the same code serves plain, chained and `_has` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)

from gateway.fhir.errors import invalid
from gateway.store.schema import resource, sp_reference
from gateway.store.search.kinds import DATE_MIN, IndexContext, date_clause, date_range, split_prefix
from gateway.store.search.registry import SearchParamDef


@dataclass(frozen=True)
class Criterion:
    """One search parameter occurrence: its values are OR-ed; occurrences are AND-ed."""

    param: SearchParamDef
    values: tuple[str, ...]
    modifier: str | None = None
    chain: Criterion | None = None  # subject:Patient.identifier=… applies `chain` to the target
    chain_type: str | None = None
    has_type: str | None = None  # _has:<has_type>:<param>:<chain> — `param` is has_type's reference


@dataclass(frozen=True)
class SortKey:
    param: SearchParamDef
    descending: bool = False


@dataclass(frozen=True)
class IncludeSpec:
    source_type: str
    param: SearchParamDef
    target_type: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: strictly after (or, going back, before) one row's sort key."""

    backwards: bool
    key: tuple[Any, ...]


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    cursor: Cursor | None = None
    includes: tuple[IncludeSpec, ...] = ()
    revincludes: tuple[IncludeSpec, ...] = ()
    total: str = "accurate"  # accurate | estimate | none
    ids_only: bool = False


@dataclass
class SearchPage:
    rows: list[Any]
    total: int | None
    first_key: tuple[Any, ...] | None
    last_key: tuple[Any, ...] | None
    has_next: bool
    has_previous: bool
    included: list[Any] = field(default_factory=list)
    keys: list[tuple[Any, ...]] = field(default_factory=list)  # each row's sort key, for cursors


def _index_subquery(rtype: str, crit: Criterion, ctx: IndexContext) -> Select[Any]:
    kind = crit.param.kind
    t = kind.table
    return select(t.c.res_id).where(
        t.c.res_type == rtype,
        t.c.param == crit.param.code,
        or_(*[kind.clause(v, crit.modifier, ctx, crit.param.targets) for v in crit.values]),
    )


def _live_ids(rtype: str, crit: Criterion, ctx: IndexContext) -> Select[Any]:
    inner = resource.alias()
    return select(inner.c.res_id).where(
        inner.c.res_type == rtype, inner.c.deleted == false(), condition(inner, rtype, crit, ctx)
    )


def condition(res: FromClause, rtype: str, crit: Criterion, ctx: IndexContext) -> ColumnElement[bool]:
    """A boolean over `res` (the resource table or an alias) for one criterion."""
    code = crit.param.code
    if crit.has_type is not None:
        assert crit.chain is not None
        ref = sp_reference.c
        sub = select(ref.target_id).where(
            ref.res_type == crit.has_type,
            ref.param == code,
            ref.target_type == rtype,
            ref.res_id.in_(_live_ids(crit.has_type, crit.chain, ctx)),
        )
        return res.c.res_id.in_(sub)
    if crit.chain is not None:
        assert crit.chain_type is not None
        ref = sp_reference.c
        sub = select(ref.res_id).where(
            ref.res_type == rtype,
            ref.param == code,
            ref.target_type == crit.chain_type,
            ref.target_id.in_(_live_ids(crit.chain_type, crit.chain, ctx)),
        )
        return res.c.res_id.in_(sub)
    if code == "_id":
        cond = res.c.res_id.in_(list(crit.values))
        return not_(cond) if crit.modifier == "not" else cond
    if code == "_lastUpdated":
        clauses = []
        for raw in crit.values:
            prefix, text = split_prefix(raw)
            try:
                sl, sh = date_range(text)
            except ValueError as exc:
                raise invalid(f"invalid date search value {raw!r}") from exc
            clauses.append(date_clause(res.c.last_updated, res.c.last_updated, prefix, sl, sh))
        return or_(*clauses)
    t = crit.param.kind.table
    if crit.modifier == "missing":
        present = select(t.c.res_id).where(t.c.res_type == rtype, t.c.param == code)
        wants_missing = crit.values[0].lower() == "true"
        return not_(res.c.res_id.in_(present)) if wants_missing else res.c.res_id.in_(present)
    if crit.modifier == "not":
        plain = Criterion(crit.param, crit.values)
        return not_(res.c.res_id.in_(_index_subquery(rtype, plain, ctx)))
    return res.c.res_id.in_(_index_subquery(rtype, crit, ctx))


_SENTINELS: dict[str, Any] = {"date": DATE_MIN, "number": 0.0, "quantity": 0.0}


def sort_columns(res: FromClause, q: SearchQuery) -> list[tuple[ColumnElement[Any], bool]]:
    """The ORDER BY keys: each sort parameter as (missing-flag, value), then the id as tiebreak."""
    cols: list[tuple[ColumnElement[Any], bool]] = []
    for key in q.sort:
        code = key.param.code
        if code == "_id":
            cols.append((res.c.res_id, key.descending))
            continue
        if code == "_lastUpdated":
            cols.append((res.c.last_updated, key.descending))
            continue
        t = key.param.kind.table
        value = (
            select(key.param.kind.sort_value(key.descending))
            .where(t.c.res_type == q.resource_type, t.c.res_id == res.c.res_id, t.c.param == code)
            .scalar_subquery()
        )
        missing = case((value.is_(None), 1), else_=0)
        cols.append((missing, False))  # resources without a value sort last either way
        cols.append((func.coalesce(value, literal(_SENTINELS.get(key.param.type, ""))), key.descending))
    cols.append((res.c.res_id, False))
    return cols


def keyset_condition(
    cols: list[tuple[ColumnElement[Any], bool]], key: tuple[Any, ...], backwards: bool
) -> ColumnElement[bool]:
    """Rows strictly after (or before) `key` in the sort order: stable while rows come and go."""
    ors = []
    for i, (col, desc) in enumerate(cols):
        later = (col < key[i]) if (desc != backwards) else (col > key[i])
        equal_before = [c == key[j] for j, (c, _) in enumerate(cols[:i])]
        ors.append(and_(*equal_before, later))
    return or_(*ors)


def base_conditions(res: FromClause, q: SearchQuery, ctx: IndexContext) -> list[ColumnElement[bool]]:
    return [
        res.c.res_type == q.resource_type,
        res.c.deleted == false(),
        *[condition(res, q.resource_type, c, ctx) for c in q.criteria],
    ]


def encode_key(values: tuple[Any, ...]) -> list[Any]:
    return [{"dt": v.isoformat()} if isinstance(v, datetime) else v for v in values]


def decode_key(values: list[Any]) -> tuple[Any, ...]:
    return tuple(datetime.fromisoformat(v["dt"]) if isinstance(v, dict) and "dt" in v else v for v in values)
