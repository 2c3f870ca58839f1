"""The conformance resources shipped in `profiles/`, loaded and compiled once per process.

StructureDefinitions are compiled and every constraint expression parsed at load, so a broken
profile fails the start-up (and the tests) rather than the first request that meets it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from pathlib import Path

import orjson

from gateway.paths import PROFILES_DIR
from gateway.record.validation.invariants import compiled
from gateway.record.validation.profile import CompiledProfile, compile_profile
from gateway.record.validation.terminology import CannotExpand, Expansion, expand
from gateway.record.validation.urls import strip_version
from gateway.types import JSON

log = logging.getLogger(__name__)

_KINDS = ("StructureDefinition", "ValueSet", "CodeSystem", "Questionnaire")


class ProfileRegistry:
    """Profiles, value sets, code systems and questionnaires by canonical URL."""

    def __init__(self, resources: Iterable[JSON]) -> None:
        self._by_kind: dict[str, dict[str, JSON]] = {kind: {} for kind in _KINDS}
        for resource in resources:
            kind = resource.get("resourceType")
            if kind in self._by_kind and resource.get("url"):
                self._by_kind[str(kind)][strip_version(str(resource["url"]))] = resource
        self._profiles: dict[str, CompiledProfile] = {
            url: compile_profile(sd) for url, sd in self._by_kind["StructureDefinition"].items()
        }
        for profile in self._profiles.values():
            for rule in profile.rules:
                for constraint in rule.constraints:
                    compiled(constraint.expression, primitive=False)
                    compiled(constraint.expression, primitive=True)
        self._expansions: dict[str, Expansion | None] = {}

    @classmethod
    def load(cls, directory: Path = PROFILES_DIR) -> ProfileRegistry:
        """Read every `StructureDefinition-*`, `ValueSet-*`, `CodeSystem-*` and `Questionnaire-*` file."""
        files = sorted(p for kind in _KINDS for p in directory.glob(f"{kind}-*.json"))
        return cls(orjson.loads(p.read_bytes()) for p in files)

    def profile(self, url: str) -> CompiledProfile | None:
        return self._profiles.get(strip_version(url))

    def structure_definition(self, url: str) -> JSON | None:
        return self._by_kind["StructureDefinition"].get(strip_version(url))

    def questionnaire(self, url: str) -> JSON | None:
        return self._by_kind["Questionnaire"].get(strip_version(url))

    def value_set(self, url: str) -> JSON | None:
        return self._by_kind["ValueSet"].get(strip_version(url))

    def code_system(self, url: str) -> JSON | None:
        return self._by_kind["CodeSystem"].get(strip_version(url))

    def profiles_for(self, resource_type: str) -> list[str]:
        """URLs of the resource profiles shipped for one resource type."""
        return sorted(u for u, p in self._profiles.items() if p.type == resource_type and p.kind == "resource")

    @property
    def profile_urls(self) -> frozenset[str]:
        return frozenset(self._profiles)

    def expansion(self, url: str) -> Expansion | None:
        """The value set's codes, or None when it is not shipped or cannot be expanded (cached)."""
        key = strip_version(url)
        if key not in self._expansions:
            try:
                self._expansions[key] = expand(key, self._by_kind["CodeSystem"], self._by_kind["ValueSet"])
            except CannotExpand as exc:
                log.debug("value set not expandable", extra={"value_set": key, "reason": str(exc)})
                self._expansions[key] = None
        return self._expansions[key]


@functools.cache
def default_registry() -> ProfileRegistry:
    """The registry over the repository's `profiles/` folder, loaded on first use."""
    return ProfileRegistry.load()
