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
