"""A small, fast evaluator for the FHIRPath subset used by search parameter expressions.

Full FHIRPath (fhirpathpy) costs tens of microseconds per expression; indexing runs every
parameter of every write, so the table's expressions keep to: unions (`|`), dotted paths,
choice types (`value` finds `valueQuantity`; `(x as T)` / `.ofType(T)` picks one),
`.where(resolve() is T)` and `.where(field='value')`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_WHERE_RESOLVE = re.compile(r"^where\(resolve\(\) is (\w+)\)$")
_WHERE_FIELD = re.compile(r"^where\((\w+)\s*=\s*'([^']*)'\)$")
_AS = re.compile(r"^\((.+) as (\w+)\)$")
_OFTYPE = re.compile(r"^(ofType|as)\((\w+)\)$")


@dataclass(frozen=True)
class Step:
    name: str
    choice_type: str | None = None  # `as T`: only the valueT variant of a choice element
    field_filter: tuple[str, str] | None = None  # where(field='value')


@dataclass(frozen=True)
class Path:
    base: str  # resource type or "Resource"
    steps: tuple[Step, ...]
    resolve_type: str | None = None  # where(resolve() is T): references to T only


class UnsupportedExpression(ValueError):
    pass


def _split_union(expression: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in expression:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _split_dots(expression: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in expression:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def compile_expression(expression: str) -> tuple[Path, ...]:
    """Compile a search parameter expression; raises UnsupportedExpression outside the subset."""
    paths = []
    for part in _split_union(expression):
        as_type: str | None = None
        m = _AS.match(part)
        if m:
            part, as_type = m.group(1).strip(), m.group(2)
        tokens = _split_dots(part)
        base, raw_steps = tokens[0], tokens[1:]
        steps: list[Step] = []
        resolve_type: str | None = None
        for tok in raw_steps:
            if (wr := _WHERE_RESOLVE.match(tok)) is not None:
                resolve_type = wr.group(1)
            elif (wf := _WHERE_FIELD.match(tok)) is not None:
                if not steps:
                    raise UnsupportedExpression(expression)
                steps[-1] = Step(steps[-1].name, steps[-1].choice_type, (wf.group(1), wf.group(2)))
            elif (ot := _OFTYPE.match(tok)) is not None:
                if not steps:
                    raise UnsupportedExpression(expression)
                steps[-1] = Step(steps[-1].name, ot.group(2), steps[-1].field_filter)
            elif re.fullmatch(r"\w+", tok):
                steps.append(Step(tok))
            else:
                raise UnsupportedExpression(f"{expression!r}: {tok!r}")
        if as_type is not None and steps:
            steps[-1] = Step(steps[-1].name, as_type, steps[-1].field_filter)
        paths.append(Path(base, tuple(steps), resolve_type))
    return tuple(paths)


def _children(node: Any, step: Step) -> Iterator[Any]:
    if not isinstance(node, dict):
        return
    if step.choice_type is not None:
        keys = [step.name + step.choice_type[0].upper() + step.choice_type[1:]]
    elif step.name in node:
        keys = [step.name]
    else:
        # Unqualified choice element: `effective` finds effectiveDateTime / effectivePeriod.
        keys = [k for k in node if k.startswith(step.name) and k[len(step.name) : len(step.name) + 1].isupper()]
    for key in keys:
        value = node.get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if item is None:
                continue
            if step.field_filter is not None:
                field, wanted = step.field_filter
                if not isinstance(item, dict) or item.get(field) != wanted:
                    continue
            yield item


def evaluate(paths: tuple[Path, ...], resource: dict[str, Any]) -> list[Any]:
    """All values the paths reach in `resource` (lists flattened)."""
    out: list[Any] = []
    rtype = resource.get("resourceType")
    for path in paths:
        if path.base not in (rtype, "Resource", "DomainResource"):
            continue
        nodes: list[Any] = [resource]
        for step in path.steps:
            nodes = [child for node in nodes for child in _children(node, step)]
            if not nodes:
                break
        if path.resolve_type is not None:
            nodes = [n for n in nodes if reference_type(n) == path.resolve_type]
        out.extend(nodes)
    return out


def reference_type(node: Any) -> str | None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            parts = [p for p in ref.split("/") if p]
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            if len(parts) >= 2:
                return parts[-2]
        declared = node.get("type")
        return declared if isinstance(declared, str) else None
    return None
