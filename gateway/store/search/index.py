"""Turn one resource into its search index rows (written in the resource's own transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from gateway.store.search.kinds import IndexContext
from gateway.store.search.paths import evaluate
from gateway.store.search.registry import SearchRegistry


def index_rows(
    resource: dict[str, Any], registry: SearchRegistry, ctx: IndexContext
) -> dict[Table, list[dict[str, Any]]]:
    rtype, rid = resource["resourceType"], resource["id"]
    plan = registry.index_plan(rtype)
    present = plan.present(resource)
    rows: dict[Table, list[dict[str, Any]]] = {}
    for gates, values_of, extract, code, table in plan.params:
        if gates is not None and gates.isdisjoint(present):
            continue  # none of its paths can reach anything in this resource
        values = values_of(resource)
        if not values:
            continue
        if len(values) == 1:
            found = extract(values[0], ctx)  # a fresh list: the kinds build their rows per call
        else:
            found = [row for value in values for row in extract(value, ctx)]
        if not found:
            continue
        # The same element reached twice (or two equal codings) is one row. Every row is hashed,
        # even a lone one: an unhashable value (a list where a string belongs) must fail here, in
        # this resource's write, not later in the batch's flush.
        if len(found) == 1:
            hash(tuple(found[0].items()))
        else:
            seen: set[tuple[Any, ...]] = set()
            unique = []
            for row in found:
                key = tuple(row.items())  # a kind builds every row with its keys in one order
                if key not in seen:
                    seen.add(key)
                    unique.append(row)
            found = unique
        for row in found:
            row["res_type"], row["res_id"], row["param"] = rtype, rid, code
        table_rows = rows.get(table)
        if table_rows is None:
            rows[table] = found
        else:
            table_rows.extend(found)
    return rows


def index_rows_by_evaluation(
    resource: dict[str, Any], registry: SearchRegistry, ctx: IndexContext
) -> dict[Table, list[dict[str, Any]]]:
    """The definition `index_rows` must equal: every parameter's paths walked by `paths.evaluate`.

    Not used on the write path (about twice the CPU); kept as the oracle of
    tests/store/test_index_rows_oracle.py and the baseline of `bench index-rows`.
    """
    rtype, rid = resource["resourceType"], resource["id"]
    rows: dict[Table, list[dict[str, Any]]] = {}
    for param in registry.indexed_params(rtype):
        kind = param.kind
        seen: set[tuple[Any, ...]] = set()
        for value in evaluate(param.paths, resource):
            for row in kind.extract(value, ctx):
                key = tuple(sorted(row.items()))
                if key in seen:
                    continue
                seen.add(key)
                row.update(res_type=rtype, res_id=rid, param=param.code)
                rows.setdefault(kind.table, []).append(row)
    return rows
