"""SMART on FHIR scopes: parse v2 (and v1) scope strings, decide what they allow, narrow requests.

Pure functions, no I/O. A scope is `context/Type.permissions[?param=value&…]`:

- context: `patient` | `user` | `system`
- Type: a resource type or `*`
- permissions (v2): any of `c r u d s`, in that order (`cruds`); v1 `read` = `rs`, `write` = `cud`, `*` = `cruds`
- filters (v2 only): `?param=value` pairs the search layer must AND into every query the scope allows

Write never implies read: `system/Patient.cud` permits no read or search.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

CONTEXTS = frozenset({"patient", "user", "system"})
INTERACTIONS: tuple[str, ...] = ("create", "read", "update", "delete", "search")
_LETTER = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")

Filter = tuple[tuple[str, str], ...]


class ScopeError(ValueError):
    """A string that looks like a resource scope but is not a valid one."""


@dataclass(frozen=True)
class Scope:
    """One parsed resource scope; `filters` are (param, value) pairs, sorted, AND-ed."""

    context: str
    resource_type: str  # a type name or "*"
    interactions: frozenset[str]
    filters: Filter = ()

    def __str__(self) -> str:
        letters = "".join(k for k in "cruds" if _LETTER[k] in self.interactions)
        text = f"{self.context}/{self.resource_type}.{letters}"
        return f"{text}?{urlencode(self.filters)}" if self.filters else text

    def covers(self, interaction: str, resource_type: str) -> bool:
        return interaction in self.interactions and self.resource_type in ("*", resource_type)


def is_resource_scope(text: str) -> bool:
    """True for strings shaped like `context/Type.x`; other scopes (`openid`, `launch`…) are not ours."""
    head = text.split("/", 1)[0]
    return head in CONTEXTS and "/" in text


def parse_scope(text: str) -> Scope:
    """Parse one scope string. Raises ScopeError when it is malformed (e.g. `.sr`, `.x`, empty filter)."""
    match = _SCOPE.match(text)
    if not match or match.group(3) == "":
        raise ScopeError(f"not a SMART resource scope: {text!r}")
    context, rtype, perms, query = match.groups()
    letters = _V1.get(perms, perms)
    if query is not None and perms in ("read", "write"):
        raise ScopeError(f"filters need v2 permissions: {text!r}")
    filters: Filter = ()
    if query is not None:
        try:
            pairs = parse_qsl(query, keep_blank_values=False, strict_parsing=True)
        except ValueError as exc:
            raise ScopeError(f"bad scope filter in {text!r}") from exc
        if not pairs or any(not _PARAM.match(name) for name, _ in pairs):
            raise ScopeError(f"bad scope filter in {text!r}")
        filters = tuple(sorted(set(pairs)))
    return Scope(context, rtype, frozenset(_LETTER[c] for c in letters), filters)


def parse_scopes(text: str | Iterable[str]) -> list[Scope]:
    """Parse a space-separated scope string (or list), skipping non-resource scopes; raises ScopeError."""
    items = text.split() if isinstance(text, str) else list(text)
    return [parse_scope(item) for item in items if is_resource_scope(item)]


def _as_scopes(scopes: Iterable[str | Scope]) -> list[Scope]:
    out: list[Scope] = []
    for item in scopes:
        if isinstance(item, Scope):
            out.append(item)
        elif is_resource_scope(item):
            try:
                out.append(parse_scope(item))
            except ScopeError:
                continue  # a malformed scope grants nothing
    return out


@dataclass(frozen=True)
class Restriction:
    """What the scopes allow for one (interaction, type): the caller may proceed if any alternative holds.

    `any_of` lists alternatives (OR); each is a tuple of (param, value) pairs to AND into the query.
    An empty `any_of` means no restriction at all.
    """

    any_of: tuple[Filter, ...] = ()

    @property
    def unrestricted(self) -> bool:
        return not self.any_of


def restriction(scopes: Iterable[str | Scope], interaction: str, resource_type: str) -> Restriction | None:
    """None when no scope allows `interaction` on `resource_type`; else the filters the search must apply.

    One unfiltered scope that allows it wins over any filtered ones (it is the wider grant). A
    token's scopes (a frozenset) are parsed once per interaction and type, not on every request.
    """
    if isinstance(scopes, frozenset):
        return _restriction_of_set(scopes, interaction, resource_type)
    return _restriction(scopes, interaction, resource_type)


def _restriction(scopes: Iterable[str | Scope], interaction: str, resource_type: str) -> Restriction | None:
    if interaction not in INTERACTIONS:
        raise ValueError(f"unknown interaction {interaction!r}")
    matching = [s for s in _as_scopes(scopes) if s.covers(interaction, resource_type)]
    if not matching:
        return None
    if any(not s.filters for s in matching):
        return Restriction()
    return Restriction(tuple(sorted({s.filters for s in matching})))


_restriction_of_set = functools.lru_cache(maxsize=4096)(_restriction)


def allows(scopes: Iterable[str | Scope], interaction: str, resource_type: str) -> bool:
    """True when some scope permits `interaction` (create/read/update/delete/search) on `resource_type`."""
    return restriction(scopes, interaction, resource_type) is not None


def patient_confined(scopes: Iterable[str | Scope], interaction: str, resource_type: str) -> bool:
    """True when only `patient/` scopes allow `interaction` on `resource_type`.

    Such access reaches the patient in context (and their linked records) and nothing else; a
    `user/` or `system/` scope that allows the same is the wider grant and confines nothing.
    """
    matching = [s for s in _as_scopes(scopes) if s.covers(interaction, resource_type)]
    return bool(matching) and all(s.context == "patient" for s in matching)


def _intersect(asked: Scope, held: Scope) -> Scope | None:
    if asked.context != held.context:
        return None
    if asked.resource_type == "*":
        rtype = held.resource_type
    elif held.resource_type in ("*", asked.resource_type):
        rtype = asked.resource_type
    else:
        return None
    interactions = asked.interactions & held.interactions
    if not interactions:
        return None
    return Scope(asked.context, rtype, interactions, tuple(sorted(set(asked.filters) | set(held.filters))))


def narrow(requested: Iterable[str | Scope], registered: Iterable[str | Scope]) -> list[str]:
    """The scopes to grant: each requested scope cut down to what some registered scope allows.

    Returned in canonical v2 form, de-duplicated, in request order. Filters from both sides are
    AND-ed, so a grant is never wider than either. Unparseable requested scopes are dropped.
    """
    held = _as_scopes(registered)
    granted: list[str] = []
    for asked in _as_scopes(requested):
        for have in held:
            cut = _intersect(asked, have)
            if cut is not None and str(cut) not in granted:
                granted.append(str(cut))
    return granted
