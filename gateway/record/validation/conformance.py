"""Checking one resource against one compiled profile: cardinality, fixed and pattern values,
slices, bindings, reference targets and invariants.

Each check names the element it found wrong by FHIRPath. Severity follows FHIR: a broken rule of the
profile is an error; an extensible binding missed, or a constraint declared `warning`, is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from gateway.fhir.errors import issue
from gateway.record.validation.invariants import holds
from gateway.record.validation.paths import Located, children, value_at
from gateway.record.validation.profile import CompiledProfile, ElementRule, Step
from gateway.record.validation.terminology import Expansion, codings_of

Issue = dict[str, Any]


class Definitions(Protocol):
    """What the checker needs from the registry."""

    def expansion(self, url: str) -> Expansion | None: ...

    def profile(self, url: str) -> CompiledProfile | None: ...


def pattern_matches(pattern: Any, value: Any) -> bool:
    """FHIR pattern[x]: every element the pattern has, the value has too (lists: each pattern item
    matches some value item); the value may carry more."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and pattern_matches(v, value[k]) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(pattern_matches(p, v) for v in items) for p in pattern)
    return bool(pattern == value)


def _step_id(root: str, steps: Iterable[Step]) -> str:
    return root + "".join(f".{s.name}" + (f":{s.slice}" if s.slice else "") for s in steps)


def _in_slice(profile: CompiledProfile, slice_id: str, item: Any) -> bool:
    for disc, wanted in profile.slice_values.get(slice_id, {}).items():
        found = [item] if disc == "$this" else value_at(item, disc)
        if not any(pattern_matches(wanted, value) for value in found):
            return False
    return True


def _resolve(profile: CompiledProfile, start: list[Located], steps: tuple[Step, ...]) -> list[Located]:
    current = start
    for i, step in enumerate(steps):
        found: list[Located] = []
        slice_id = _step_id(profile.type, steps[: i + 1]) if step.slice else None
        for path, node in current:
            for path_child, child in children(path, node, step.name):
                if slice_id is None or _in_slice(profile, slice_id, child):
                    found.append((path_child, child))
        current = found
    return current


def _label(rule: ElementRule) -> str:
    step = rule.steps[-1]
    return f"slice '{step.slice}' of {step.name}" if step.slice else step.name


def _cardinality(rule: ElementRule, parent_path: str, count: int) -> list[Issue]:
    where = [f"{parent_path}.{rule.steps[-1].name.removesuffix('[x]')}"]
    if rule.min and count < rule.min:
        return [issue("required", f"{_label(rule)}: at least {rule.min} required, found {count}", expression=where)]
    if rule.max is not None and count > rule.max:
        return [issue("structure", f"{_label(rule)}: at most {rule.max} allowed, found {count}", expression=where)]
    return []


def _binding(rule: ElementRule, path: str, node: Any, defs: Definitions) -> list[Issue]:
    binding = rule.binding
    if binding is None or binding.strength not in ("required", "extensible"):
        return []
    codes = codings_of(node)
    if codes is None:
        return []
    expansion = defs.expansion(binding.value_set)
    if expansion is None:
        return [
            issue(
                "not-supported",
                f"Value set {binding.value_set} is not shipped or cannot be expanded; code not checked",
                severity="warning",
                expression=[path],
            )
        ]
    if any(expansion.contains(system, code) for system, code in codes):
        return []
    if binding.strength == "extensible":
        if not codes:
            return []  # text alone is allowed where no code fits an extensible binding
        return [
            issue(
                "code-invalid",
                f"No code is from the extensible value set {binding.value_set}",
                severity="warning",
                expression=[path],
            )
        ]
    shown = ", ".join(f"{s}|{c}" if s else c for s, c in codes) or "no code"
    return [
        issue(
            "code-invalid",
            f"{shown} is not in the required value set {binding.value_set}",
            expression=[path],
        )
    ]


def _reference_type(reference: str) -> str | None:
    if reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return parts[-2] if len(parts) >= 2 else None


def _targets(rule: ElementRule, path: str, node: Any) -> list[Issue]:
    if not rule.target_types or "Resource" in rule.target_types or not isinstance(node, dict):
        return []
    seen = {t for t in (node.get("type"), _reference_type(str(node.get("reference", "")))) if t}
    wrong = sorted(seen - set(rule.target_types))
    if not wrong:
        return []
    allowed = ", ".join(rule.target_types)
    return [issue("value", f"Reference to {wrong[0]} is not allowed here (allowed: {allowed})", expression=[path])]


def _choice(rule: ElementRule, path: str) -> list[Issue]:
    name = rule.steps[-1].name if rule.steps else ""
    if not name.endswith("[x]") or not rule.types:
        return []
    key = path.rsplit(".", 1)[-1].split("[", 1)[0]
    suffix = key[len(name) - 3 :]
    allowed = {t[0].upper() + t[1:] for t in rule.types}
    if suffix in allowed:
        return []
    return [issue("structure", f"{key} is not allowed: {name} must be one of {sorted(allowed)}", expression=[path])]


def _node_checks(rule: ElementRule, path: str, node: Any, resource: Any, defs: Definitions, depth: int) -> list[Issue]:
    out: list[Issue] = []
    if rule.fixed is not None and node != rule.fixed:
        out.append(issue("value", f"Value must be exactly {rule.fixed!r}", expression=[path]))
    if rule.pattern is not None and not pattern_matches(rule.pattern, node):
        out.append(issue("value", f"Value must match the pattern {rule.pattern!r}", expression=[path]))
    out += _choice(rule, path)
    out += _binding(rule, path, node, defs)
    out += _targets(rule, path, node)
    for url in rule.type_profiles:
        inner = defs.profile(url)
        if inner is not None and inner.kind != "resource" and depth < 4:
            out += check_profile(resource, inner, defs, node=node, root_path=path, depth=depth + 1)
    for constraint in rule.constraints:
        try:
            ok = holds(constraint.expression, node, resource)
        except Exception as exc:  # a data-dependent evaluation failure is reported, not raised
            out.append(issue("invariant", f"{constraint.key}: could not be evaluated ({exc})", expression=[path]))
            continue
        if not ok:
            out.append(
                issue(
                    "invariant",
                    f"{constraint.key}: {constraint.human}",
                    severity=constraint.severity,
                    expression=[path],
                )
            )
    return out


def _closed_slices(profile: CompiledProfile, start: list[Located]) -> list[Issue]:
    out: list[Issue] = []
    for sliced_id, slicing in profile.slicings.items():
        if slicing.rules != "closed":
            continue
        sliced = next((r for r in profile.rules if r.id == sliced_id), None)
        if sliced is None:
            continue
        prefix = sliced_id + ":"
        slice_ids = [s for s in profile.slice_values if s.startswith(prefix) and "." not in s[len(prefix) :]]
        for path, node in _resolve(profile, start, sliced.steps):
            if not any(_in_slice(profile, s, node) for s in slice_ids):
                out.append(issue("structure", "Item matches no slice of a closed slicing", expression=[path]))
    return out


def check_profile(
    resource: Any,
    profile: CompiledProfile,
    defs: Definitions,
    *,
    node: Any = None,
    root_path: str | None = None,
    depth: int = 0,
) -> list[Issue]:
    """Issues for `resource` (or one `node` inside it, for a data-type profile such as an extension)."""
    start: list[Located] = [(root_path or profile.type, resource if node is None else node)]
    out: list[Issue] = []
    for rule in profile.rules:
        if not rule.steps:
            targets = start
        else:
            targets = []
            for parent_path, parent in _resolve(profile, start, rule.parent_steps):
                found = _children_of(profile, rule, parent_path, parent)
                out += _cardinality(rule, parent_path, len(found))
                targets.extend(found)
        for path, value in targets:
            out += _node_checks(rule, path, value, resource, defs, depth)
    out += _closed_slices(profile, start)
    return out


def _children_of(profile: CompiledProfile, rule: ElementRule, parent_path: str, parent: Any) -> list[Located]:
    """The rule's own element under one parent (slice-filtered), keeping the parent's slice context."""
    step = rule.steps[-1]
    found = children(parent_path, parent, step.name)
    if step.slice is None:
        return found
    slice_id = _step_id(profile.type, rule.steps)
    return [(p, v) for p, v in found if _in_slice(profile, slice_id, v)]
