"""The search parameter table, loaded once from `profiles/search-parameters.json`.

This is the one source of truth for what can be searched: the index writer, the query
builder, the request parser and the CapabilityStatement all read it from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import orjson

from gateway.paths import PROFILES_DIR
from gateway.store.search.kinds import KINDS, ParamKind
from gateway.store.search.paths import Path as FhirPath
from gateway.store.search.paths import compile_expression
from gateway.store.search.plan import TypePlan, compile_type_plan

# Parameters answered from the resource table itself rather than an index table.
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})


@dataclass(frozen=True)
class SearchParamDef:
    code: str
    base: str
    type: str
    expression: str
    url: str
    targets: tuple[str, ...]
    paths: tuple[FhirPath, ...]

    @property
    def kind(self) -> ParamKind:
        return KINDS[self.type]


class SearchRegistry:
    """Search parameters by resource type (the `Resource` ones apply to every type)."""

    def __init__(self, params: list[SearchParamDef], resource_types: frozenset[str]) -> None:
        self._common = {p.code: p for p in params if p.base == "Resource"}
        self._by_type: dict[str, dict[str, SearchParamDef]] = {}
        for p in params:
            if p.base != "Resource":
                self._by_type.setdefault(p.base, {})[p.code] = p
        self.resource_types = resource_types
        self._plans: dict[str, TypePlan] = {}

    def params_for(self, resource_type: str) -> dict[str, SearchParamDef]:
        return {**self._common, **self._by_type.get(resource_type, {})}

    def get(self, resource_type: str, code: str) -> SearchParamDef | None:
        return self._by_type.get(resource_type, {}).get(code) or self._common.get(code)

    def indexed_params(self, resource_type: str) -> list[SearchParamDef]:
        return [p for p in self.params_for(resource_type).values() if p.code not in COLUMN_PARAMS]

    def index_plan(self, resource_type: str) -> TypePlan:
        """The index writer's compiled parameters for a type, built on first use (the table is fixed)."""
        plan = self._plans.get(resource_type)
        if plan is None:
            plan = self._plans[resource_type] = compile_type_plan(resource_type, self.indexed_params(resource_type))
        return plan


def load_registry(path: Path | None = None, resource_types: frozenset[str] | None = None) -> SearchRegistry:
    bundle = orjson.loads((path or PROFILES_DIR / "search-parameters.json").read_bytes())
    params = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        if sp["type"] not in KINDS:
            continue  # only types with an index implementation are searchable (and advertised)
        for base in sp["base"]:
            params.append(
                SearchParamDef(
                    code=sp["code"],
                    base=base,
                    type=sp["type"],
                    expression=sp["expression"],
                    url=sp["url"],
                    targets=tuple(sp.get("target", ())),
                    paths=compile_expression(sp["expression"]),
                )
            )
    from gateway.fhir.resource_types import SUPPORTED_TYPES

    return SearchRegistry(params, resource_types or SUPPORTED_TYPES)


@functools.cache
def default_registry() -> SearchRegistry:
    return load_registry()
