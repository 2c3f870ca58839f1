"""The registry over `profiles/`: everything shipped loads, binds and expands; bad definitions fail at load.

Spec: https://hl7.org/fhir/R4/valueset.html#compositions
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway import codes
from gateway.record.validation import ProfileRegistry, Validator
from gateway.record.validation import urls as u
from gateway.record.validation.invariants import InvariantError
from gateway.record.validation.profile import ProfileError
from gateway.types import JSON

OURS = {
    u.CASE_MANAGED_EPISODE_OF_CARE,
    u.CASE_MANAGEMENT_CARE_PLAN,
    u.CASE_MANAGEMENT_CARE_TEAM,
    u.SHARED_ASSESSMENT_RESPONSE,
    u.CARE_GATEWAY_PATIENT,
    u.CASE_MANAGED_FLAG,
    u.EXT_CARE_PLAN_REVIEW_DATE,
}


def test_every_profile_is_shipped_and_compiled(registry: ProfileRegistry) -> None:
    assert registry.profile_urls >= OURS
    assert registry.profiles_for("EpisodeOfCare") == [u.CASE_MANAGED_EPISODE_OF_CARE]


def test_every_binding_and_answer_value_set_can_be_expanded(registry: ProfileRegistry) -> None:
    value_sets = {
        rule.binding.value_set
        for url in OURS
        for rule in registry.profile(url).rules  # type: ignore[union-attr]
        if rule.binding is not None
    }

    def answer_sets(items: list[JSON]) -> set[str]:
        found = {i["answerValueSet"] for i in items if "answerValueSet" in i}
        return found.union(*(answer_sets(i.get("item", [])) for i in items))

    questionnaire = registry.questionnaire(u.SHARED_ASSESSMENT)
    assert questionnaire is not None
    value_sets |= answer_sets(questionnaire["item"])
    assert len(value_sets) == 4
    for url in value_sets:
        expansion = registry.expansion(url)
        assert expansion is not None and expansion.codes, url


@pytest.mark.parametrize(
    ("value_set", "system", "code"),
    [
        (u.EPISODE_TYPE_VALUE_SET, codes.EPISODE_TYPE_SYSTEM, codes.SOCIAL_CARE_PACKAGE),
        (u.ALERT_VALUE_SET, codes.ALERT_CODE_SYSTEM, codes.PRESENTATION_ALERT),
        (u.ALERT_VALUE_SET, codes.ALERT_CODE_SYSTEM, codes.EARLY_DISCHARGE_PLANNING),
        (u.SERVICE_TYPE_VALUE_SET, codes.SERVICE_TYPE_SYSTEM, codes.NHS_111),
        (u.SERVICE_TYPE_VALUE_SET, codes.SERVICE_TYPE_SYSTEM, codes.OUT_OF_HOURS),
        (u.CARE_TEAM_ROLE_VALUE_SET, u.CARE_TEAM_ROLE_SYSTEM, u.SINGLE_POINT_OF_CONTACT_ROLE),
    ],
)
def test_code_constants_are_in_the_shipped_code_systems(
    registry: ProfileRegistry, value_set: str, system: str, code: str
) -> None:
    assert registry.code_system(system) is not None
    expansion = registry.expansion(value_set)
    assert expansion is not None and expansion.contains(system, code)


def test_concept_list_value_set_holds_only_the_case_managed_types(registry: ProfileRegistry) -> None:
    expansion = registry.expansion(u.CASE_MANAGED_EPISODE_TYPE_VALUE_SET)
    assert expansion is not None
    assert {c for _, c in expansion.codes} == codes.CASE_MANAGED_EPISODE_TYPES


def test_shipped_conformance_resources_are_valid_r4(registry: ProfileRegistry, validator: Validator) -> None:
    for url in OURS:
        assert validator.validate(registry.structure_definition(url)) == [], url  # type: ignore[arg-type]
    assert validator.validate(registry.questionnaire(u.SHARED_ASSESSMENT)) == []  # type: ignore[arg-type]
    for vs in (u.EPISODE_TYPE_VALUE_SET, u.CARE_TEAM_ROLE_VALUE_SET, u.ASSESSMENT_DEPENDENCY_VALUE_SET):
        assert validator.validate(registry.value_set(vs)) == []  # type: ignore[arg-type]


def test_completed_assessment_with_profile_is_checked_against_both(
    validator: Validator, example: Callable[[str], JSON]
) -> None:
    qr = example(u.SHARED_ASSESSMENT_RESPONSE)
    qr["status"] = "completed"
    del qr["author"]
    issues = validator.validate(qr)
    assert ("required", "QuestionnaireResponse.author") in [(i["code"], i["expression"][0]) for i in issues]
    assert ("required", "QuestionnaireResponse.item.where(linkId='clinical')") in [
        (i["code"], i["expression"][0]) for i in issues
    ]


# --- terminology on synthetic value sets -------------------------------------------------------

CS = {
    "resourceType": "CodeSystem",
    "url": "urn:cs",
    "content": "complete",
    "concept": [{"code": "a", "concept": [{"code": "a1"}]}, {"code": "b"}],
}


def _vs(url: str, compose: JSON) -> JSON:
    return {"resourceType": "ValueSet", "url": url, "compose": compose}


def test_whole_system_include_imports_and_excludes() -> None:
    registry = ProfileRegistry(
        [
            CS,
            _vs("urn:all", {"include": [{"system": "urn:cs"}]}),
            _vs(
                "urn:some",
                {"include": [{"valueSet": ["urn:all"]}], "exclude": [{"system": "urn:cs", "concept": [{"code": "b"}]}]},
            ),
            _vs(
                "urn:filtered",
                {"include": [{"system": "urn:cs", "filter": [{"property": "concept", "op": "is-a", "value": "a"}]}]},
            ),
            _vs("urn:external", {"include": [{"system": "http://snomed.info/sct"}]}),
        ]
    )
    everything = registry.expansion("urn:all|1.0")
    assert everything is not None and everything.codes == {("urn:cs", "a"), ("urn:cs", "a1"), ("urn:cs", "b")}
    some = registry.expansion("urn:some")
    assert some is not None and some.codes == {("urn:cs", "a"), ("urn:cs", "a1")}
    assert some.contains(None, "a1") and not some.contains("urn:other", "a1")
    assert registry.expansion("urn:filtered") is None
    assert registry.expansion("urn:external") is None
    assert registry.expansion("urn:missing") is None


def _sd(elements: list[JSON]) -> JSON:
    return {
        "resourceType": "StructureDefinition",
        "url": "urn:sd",
        "type": "Patient",
        "kind": "resource",
        "differential": {"element": elements},
    }


def test_an_unparseable_invariant_fails_at_load() -> None:
    bad = {
        "id": "Patient",
        "path": "Patient",
        "constraint": [{"key": "x-1", "severity": "error", "expression": "name.("}],
    }
    with pytest.raises(InvariantError):
        ProfileRegistry([_sd([bad])])


def test_a_slice_without_a_discriminator_value_fails_at_load() -> None:
    elements: list[JSON] = [
        {
            "id": "Patient.identifier",
            "path": "Patient.identifier",
            "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"},
        },
        {"id": "Patient.identifier:x", "path": "Patient.identifier", "sliceName": "x"},
    ]
    with pytest.raises(ProfileError):
        ProfileRegistry([_sd(elements)])
