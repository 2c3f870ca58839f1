"""Turn a search request's parameters into a frozen `SearchQuery`, once.

Unknown or unsupported parameters become explicit issues: with `Prefer: handling=strict` the
request fails with 400; with `lenient` they are ignored and reported in the Bundle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.fhir.errors import FhirError, invalid, issue
from gateway.store.search.query import Criterion, IncludeSpec, SearchQuery, SortKey
from gateway.store.search.registry import SearchParamDef, SearchRegistry

# Result parameters this server implements; everything else starting with `_` is unknown.
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_summary",
        "_total",
        "_elements",
        "_cursor",
        "_format",
        "_pretty",
    }
)
SUMMARY_VALUES = frozenset({"count", "false", "data"})
TOTAL_VALUES = frozenset({"none", "estimate", "accurate"})


@dataclass(frozen=True)
class ParsedSearch:
    query: SearchQuery
    summary: str | None = None
    elements: tuple[str, ...] = ()
    cursor_token: str | None = None
    issues: tuple[dict[str, Any], ...] = ()
    # The parameters that took effect, in a canonical order: used for self links and cursors.
    canonical: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def split_values(raw: str) -> tuple[str, ...]:
    """Comma-separated OR values, honouring `\\,` escapes."""
    values, current, escaped = [], [], False
    for ch in raw:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(ch)
    values.append("".join(current))
    return tuple(v for v in values if v != "")


class _Unknown(Exception):
    pass


def _param_and_modifier(registry: SearchRegistry, rtype: str, key: str) -> tuple[SearchParamDef, str | None]:
    name, _, modifier = key.partition(":")
    param = registry.get(rtype, name)
    if param is None:
        raise _Unknown(f"unknown search parameter {name!r} for {rtype}")
    mod = modifier or None
    if mod is not None:
        type_modifier = param.type == "reference" and mod[:1].isupper()
        if type_modifier:
            if param.targets and mod not in param.targets:
                raise _Unknown(f"{name} cannot refer to {mod}")
        elif mod not in param.kind.modifiers or mod in ("text", "identifier"):
            raise _Unknown(f"modifier :{mod} is not supported on {name} ({param.type})")
    if name in ("_id",) and mod not in (None, "not"):
        raise _Unknown(f"modifier :{mod} is not supported on {name}")
    return param, mod


def _criterion(registry: SearchRegistry, rtype: str, key: str, raw: str) -> Criterion:
    if key.startswith("_has:"):
        parts = key.split(":", 3)
        if len(parts) != 4:
            raise _Unknown(f"malformed _has parameter {key!r}")
        _, source, ref_code, inner_key = parts
        if source not in registry.resource_types:
            raise _Unknown(f"unknown resource type {source!r} in {key!r}")
        ref = registry.get(source, ref_code)
        if ref is None or ref.type != "reference":
            raise _Unknown(f"{source}.{ref_code} is not a reference parameter")
        inner_param, inner_mod = _param_and_modifier(registry, source, inner_key)
        inner = Criterion(inner_param, split_values(raw), inner_mod)
        return Criterion(ref, (), None, chain=inner, has_type=source)
    if "." in key:
        left, right = key.split(".", 1)
        ref, mod = _param_and_modifier(registry, rtype, left)
        if ref.type != "reference":
            raise _Unknown(f"{left} is not a reference parameter, it cannot be chained")
        target = mod if mod and mod[:1].isupper() else None
        if target is None:
            if len(ref.targets) != 1:
                raise _Unknown(f"chained parameter {left} needs a type: {left}:<Type>.{right}")
            target = ref.targets[0]
        if "." in right:
            raise _Unknown("only one level of chaining is supported")
        inner_param, inner_mod = _param_and_modifier(registry, target, right)
        inner = Criterion(inner_param, split_values(raw), inner_mod)
        return Criterion(ref, (), None, chain=inner, chain_type=target)
    param, mod = _param_and_modifier(registry, rtype, key)
    values = split_values(raw)
    if mod == "missing":
        if raw not in ("true", "false"):
            raise invalid(f":missing takes true or false, not {raw!r}")
        values = (raw,)
    if not values:
        raise invalid(f"search parameter {key} has no value")
    return Criterion(param, values, mod)


def _include(registry: SearchRegistry, rtype: str, raw: str, reverse: bool) -> IncludeSpec:
    parts = raw.split(":")
    if len(parts) not in (2, 3):
        raise _Unknown(f"malformed include {raw!r}: use Type:param[:target]")
    source = parts[0]
    if not reverse and source != rtype:
        raise _Unknown(f"_include source {source!r} must be the searched type {rtype!r}")
    if source not in registry.resource_types:
        raise _Unknown(f"unknown resource type {source!r}")
    param = registry.get(source, parts[1])
    if param is None or param.type != "reference":
        raise _Unknown(f"{source}:{parts[1]} is not a reference parameter")
    target = parts[2] if len(parts) == 3 else None
    return IncludeSpec(source, param, target)


def parse_search(
    registry: SearchRegistry,
    rtype: str,
    items: list[tuple[str, str]],
    *,
    strict: bool,
    default_count: int,
    max_count: int,
) -> ParsedSearch:
    """Parse (key, value) pairs; raise FhirError 400 for malformed or (strict) unknown ones."""
    criteria: list[Criterion] = []
    sort: list[SortKey] = []
    includes: list[IncludeSpec] = []
    revincludes: list[IncludeSpec] = []
    issues: list[dict[str, Any]] = []
    canonical: list[tuple[str, str]] = []
    count = default_count
    total = "accurate"
    summary: str | None = None
    elements: tuple[str, ...] = ()
    cursor: str | None = None

    def unknown(message: str) -> None:
        if strict:
            raise FhirError("not-supported", message, status=400)
        issues.append(issue("not-supported", f"ignored: {message}", severity="warning"))

    for key, raw in items:
        try:
            if key in ("_format", "_pretty"):
                continue
            if key == "_cursor":
                cursor = raw
                continue
            if key == "_count":
                if not raw.isdigit():
                    raise invalid(f"_count must be a non-negative integer, not {raw!r}")
                count = min(int(raw), max_count)
            elif key == "_total":
                if raw not in TOTAL_VALUES:
                    raise invalid(f"_total must be one of {sorted(TOTAL_VALUES)}")
                total = raw
            elif key == "_summary":
                if raw not in SUMMARY_VALUES:
                    raise _Unknown(f"_summary={raw} is not supported (supported: {sorted(SUMMARY_VALUES)})")
                summary = raw
            elif key == "_elements":
                elements = tuple(e.strip() for e in raw.split(",") if e.strip())
            elif key == "_sort":
                for part in split_values(raw):
                    desc = part.startswith("-")
                    code = part.lstrip("-")
                    param = registry.get(rtype, code)
                    if param is None:
                        raise _Unknown(f"cannot sort {rtype} by {code!r}")
                    sort.append(SortKey(param, desc))
            elif key == "_include":
                includes.append(_include(registry, rtype, raw, reverse=False))
            elif key == "_revinclude":
                revincludes.append(_include(registry, rtype, raw, reverse=True))
            elif (
                key.startswith("_")
                and key not in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source")
                and not key.startswith("_has:")
            ):
                raise _Unknown(f"unknown parameter {key!r}")
            else:
                criteria.append(_criterion(registry, rtype, key, raw))
            canonical.append((key, raw))
        except _Unknown as exc:
            unknown(str(exc))
    if summary == "count":
        count = 0
    query = SearchQuery(
        resource_type=rtype,
        criteria=tuple(criteria),
        sort=tuple(sort),
        count=count,
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        total="accurate" if summary == "count" else total,
    )
    return ParsedSearch(query, summary, elements, cursor, tuple(issues), tuple(canonical))
