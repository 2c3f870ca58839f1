"""One valid and one invalid example per shipped profile; each invalid one names the exact element.

Spec: https://hl7.org/fhir/R4/validation.html, https://hl7.org/fhir/R4/profiling.html
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gateway.record.validation import Validator
from gateway.record.validation import urls as u
from gateway.types import JSON

PROFILES = [
    u.CASE_MANAGED_EPISODE_OF_CARE,
    u.CASE_MANAGEMENT_CARE_PLAN,
    u.CASE_MANAGEMENT_CARE_TEAM,
    u.SHARED_ASSESSMENT_RESPONSE,
    u.CARE_GATEWAY_PATIENT,
    u.CASE_MANAGED_FLAG,
]


def errors(issues: list[JSON]) -> list[tuple[str, str]]:
    return [(i["code"], e) for i in issues if i["severity"] == "error" for e in i.get("expression", [])]


@pytest.mark.parametrize("url", PROFILES)
def test_valid_example_has_no_issues(validator: Validator, example: Callable[[str], JSON], url: str) -> None:
    assert validator.validate(example(url)) == []


@pytest.mark.parametrize("url", PROFILES)
def test_valid_example_passes_when_profile_is_asked_explicitly(
    validator: Validator, example: Callable[[str], JSON], url: str
) -> None:
    resource = example(url)
    del resource["meta"]
    assert validator.validate(resource, profile=url) == []


def _drop(key: str) -> Callable[[JSON], Any]:
    return lambda r: r.pop(key)


BREAKAGES: list[tuple[str, Callable[[JSON], Any], tuple[str, str]]] = [
    (u.CASE_MANAGED_EPISODE_OF_CARE, _drop("careManager"), ("required", "EpisodeOfCare.careManager")),
    (u.CASE_MANAGED_EPISODE_OF_CARE, _drop("team"), ("required", "EpisodeOfCare.team")),
    (u.CASE_MANAGED_EPISODE_OF_CARE, _drop("managingOrganization"), ("required", "EpisodeOfCare.managingOrganization")),
    (u.CASE_MANAGED_EPISODE_OF_CARE, _drop("statusHistory"), ("required", "EpisodeOfCare.statusHistory")),
    (
        u.CASE_MANAGED_EPISODE_OF_CARE,
        lambda r: r["type"][0]["coding"][0].update(code="home-visit"),
        ("code-invalid", "EpisodeOfCare.type[0]"),
    ),
    (u.CASE_MANAGEMENT_CARE_PLAN, _drop("extension"), ("required", "CarePlan.extension")),
    (u.CASE_MANAGEMENT_CARE_PLAN, lambda r: r.update(intent="proposal"), ("value", "CarePlan.intent")),
    (u.CASE_MANAGEMENT_CARE_PLAN, _drop("goal"), ("required", "CarePlan.goal")),
    (u.CASE_MANAGEMENT_CARE_PLAN, _drop("activity"), ("required", "CarePlan.activity")),
    (u.CASE_MANAGEMENT_CARE_PLAN, _drop("contributor"), ("required", "CarePlan.contributor")),
    (u.CASE_MANAGEMENT_CARE_PLAN, lambda r: r["period"].pop("start"), ("required", "CarePlan.period.start")),
    (u.CASE_MANAGEMENT_CARE_TEAM, _drop("managingOrganization"), ("required", "CareTeam.managingOrganization")),
    (
        u.CASE_MANAGEMENT_CARE_TEAM,
        lambda r: r["participant"][2].pop("role"),
        ("required", "CareTeam.participant[2].role"),
    ),
    (
        u.CASE_MANAGEMENT_CARE_TEAM,
        lambda r: r.update(category=[{"coding": [{"system": "http://loinc.org", "code": "LA27976-2"}]}]),
        ("value", "CareTeam.category[0]"),
    ),
    (
        u.SHARED_ASSESSMENT_RESPONSE,
        lambda r: r.update(questionnaire="https://elsewhere.example/Questionnaire/other"),
        ("value", "QuestionnaireResponse.questionnaire"),
    ),
    (u.SHARED_ASSESSMENT_RESPONSE, _drop("authored"), ("required", "QuestionnaireResponse.authored")),
    (u.SHARED_ASSESSMENT_RESPONSE, _drop("author"), ("required", "QuestionnaireResponse.author")),
    (
        u.CARE_GATEWAY_PATIENT,
        lambda r: r["identifier"][0].update(value="99900"),
        ("invariant", "Patient.identifier[0].value"),
    ),
    (u.CASE_MANAGED_FLAG, _drop("period"), ("required", "Flag.period")),
    (
        u.CASE_MANAGED_FLAG,
        lambda r: r.update(code={"coding": [{"system": "http://snomed.info/sct", "code": "1234"}]}),
        ("code-invalid", "Flag.code"),
    ),
]


@pytest.mark.parametrize(("url", "breaks", "expected"), BREAKAGES)
def test_invalid_example_names_the_element(
    validator: Validator,
    example: Callable[[str], JSON],
    url: str,
    breaks: Callable[[JSON], Any],
    expected: tuple[str, str],
) -> None:
    resource = example(url)
    breaks(resource)
    assert errors(validator.validate(resource)) == [expected]


def test_reference_to_the_wrong_resource_type_is_an_error(validator: Validator, example: Callable[[str], JSON]) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    episode["careManager"] = {"reference": "Organization/trust"}
    issues = validator.validate(episode)
    assert errors(issues) == [("value", "EpisodeOfCare.careManager")]
    assert "Organization" in issues[0]["diagnostics"]


def test_absolute_and_versioned_references_are_typed_by_their_path(
    validator: Validator, example: Callable[[str], JSON]
) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    episode["careManager"] = {"reference": "https://fhir.example.org/fhir/PractitionerRole/r1/_history/2"}
    episode["team"] = [{"reference": "urn:uuid:5a0c8a4e-0f0c-4a0e-9a33-7c0a1a5e2d10"}]
    assert validator.validate(episode) == []
