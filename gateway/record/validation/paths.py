"""Walking a resource's JSON by element steps, and naming what was found as a FHIRPath expression.

Every issue points at the element that is wrong (`Patient.identifier[0].value`), so the walk carries
the FHIRPath location of each node alongside the node itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Located = tuple[str, Any]
"""A FHIRPath location and the JSON value found there."""


def children(path: str, node: Any, name: str) -> list[Located]:
    """The values of element `name` under a JSON object, each with its FHIRPath location.

    `name` may be a choice element (`value[x]`): every `valueXxx` key counts. A repeating element
    is indexed (`identifier[0]`); a single one is not (`period`).
    """
    if not isinstance(node, dict):
        return []
    if name.endswith("[x]"):
        stem = name[:-3]
        keys = [k for k in node if k.startswith(stem) and len(k) > len(stem) and k[len(stem)].isupper()]
    else:
        keys = [name] if name in node else []
    found: list[Located] = []
    for key in keys:
        value = node[key]
        if isinstance(value, list):
            found.extend((f"{path}.{key}[{i}]", item) for i, item in enumerate(value) if item is not None)
        else:
            found.append((f"{path}.{key}", value))
    if not keys and not name.endswith("[x]") and f"_{name}" in node:
        # A primitive carried only by its extension (`_birthDate`) is present all the same.
        extra = node[f"_{name}"]
        items = extra if isinstance(extra, list) else [extra]
        found.extend((f"{path}.{name}", item) for item in items if item is not None)
    return found


def value_at(node: Any, dotted: str) -> list[Any]:
    """Values at a simple dotted path (`system`, `code.coding`) below a node, lists flattened."""
    current: list[Any] = [node]
    for name in dotted.split("."):
        nxt: list[Any] = []
        for item in current:
            for _, value in children("", item, name):
                nxt.append(value)
        current = nxt
    return current


def from_location(resource_type: str, loc: Sequence[Any]) -> str:
    """A pydantic error location (`('identifier', 0, 'value')`) as FHIRPath (`Patient.identifier[0].value`)."""
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.lstrip("_").isidentifier():
            out += "." + part.lstrip("_")
        # anything else is pydantic's own bookkeeping (union branch names), not a FHIR element
    return out


def item_path(parent: str, link_id: str, index: int | None = None) -> str:
    """A QuestionnaireResponse item named by linkId: `….item.where(linkId='x')` (`[n]` when it repeats)."""
    quoted = link_id.replace("\\", "\\\\").replace("'", "\\'")
    path = f"{parent}.item.where(linkId='{quoted}')"
    return path if index is None else f"{path}[{index}]"
