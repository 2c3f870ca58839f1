"""The individual profile rules: slicing, invariants, bindings, fixed/pattern, extensions, severity.

Spec: https://hl7.org/fhir/R4/profiling.html#slicing, https://hl7.org/fhir/R4/terminologies.html#strength
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.identity.nhs_number import with_check_digit
from gateway.record.validation import ProfileRegistry, Validator
from gateway.record.validation import urls as u
from gateway.types import JSON

Example = Callable[[str], JSON]


def at(issues: list[JSON], severity: str = "error") -> list[str]:
    return [e for i in issues if i["severity"] == severity for e in i.get("expression", [])]


def diagnostics(issues: list[JSON]) -> list[str]:
    return [i["diagnostics"] for i in issues]


# --- slicing on identifier system --------------------------------------------------------------


def test_two_nhs_numbers_break_the_slice_maximum(validator: Validator, example: Example) -> None:
    patient = example(u.CARE_GATEWAY_PATIENT)
    second = with_check_digit("999000002")
    patient["identifier"].append({"system": NHS_NUMBER_SYSTEM, "value": second})
    issues = validator.validate(patient)
    assert at(issues) == ["Patient.identifier"]
    assert "slice 'nhsNumber' of identifier: at most 1 allowed, found 2" in diagnostics(issues)


def test_other_identifier_systems_are_left_alone_by_the_open_slicing(validator: Validator, example: Example) -> None:
    patient = example(u.CARE_GATEWAY_PATIENT)
    patient["identifier"] = [{"system": "https://care-gateway.example.org/source/la/person-id", "value": "nope"}]
    assert validator.validate(patient) == []


def test_nhs_number_slice_needs_a_value(validator: Validator, example: Example) -> None:
    patient = example(u.CARE_GATEWAY_PATIENT)
    del patient["identifier"][0]["value"]
    assert at(validator.validate(patient)) == ["Patient.identifier[0].value"]


# --- invariants --------------------------------------------------------------------------------


def test_nhs_number_pattern_invariant_reports_the_value(validator: Validator, example: Example) -> None:
    patient = example(u.CARE_GATEWAY_PATIENT)
    patient["identifier"].reverse()
    patient["identifier"][1]["value"] = "999-000-0018"
    issues = validator.validate(patient)
    assert at(issues) == ["Patient.identifier[1].value"]
    assert diagnostics(issues) == ["cg-nhs-1: An NHS number is exactly 10 digits"]


def test_nhs_number_check_digit_invariant(validator: Validator, example: Example) -> None:
    patient = example(u.CARE_GATEWAY_PATIENT)
    good = patient["identifier"][0]["value"]
    patient["identifier"][0]["value"] = good[:9] + str((int(good[9]) + 1) % 10)
    issues = validator.validate(patient)
    assert [(i["code"], i["diagnostics"]) for i in issues] == [
        ("invariant", "cg-nhs-2: An NHS number passes the Modulus 11 check digit")
    ]


def test_care_team_with_two_single_points_of_contact_fails_its_invariant(
    validator: Validator, example: Example
) -> None:
    team = example(u.CASE_MANAGEMENT_CARE_TEAM)
    team["participant"][2]["role"].append(
        {"coding": [{"system": u.CARE_TEAM_ROLE_SYSTEM, "code": u.SINGLE_POINT_OF_CONTACT_ROLE}]}
    )
    issues = validator.validate(team)
    assert at(issues) == ["CareTeam"]
    assert diagnostics(issues) == ["cg-ct-1: Exactly one participant is the single point of contact"]


def test_warning_invariant_does_not_make_an_error(validator: Validator, example: Example) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    episode["statusHistory"] = episode["statusHistory"][:1]  # only "planned"; status is "active"
    issues = validator.validate(episode)
    assert at(issues) == []
    assert at(issues, "warning") == ["EpisodeOfCare"]
    assert diagnostics(issues) == ["cg-eoc-2: The current status appears in the status history"]


def test_care_plan_activity_without_a_deliverer_fails(validator: Validator, example: Example) -> None:
    plan = example(u.CASE_MANAGEMENT_CARE_PLAN)
    plan["activity"].append({"detail": {"status": "not-started", "description": "Falls review"}})
    assert diagnostics(validator.validate(plan)) == [
        "cg-cp-1: Every activity names who delivers it (detail.performer) or links the request"
    ]


def test_review_date_before_the_plan_starts_is_a_warning(validator: Validator, example: Example) -> None:
    plan = example(u.CASE_MANAGEMENT_CARE_PLAN)
    plan["extension"][0]["valueDate"] = "2024-12-01"
    issues = validator.validate(plan)
    assert at(issues, "warning") == ["CarePlan"]
    assert at(issues) == []


def test_flag_ending_before_it_starts(validator: Validator, example: Example) -> None:
    flag = example(u.CASE_MANAGED_FLAG)
    flag["period"]["end"] = "2024-12-31"
    assert at(validator.validate(flag)) == ["Flag"]


# --- extensions (profiled data type) -----------------------------------------------------------


def test_review_date_extension_must_carry_a_date(validator: Validator, example: Example) -> None:
    plan = example(u.CASE_MANAGEMENT_CARE_PLAN)
    plan["extension"] = [{"url": u.EXT_CARE_PLAN_REVIEW_DATE, "valueString": "next spring"}]
    issues = validator.validate(plan)
    assert at(issues) == ["CarePlan.extension[0].valueString"]


def test_other_extensions_do_not_count_as_the_review_date(validator: Validator, example: Example) -> None:
    plan = example(u.CASE_MANAGEMENT_CARE_PLAN)
    plan["extension"] = [{"url": "https://elsewhere.example/ext", "valueDate": "2025-04-01"}]
    assert at(validator.validate(plan)) == ["CarePlan.extension"]


# --- bindings ----------------------------------------------------------------------------------


def test_required_binding_accepts_any_matching_coding(validator: Validator, example: Example) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    episode["type"][0]["coding"].insert(0, {"system": "http://snomed.info/sct", "code": "736373009"})
    assert validator.validate(episode) == []


def test_required_binding_rejects_text_only(validator: Validator, example: Example) -> None:
    episode = example(u.CASE_MANAGED_EPISODE_OF_CARE)
    episode["type"] = [{"text": "virtual ward"}]
    issues = validator.validate(episode)
    assert [(i["code"], i["expression"]) for i in issues] == [("code-invalid", ["EpisodeOfCare.type[0]"])]


def test_extensible_binding_miss_is_only_a_warning(validator: Validator, example: Example) -> None:
    team = example(u.CASE_MANAGEMENT_CARE_TEAM)
    team["participant"][2]["role"] = [{"coding": [{"system": "http://snomed.info/sct", "code": "106328005"}]}]
    issues = validator.validate(team)
    assert at(issues) == []
    assert at(issues, "warning") == ["CareTeam.participant[2].role[0]"]


def test_extensible_binding_allows_text_alone(validator: Validator, example: Example) -> None:
    team = example(u.CASE_MANAGEMENT_CARE_TEAM)
    team["participant"][2]["role"] = [{"text": "Befriender"}]
    assert validator.validate(team) == []


# --- a synthetic profile: closed slicing, pattern slices, unexpandable bindings ----------------

_SD = "https://test.example/StructureDefinition/"


def _registry_with(elements: list[JSON], extra: list[JSON] | None = None) -> ProfileRegistry:
    sd = {
        "resourceType": "StructureDefinition",
        "url": _SD + "p",
        "type": "Patient",
        "kind": "resource",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
        "differential": {"element": elements},
    }
    return ProfileRegistry([sd, *(extra or [])])


def test_closed_slicing_rejects_unmatched_items() -> None:
    registry = _registry_with(
        [
            {
                "id": "Patient.identifier",
                "path": "Patient.identifier",
                "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "closed"},
            },
            {"id": "Patient.identifier:nhs", "path": "Patient.identifier", "sliceName": "nhs", "min": 1},
            {"id": "Patient.identifier:nhs.system", "path": "Patient.identifier.system", "fixedUri": "urn:nhs"},
        ]
    )
    patient = {"resourceType": "Patient", "identifier": [{"system": "urn:nhs", "value": "1"}, {"system": "urn:x"}]}
    issues = Validator(registry).validate(patient, profile=_SD + "p")
    assert at(issues) == ["Patient.identifier[1]"]
    patient["identifier"] = [{"system": "urn:x"}]
    assert at(Validator(registry).validate(patient, profile=_SD + "p")) == [
        "Patient.identifier",
        "Patient.identifier[0]",
    ]


def test_pattern_discriminator_and_unexpandable_binding_warning() -> None:
    registry = _registry_with(
        [
            {
                "id": "Patient.identifier",
                "path": "Patient.identifier",
                "slicing": {"discriminator": [{"type": "pattern", "path": "type"}], "rules": "open"},
            },
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "max": "1"},
            {
                "id": "Patient.identifier:mrn.type",
                "path": "Patient.identifier.type",
                "patternCodeableConcept": {"coding": [{"code": "MR"}]},
            },
            {
                "id": "Patient.maritalStatus",
                "path": "Patient.maritalStatus",
                "binding": {"strength": "required", "valueSet": "http://hl7.org/fhir/ValueSet/marital-status"},
            },
        ]
    )
    mrn = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}
    patient = {"resourceType": "Patient", "identifier": [mrn, mrn], "maritalStatus": {"coding": [{"code": "M"}]}}
    issues = Validator(registry).validate(patient, profile=_SD + "p")
    assert at(issues) == ["Patient.identifier"]
    assert at(issues, "warning") == ["Patient.maritalStatus"]
