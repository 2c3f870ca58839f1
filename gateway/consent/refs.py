"""Reading FHIR references and walking element paths, shared by the compartment and the rules.

References arrive relative (`Patient/1`), absolute (`https://x/fhir/Patient/1`) or versioned
(`Patient/1/_history/3`); every comparison in the policy code goes through `normalise` so that
the three spellings of one resource never disagree about who may see it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?$")


def split(reference: str) -> tuple[str, str, str | None] | None:
    """`(type, id, version)` of a literal reference, or None for contained (`#x`), urn: and odd ones."""
    if not reference or reference.startswith("#") or reference.startswith("urn:"):
        return None
    match = _REF.search(reference)
    if match is None:
        return None
    return match.group(1), match.group(2), match.group(3)


def normalise(reference: str) -> str | None:
    """`Type/id` (no base, no version), or None when the reference does not name a resource."""
    parts = split(reference)
    return None if parts is None else f"{parts[0]}/{parts[1]}"


def walk(node: Any, path: tuple[str, ...]) -> Iterator[Any]:
    """Every value at `path` below `node`, flattening lists at each step."""
    if not path:
        if isinstance(node, list):
            yield from node
        elif node is not None:
            yield node
        return
    if isinstance(node, list):
        for item in node:
            yield from walk(item, path)
        return
    if isinstance(node, dict):
        yield from walk(node.get(path[0]), path[1:])


def references_at(resource: dict[str, Any], path: tuple[str, ...]) -> Iterator[str]:
    """Normalised `Type/id` of each Reference found at `path`."""
    for value in walk(resource, path):
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            ref = normalise(value["reference"])
            if ref is not None:
                yield ref


def all_references(node: Any, *, skip: frozenset[str] = frozenset({"meta", "text", "contained"})) -> Iterator[str]:
    """Every literal reference anywhere in a resource (used for `data.meaning` = dependents/related)."""
    if isinstance(node, list):
        for item in node:
            yield from all_references(item, skip=skip)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in skip:
                continue
            if key == "reference" and isinstance(value, str):
                ref = normalise(value)
                if ref is not None:
                    yield ref
            elif isinstance(value, dict | list):
                yield from all_references(value, skip=skip)


def self_reference(resource: dict[str, Any]) -> str | None:
    """`Type/id` of the resource itself, or None when it has no id yet."""
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(rtype, str) and isinstance(rid, str) and rid:
        return f"{rtype}/{rid}"
    return None
