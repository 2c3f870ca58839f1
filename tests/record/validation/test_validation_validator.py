"""Base structure (fhir.resources) as FHIRPath, profile selection, modes and the write policy.

Spec: https://hl7.org/fhir/R4/resource-operation-validate.html
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.fhir.errors import FhirError
from gateway.record.validation import ProfileRegistry, Validator, WritePolicy, has_errors, validate
from gateway.record.validation import urls as u
from gateway.types import JSON

Example = Callable[[str], JSON]


def found(issues: list[JSON]) -> list[tuple[str, str, str]]:
    return [(i["severity"], i["code"], e) for i in issues for e in i.get("expression", [""])]


def test_base_structure_errors_become_fhirpath(validator: Validator) -> None:
    patient = {
        "resourceType": "Patient",
        "active": "maybe",
        "identifier": [{"system": "urn:x", "value": "1", "period": {"start": "not-a-date"}}],
        "favouriteColour": "blue",
    }
    assert found(validator.validate(patient)) == [
        ("error", "value", "Patient.active"),
        ("error", "value", "Patient.identifier[0].period.start"),
        ("error", "structure", "Patient.favouriteColour"),
    ]


def test_base_required_element_missing(validator: Validator) -> None:
    issues = validator.validate({"resourceType": "EpisodeOfCare", "status": "active"})
    assert found(issues) == [("error", "required", "EpisodeOfCare.patient")]


def test_unknown_resource_type(validator: Validator) -> None:
    assert found(validator.validate({"resourceType": "Spaceship"})) == [("error", "structure", "resourceType")]


def test_unknown_claimed_profile_is_a_warning_but_an_asked_one_is_an_error(validator: Validator) -> None:
    patient = {"resourceType": "Patient", "meta": {"profile": ["https://elsewhere.example/StructureDefinition/x"]}}
    assert found(validator.validate(patient)) == [("warning", "not-supported", "Resource.meta.profile")]
    issues = validator.validate({"resourceType": "Patient"}, profile="https://elsewhere.example/x")
    assert [(i["severity"], i["code"]) for i in issues] == [("error", "not-supported")]


def test_profile_for_another_type_is_refused(validator: Validator) -> None:
    issues = validator.validate({"resourceType": "Patient"}, profile=u.CASE_MANAGED_FLAG)
    assert [(i["code"], i["diagnostics"]) for i in issues] == [
        ("invalid", f"Profile {u.CASE_MANAGED_FLAG} is for Flag, not Patient")
    ]


def test_versioned_profile_canonical_resolves(validator: Validator, example: Example) -> None:
    flag = example(u.CASE_MANAGED_FLAG)
    flag["meta"]["profile"] = [u.CASE_MANAGED_FLAG + "|0.1.0"]
    del flag["period"]
    assert found(validator.validate(flag)) == [("error", "required", "Flag.period")]


def test_unknown_mode_raises_a_fhir_error(validator: Validator) -> None:
    with pytest.raises(FhirError) as caught:
        validator.validate({"resourceType": "Patient"}, mode="upsert")
    assert caught.value.status == 400


def test_delete_mode_checks_nothing(validator: Validator) -> None:
    assert validator.validate({"resourceType": "Patient", "active": "maybe"}, mode="delete") == []


def test_write_policy_enforces_only_the_profiles_it_names(registry: ProfileRegistry, example: Example) -> None:
    flag = example(u.CASE_MANAGED_FLAG)
    del flag["period"]
    only_episodes = Validator(registry, write_policy=WritePolicy(enforce=frozenset({u.CASE_MANAGED_EPISODE_OF_CARE})))
    assert only_episodes.validate(flag, mode="create") == []
    # $validate still checks every claimed profile.
    assert found(only_episodes.validate(flag)) == [("error", "required", "Flag.period")]
    assert found(Validator(registry).validate(flag, mode="update")) == [("error", "required", "Flag.period")]


def test_write_policy_can_require_a_profile_for_a_type(registry: ProfileRegistry, example: Example) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    del episode["meta"]
    del episode["careManager"]
    policy = WritePolicy(required={"EpisodeOfCare": (u.CASE_MANAGED_EPISODE_OF_CARE,)})
    issues = Validator(registry, write_policy=policy).validate(episode, mode="create")
    assert found(issues) == [("error", "required", "EpisodeOfCare.careManager")]
    assert has_errors(issues)
    assert Validator(registry).validate(episode, mode="create") == []


def test_questionnaire_check_on_write_can_be_switched_off(registry: ProfileRegistry, example: Example) -> None:
    qr = example(u.SHARED_ASSESSMENT_RESPONSE)
    qr["item"].append({"linkId": "no-such-item", "answer": [{"valueBoolean": True}]})
    policy = WritePolicy(questionnaires=False)
    assert Validator(registry, write_policy=policy).validate(qr, mode="create") == []
    assert found(Validator(registry).validate(qr, mode="create")) == [
        ("error", "structure", "QuestionnaireResponse.item.where(linkId='no-such-item')")
    ]


def test_has_errors_ignores_warnings() -> None:
    assert not has_errors([{"severity": "warning", "code": "invariant", "diagnostics": "x"}])
    assert has_errors([{"severity": "error", "code": "invariant", "diagnostics": "x"}])


def test_module_level_validate_uses_the_shipped_profiles(example: Example) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    del episode["meta"]
    del episode["team"]
    assert found(validate(episode, profile_url=u.CASE_MANAGED_EPISODE_OF_CARE)) == [
        ("error", "required", "EpisodeOfCare.team")
    ]


def test_validation_does_not_change_the_resource(validator: Validator, example: Example) -> None:
    plan = example(u.CASE_MANAGEMENT_CARE_PLAN)
    before = example(u.CASE_MANAGEMENT_CARE_PLAN)
    validator.validate(plan)
    assert plan == before
