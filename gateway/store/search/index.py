"""Turn one resource into its search index rows (written in the resource's own transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table

from gateway.store.search.kinds import IndexContext
from gateway.store.search.registry import SearchRegistry


def index_rows(
    resource: dict[str, Any], registry: SearchRegistry, ctx: IndexContext
) -> dict[Table, list[dict[str, Any]]]:
    rtype, rid = resource["resourceType"], resource["id"]
    plan = registry.index_plan(rtype)
    present = plan.present(resource)
    rows: dict[Table, list[dict[str, Any]]] = {}
    for param in plan.params:
        if param.gates is not None and param.gates.isdisjoint(present):
            continue  # none of its paths can reach anything in this resource
        values = param.values(resource)
        if not values:
            continue
        extract, code = param.kind.extract, param.code
        found = [row for value in values for row in extract(value, ctx)]
        if not found:
            continue
        # The same element reached twice (or two equal codings) is one row. Every row is hashed,
        # even a lone one: an unhashable value (a list where a string belongs) must fail here, in
        # this resource's write, not later in the batch's flush.
        seen: set[tuple[Any, ...]] = set()
        unique = []
        for row in found:
            key = tuple(sorted(row.items()))
            if key not in seen:
                seen.add(key)
                unique.append(row)
        for row in unique:
            row.update(res_type=rtype, res_id=rid, param=code)
        table_rows = rows.get(param.table)
        if table_rows is None:
            rows[param.table] = unique
        else:
            table_rows.extend(unique)
    return rows
