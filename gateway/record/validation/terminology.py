"""Expanding the ValueSets shipped in `profiles/` and testing codes against them.

Only what the shipped value sets use is supported: `compose.include` by concept list, by whole
CodeSystem (when the CodeSystem is shipped too), or by importing another shipped ValueSet, with
`compose.exclude` by concept list. Anything else (filters, external code systems) cannot be expanded
here, and the caller treats the binding as unchecked rather than guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.record.validation.urls import strip_version
from gateway.types import JSON


@dataclass(frozen=True)
class Expansion:
    """The (system, code) pairs a ValueSet contains."""

    codes: frozenset[tuple[str, str]]

    def contains(self, system: str | None, code: str) -> bool:
        """A bare `code` element has no system: then any system's code counts."""
        if system is None:
            return any(c == code for _, c in self.codes)
        return (system, code) in self.codes


class CannotExpand(Exception):
    """The value set uses something this expander does not support or cannot resolve."""


def _concepts(concepts: Iterable[JSON]) -> Iterable[str]:
    for concept in concepts:
        if "code" in concept:
            yield concept["code"]
        yield from _concepts(concept.get("concept", []))


def _part(
    part: JSON, code_systems: Mapping[str, JSON], value_sets: Mapping[str, JSON], seen: frozenset[str]
) -> set[tuple[str, str]]:
    if part.get("filter"):
        raise CannotExpand("compose filters are not supported")
    out: set[tuple[str, str]] | None = None
    system = part.get("system")
    if system is not None:
        if part.get("concept"):
            out = {(system, c["code"]) for c in part["concept"]}
        else:
            cs = code_systems.get(strip_version(system))
            if cs is None or cs.get("content", "complete") != "complete":
                raise CannotExpand(f"code system {system} is not shipped complete")
            out = {(system, code) for code in _concepts(cs.get("concept", []))}
    for imported in part.get("valueSet", []):
        codes = _expand(strip_version(imported), code_systems, value_sets, seen)
        # Several imports, or an import alongside a system, intersect (FHIR compose rules).
        out = set(codes) if out is None else out & codes
    if out is None:
        raise CannotExpand("include names neither a system nor a value set")
    return out


def _expand(
    url: str, code_systems: Mapping[str, JSON], value_sets: Mapping[str, JSON], seen: frozenset[str]
) -> frozenset[tuple[str, str]]:
    if url in seen:
        raise CannotExpand(f"value set {url} imports itself")
    vs = value_sets.get(url)
    if vs is None:
        raise CannotExpand(f"value set {url} is not shipped")
    compose: Any = vs.get("compose") or {}
    seen = seen | {url}
    included: set[tuple[str, str]] = set()
    for part in compose.get("include", []):
        included |= _part(part, code_systems, value_sets, seen)
    for part in compose.get("exclude", []):
        included -= _part(part, code_systems, value_sets, seen)
    return frozenset(included)


def expand(url: str, code_systems: Mapping[str, JSON], value_sets: Mapping[str, JSON]) -> Expansion:
    """Expand a shipped value set by canonical URL; raises `CannotExpand` when it cannot."""
    return Expansion(_expand(strip_version(url), code_systems, value_sets, frozenset()))


def codings_of(value: Any) -> list[tuple[str | None, str]] | None:
    """The (system, code) pairs a coded value carries, or None if the value is not a code at all.

    A bare `code` string has no system; a Coding has one; a CodeableConcept has its codings.
    """
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return None
    if "coding" in value or ("text" in value and "code" not in value):
        return [(c.get("system"), c["code"]) for c in value.get("coding", []) if "code" in c]
    if "code" in value:
        return [(value.get("system"), value["code"])]
    return None
