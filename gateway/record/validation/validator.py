"""The one entry point for `$validate` and for validation on write.

    validator = Validator(default_registry(), write_policy=WritePolicy(enforce=frozenset({...})))
    issues = validator.validate(resource)                       # $validate: every claimed profile
    issues = validator.validate(resource, profile=url)          # $validate?profile=url
    issues = validator.validate(resource, mode="create")        # write path: what the policy enforces
    if has_errors(issues): raise unprocessable(issues)          # gateway.fhir.errors

Order of checks: base R4 structure (fhir.resources), then each profile and the shipped profiles it
derives from, then (QuestionnaireResponse) the shipped Questionnaire it answers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.fhir.errors import invalid, issue
from gateway.record.validation.conformance import check_profile
from gateway.record.validation.questionnaire import validate_questionnaire_response
from gateway.record.validation.registry import ProfileRegistry, default_registry
from gateway.record.validation.structure import check_structure
from gateway.record.validation.urls import strip_version
from gateway.types import JSON

Issue = dict[str, Any]

MODES = frozenset({"create", "update", "delete", "profile"})
_WRITE_MODES = frozenset({"create", "update"})


@dataclass(frozen=True)
class WritePolicy:
    """What the write path (create/update) enforces, per profile.

    `enforce`: claimed profiles (meta.profile) checked on write; None means every shipped profile.
    `required`: resource type -> profiles every write of that type must meet, claimed or not.
    `questionnaires`: check a QuestionnaireResponse against its shipped Questionnaire on write.
    """

    enforce: frozenset[str] | None = None
    required: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    questionnaires: bool = True


def has_errors(issues: list[Issue]) -> bool:
    """Whether any issue blocks the resource (fatal or error; warnings never do)."""
    return any(i.get("severity") in ("fatal", "error") for i in issues)


class Validator:
    """Validates resources against base R4 and the profiles shipped in `profiles/`."""

    def __init__(self, registry: ProfileRegistry | None = None, *, write_policy: WritePolicy | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.write_policy = write_policy or WritePolicy()

    def validate(self, resource: JSON, profile: str | None = None, mode: str | None = None) -> list[Issue]:
        """Issues for `resource` (empty when valid); see the module docstring for the modes.

        `profile` (only outside write modes) validates against that profile instead of meta.profile;
        an unknown one is an error, an unknown claimed one only a warning. Raises `FhirError`
        (invalid) for an unknown mode. `delete` checks nothing: whether a delete is allowed is the
        store's decision, not the profile's.
        """
        if mode is not None and mode not in MODES:
            raise invalid(f"Unknown validation mode {mode!r}", ["mode"])
        if mode == "delete":
            return []
        issues = check_structure(resource)
        if not isinstance(resource, dict) or any(i.get("expression") == ["resourceType"] for i in issues):
            return issues  # no type, no profiles to check against
        writing = mode in _WRITE_MODES
        for url, explicit in self._profiles_to_check(resource, profile, writing):
            issues += self._against(resource, url, explicit)
        if resource.get("resourceType") == "QuestionnaireResponse" and (
            not writing or self.write_policy.questionnaires
        ):
            issues += self._against_questionnaire(resource)
        return issues

    def _profiles_to_check(self, resource: JSON, profile: str | None, writing: bool) -> list[tuple[str, bool]]:
        if profile is not None and not writing:
            return [(strip_version(profile), True)]
        claimed = [strip_version(str(p)) for p in (resource.get("meta") or {}).get("profile", [])]
        if writing:
            enforce = self.write_policy.enforce
            claimed = [p for p in claimed if enforce is None or p in enforce]
            claimed += [
                p for p in self.write_policy.required.get(str(resource.get("resourceType")), ()) if p not in claimed
            ]
        return [(p, False) for p in dict.fromkeys(claimed)]

    def _against(self, resource: JSON, url: str, explicit: bool) -> list[Issue]:
        compiled = self.registry.profile(url)
        if compiled is None:
            return [
                issue(
                    "not-supported",
                    f"Profile {url} is not known to this server, so it was not checked",
                    severity="error" if explicit else "warning",
                    expression=["Resource.meta.profile"] if not explicit else None,
                )
            ]
        if compiled.type != resource.get("resourceType") or compiled.kind != "resource":
            return [issue("invalid", f"Profile {url} is for {compiled.type}, not {resource.get('resourceType')}")]
        issues: list[Issue] = []
        seen: set[str] = set()
        current: Any = compiled
        # Walk up the shipped part of the derivation chain (UK Core and R4 bases are not shipped).
        while current is not None and current.url not in seen:
            seen.add(current.url)
            issues += check_profile(resource, current, self.registry)
            current = self.registry.profile(current.base) if current.base else None
        return issues

    def _against_questionnaire(self, qr: JSON) -> list[Issue]:
        canonical = qr.get("questionnaire")
        questionnaire = self.registry.questionnaire(str(canonical)) if canonical else None
        if questionnaire is None:
            return []
        return validate_questionnaire_response(qr, questionnaire, expansion=self.registry.expansion)


def validate(resource_json: JSON, *, profile_url: str | None = None) -> list[Issue]:
    """Validate against the shipped profiles with the default registry (see `Validator.validate`)."""
    return Validator().validate(resource_json, profile=profile_url)


@functools.cache
def shared_validator() -> Validator:
    """The process-wide validator over the shipped profiles (loaded once, on first use)."""
    return Validator()
