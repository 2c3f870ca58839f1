"""Search parameter paths compiled once per resource type into closures: the index writer's hot path.

`paths.evaluate` re-reads each `Path` on every call and, for every element a resource lacks,
scans all its keys for a choice variant (`effective` -> `effectiveDateTime`). Every write indexes
some twenty parameters, many of them absent from the resource, so here:
- the parameters of a type, their kinds and their paths (filtered by base) are fixed once;
- a parameter whose paths all start at an element the resource lacks (and has no choice variant
  of) is skipped on one set lookup, against the resource's top-level keys and their choice prefixes;
- each step is a closure specialised for its shape (plain, `as T`, `where(field='value')`).

The result is exactly what `paths.evaluate` gives (tests/store/test_index_rows_oracle.py checks it
on every fixture resource); `evaluate` stays as the readable definition.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Table

from gateway.store.search.kinds import IndexContext, ParamKind
from gateway.store.search.paths import Path, Step, reference_type

Nodes = list[Any]
StepFn = Callable[[Nodes], Nodes]
PathFn = Callable[[dict[str, Any]], Nodes]


@functools.lru_cache(maxsize=4096)
def choice_prefixes(key: str) -> tuple[str, ...]:
    """The element names `key` is a choice variant of: `effectiveDateTime` -> effective, effectiveDate.

    Same test as the evaluator's: `key` starts with the name and the next character is upper case.
    """
    return tuple(key[:i] for i in range(1, len(key)) if key[i].isupper())


def _items(value: Any, out: Nodes) -> None:
    if isinstance(value, list):
        out.extend(item for item in value if item is not None)
    elif value is not None:
        out.append(value)


def _choice_keys(node: dict[str, Any], name: str) -> list[str]:
    end = len(name)
    return [k for k in node if k.startswith(name) and k[end : end + 1].isupper()]


def _plain_step(name: str) -> StepFn:
    end = len(name)

    def step(nodes: Nodes) -> Nodes:
        out: Nodes = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            if name in node:
                _items(node[name], out)
            else:  # as _choice_keys, inline: the usual absent `meta.profile` costs no list
                for key in node:
                    if key.startswith(name) and key[end : end + 1].isupper():
                        _items(node[key], out)
        return out

    return step


def _typed_step(key: str) -> StepFn:
    def step(nodes: Nodes) -> Nodes:
        out: Nodes = []
        for node in nodes:
            if isinstance(node, dict):
                _items(node.get(key), out)
        return out

    return step


def _filtered(inner: StepFn, field: str, wanted: str) -> StepFn:
    def step(nodes: Nodes) -> Nodes:
        return [item for item in inner(nodes) if isinstance(item, dict) and item.get(field) == wanted]

    return step


def _typed_key(step: Step) -> str | None:
    if step.choice_type is None:
        return None
    return step.name + step.choice_type[0].upper() + step.choice_type[1:]


def _compile_step(step: Step) -> StepFn:
    key = _typed_key(step)
    fn = _plain_step(step.name) if key is None else _typed_step(key)
    if step.field_filter is not None:
        fn = _filtered(fn, *step.field_filter)
    return fn


def _plain_root(name: str) -> PathFn:
    """The first plain step, taken from the resource itself (the common one-step path)."""

    def root(resource: dict[str, Any]) -> Nodes:
        if name in resource:
            value = resource[name]
            if isinstance(value, list):
                return [item for item in value if item is not None]
            return [] if value is None else [value]
        out: Nodes = []
        for key in _choice_keys(resource, name):
            _items(resource[key], out)
        return out

    return root


def _compile_path(path: Path) -> PathFn:
    if not path.steps:
        steps: tuple[StepFn, ...] = ()
        root: PathFn = lambda resource: [resource]  # noqa: E731
    else:
        first, rest = path.steps[0], path.steps[1:]
        if first.choice_type is None and first.field_filter is None:
            root = _plain_root(first.name)
        else:
            first_fn = _compile_step(first)
            root = lambda resource: first_fn([resource])  # noqa: E731
        steps = tuple(_compile_step(s) for s in rest)
    resolve_type = path.resolve_type
    if not steps and resolve_type is None:
        return root

    def run(resource: dict[str, Any]) -> Nodes:
        nodes = root(resource)
        for step in steps:
            if not nodes:
                break
            nodes = step(nodes)
        if resolve_type is not None:
            nodes = [n for n in nodes if reference_type(n) == resolve_type]
        return nodes

    return run


def _gate(path: Path) -> str | None:
    """The top-level name the resource must have (directly or as a choice prefix); None: always run."""
    if not path.steps:
        return None
    first = path.steps[0]
    return _typed_key(first) or first.name


def _union(paths: tuple[PathFn, ...]) -> PathFn:
    if len(paths) == 1:
        return paths[0]

    def values(resource: dict[str, Any]) -> Nodes:
        out: Nodes = []
        for path in paths:
            out.extend(path(resource))
        return out

    return values


class ParamPlan(NamedTuple):  # a tuple: the writer unpacks it once per parameter and resource
    gates: frozenset[str] | None  # None: some path needs no top-level element
    values: PathFn  # every value the parameter's paths reach, in path order
    extract: Callable[[Any, IndexContext], list[dict[str, Any]]]  # the kind's
    code: str
    table: Table


@dataclass(frozen=True)
class TypePlan:
    params: tuple[ParamPlan, ...]

    def present(self, resource: dict[str, Any]) -> set[str]:
        """Top-level names the resource has, plus the choice elements its keys are variants of."""
        names = set(resource)
        for key in resource:
            if not key.islower():  # an all-lower-case key (most) is no choice variant
                names.update(choice_prefixes(key))
        return names


class IndexedParam(Protocol):
    """The parts of a `SearchParamDef` a plan needs (so this module need not import the registry)."""

    @property
    def code(self) -> str: ...

    @property
    def kind(self) -> ParamKind: ...

    @property
    def paths(self) -> tuple[Path, ...]: ...


def compile_type_plan(resource_type: str, params: Iterable[IndexedParam]) -> TypePlan:
    """The plan for one resource type from its indexed parameters (`SearchParamDef`s), in order."""
    bases = (resource_type, "Resource", "DomainResource")
    plans = []
    for param in params:
        paths = [p for p in param.paths if p.base in bases]
        if not paths:
            continue  # evaluate() would give nothing for this type
        gates = [_gate(p) for p in paths]
        plans.append(
            ParamPlan(
                code=param.code,
                extract=param.kind.extract,
                table=param.kind.table,
                gates=None if None in gates else frozenset(g for g in gates if g is not None),
                values=_union(tuple(_compile_path(p) for p in paths)),
            )
        )
    return TypePlan(tuple(plans))
