"""A StructureDefinition's differential, compiled once into rules the checker applies.

Only the differential is read: the gateway does not ship snapshots, and the base resource's own
structure is checked by the fhir.resources model instead. Elements are addressed by their `id`
(`Patient.identifier:nhsNumber.value`), which names the slice an element belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.record.validation.urls import strip_version
from gateway.types import JSON

# Extensions are sliced by url even when a profile's differential leaves the slicing implicit.
_EXTENSION_ELEMENTS = frozenset({"extension", "modifierExtension"})


class ProfileError(ValueError):
    """A shipped StructureDefinition the validator cannot use: a data bug, raised at load."""


@dataclass(frozen=True)
class Step:
    """One element name in an element id, with the slice it selects (if any)."""

    name: str
    slice: str | None = None


@dataclass(frozen=True)
class Constraint:
    key: str
    severity: str
    human: str
    expression: str


@dataclass(frozen=True)
class Binding:
    strength: str
    value_set: str


@dataclass(frozen=True)
class Slicing:
    """How the items of a sliced element are told apart (`discriminator` type value/pattern)."""

    paths: tuple[str, ...]
    rules: str


@dataclass(frozen=True)
class ElementRule:
    """What the differential says about one element (or slice) of the profiled type."""

    id: str
    steps: tuple[Step, ...]
    min: int | None = None
    max: int | None = None  # None: unbounded or unchanged
    fixed: Any = None
    pattern: Any = None
    binding: Binding | None = None
    types: tuple[str, ...] = ()
    type_profiles: tuple[str, ...] = ()
    target_types: tuple[str, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    slicing: Slicing | None = None

    @property
    def parent_steps(self) -> tuple[Step, ...]:
        return self.steps[:-1]


@dataclass(frozen=True)
class CompiledProfile:
    url: str
    type: str
    kind: str
    base: str | None
    rules: tuple[ElementRule, ...]
    # slice element id -> {discriminator path -> value (fixed or pattern) a matching item must carry}
    slice_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    # sliced element id (without slice) -> its slicing
    slicings: dict[str, Slicing] = field(default_factory=dict)


def _parse_id(element_id: str) -> tuple[str, tuple[Step, ...]]:
    root, *rest = element_id.split(".")
    steps = []
    for segment in rest:
        name, _, slice_name = segment.partition(":")
        steps.append(Step(name, slice_name or None))
    return root, tuple(steps)


def _element_id(element: JSON) -> str:
    if "id" in element:
        return str(element["id"])
    path = str(element["path"])
    return f"{path}:{element['sliceName']}" if "sliceName" in element else path


def _prefixed(element: JSON, prefix: str) -> Any:
    for key, value in element.items():
        if key.startswith(prefix) and len(key) > len(prefix) and key[len(prefix)].isupper():
            return value
    return None


def _target_type(url: str) -> str:
    # Core and UK Core profile names end in the resource type (`…/UKCore-Patient`, `…/Patient`).
    return strip_version(url).rsplit("/", 1)[-1].removeprefix("UKCore-")


def _max(value: str | None) -> int | None:
    return None if value in (None, "*") else int(str(value))


def _rule(element: JSON, root: str, steps: tuple[Step, ...]) -> ElementRule:
    types = element.get("type", [])
    binding = element.get("binding")
    slicing = element.get("slicing")
    return ElementRule(
        id=_element_id(element),
        steps=steps,
        min=element.get("min"),
        max=_max(element.get("max")),
        fixed=_prefixed(element, "fixed"),
        pattern=_prefixed(element, "pattern"),
        binding=Binding(binding["strength"], strip_version(binding["valueSet"]))
        if binding and binding.get("valueSet")
        else None,
        types=tuple(t["code"] for t in types),
        type_profiles=tuple(strip_version(p) for t in types for p in t.get("profile", [])),
        target_types=tuple(_target_type(p) for t in types for p in t.get("targetProfile", [])),
        constraints=tuple(
            Constraint(c["key"], c.get("severity", "error"), c.get("human", c["key"]), c["expression"])
            for c in element.get("constraint", [])
            if c.get("expression")
        ),
        slicing=Slicing(
            tuple(d["path"] for d in slicing.get("discriminator", []) if d["type"] in ("value", "pattern")),
            slicing.get("rules", "open"),
        )
        if slicing
        else None,
    )


def compile_profile(sd: JSON) -> CompiledProfile:
    """Compile a StructureDefinition's differential; raises `ProfileError` when it cannot be used."""
    url = sd.get("url")
    sd_type = sd.get("type")
    if not url or not sd_type:
        raise ProfileError(f"StructureDefinition {sd.get('id')} has no url or type")
    rules: list[ElementRule] = []
    for element in sd.get("differential", {}).get("element", []):
        root, steps = _parse_id(_element_id(element))
        if root != sd_type:
            raise ProfileError(f"{url}: element {element.get('id')} is not under {sd_type}")
        rules.append(_rule(element, root, steps))
    by_id = {r.id: r for r in rules}

    slicings = {r.id: r.slicing for r in rules if r.slicing is not None}
    slice_values: dict[str, dict[str, Any]] = {}
    for rule in rules:
        if not rule.steps or rule.steps[-1].slice is None:
            continue
        sliced_id = rule.id.rsplit(":", 1)[0]
        slicing = slicings.get(sliced_id)
        if slicing is None and rule.steps[-1].name in _EXTENSION_ELEMENTS:
            slicing = slicings[sliced_id] = Slicing(("url",), "open")
        if slicing is None:
            raise ProfileError(f"{url}: slice {rule.id} has no slicing on {sliced_id}")
        values: dict[str, Any] = {}
        for disc in slicing.paths:
            if disc == "url" and rule.type_profiles:
                values[disc] = rule.type_profiles[0]
                continue
            target = rule if disc == "$this" else by_id.get(f"{rule.id}.{disc}")
            if target is None or (target.fixed is None and target.pattern is None):
                raise ProfileError(f"{url}: slice {rule.id} gives no value for discriminator {disc}")
            values[disc] = target.fixed if target.fixed is not None else target.pattern
        slice_values[rule.id] = values

    return CompiledProfile(
        url=url,
        type=sd_type,
        kind=sd.get("kind", "resource"),
        base=strip_version(sd["baseDefinition"]) if sd.get("baseDefinition") else None,
        rules=tuple(rules),
        slice_values=slice_values,
        slicings=slicings,
    )
