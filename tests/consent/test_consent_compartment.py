"""The patient compartment as data (R4 CompartmentDefinition) and `patients_of` for every member type."""

from __future__ import annotations

import json

import pytest
from fhir.resources.R4B.compartmentdefinition import CompartmentDefinition

from gateway.consent import CompartmentError, load_compartment, patients_of
from gateway.consent.compartment import COMPARTMENT_FILE, parse_compartment, patients_referenced
from gateway.types import JSON

REQUIRED = [
    "Patient", "Encounter", "EpisodeOfCare", "CarePlan", "CareTeam", "QuestionnaireResponse", "Consent",
    "Flag", "Communication", "ServiceRequest", "Task", "RiskAssessment", "List", "Group", "Provenance",
    "AuditEvent", "Goal", "RelatedPerson", "Condition", "Observation", "Basic",
]  # fmt: skip

P = {"reference": "Patient/p1"}
Q = {"reference": "Patient/p2"}
PRAC = {"reference": "Practitioner/dr1"}

CASES: list[tuple[JSON, set[str]]] = [
    ({"resourceType": "Patient", "id": "p1", "link": [{"other": Q, "type": "seealso"}]}, {"p1", "p2"}),
    ({"resourceType": "Encounter", "subject": P}, {"p1"}),
    ({"resourceType": "EpisodeOfCare", "patient": P}, {"p1"}),
    ({"resourceType": "CarePlan", "subject": P, "activity": [{"detail": {"performer": [Q]}}]}, {"p1", "p2"}),
    ({"resourceType": "CareTeam", "subject": P, "participant": [{"member": PRAC}, {"member": Q}]}, {"p1", "p2"}),
    ({"resourceType": "QuestionnaireResponse", "subject": P, "author": Q}, {"p1", "p2"}),
    ({"resourceType": "Consent", "patient": P}, {"p1"}),
    ({"resourceType": "Flag", "subject": P}, {"p1"}),
    ({"resourceType": "Communication", "subject": P, "sender": PRAC, "recipient": [Q]}, {"p1", "p2"}),
    ({"resourceType": "ServiceRequest", "subject": P, "performer": [PRAC]}, {"p1"}),
    ({"resourceType": "Task", "for": P, "owner": PRAC, "requester": Q}, {"p1", "p2"}),
    ({"resourceType": "RiskAssessment", "subject": P}, {"p1"}),
    ({"resourceType": "List", "subject": P, "source": Q}, {"p1", "p2"}),
    ({"resourceType": "Group", "member": [{"entity": P}, {"entity": Q}, {"entity": PRAC}]}, {"p1", "p2"}),
    ({"resourceType": "Provenance", "target": [P, {"reference": "Encounter/e1"}]}, {"p1"}),
    ({"resourceType": "AuditEvent", "agent": [{"who": Q}], "entity": [{"what": P}]}, {"p1", "p2"}),
    ({"resourceType": "Goal", "subject": P}, {"p1"}),
    ({"resourceType": "RelatedPerson", "patient": P}, {"p1"}),
    ({"resourceType": "Condition", "subject": P, "asserter": Q}, {"p1", "p2"}),
    ({"resourceType": "Observation", "subject": P, "performer": [PRAC]}, {"p1"}),
    ({"resourceType": "Basic", "subject": P, "author": Q}, {"p1", "p2"}),
]


def test_compartment_file_is_a_valid_r4_compartment_definition() -> None:
    data = json.loads(COMPARTMENT_FILE.read_text())
    CompartmentDefinition.model_validate(data)
    assert data["code"] == "Patient"


def test_every_required_type_is_a_member() -> None:
    compartment = load_compartment()
    assert [t for t in REQUIRED if not compartment.is_member_type(t)] == []


@pytest.mark.parametrize(("resource", "expected"), CASES, ids=[c[0]["resourceType"] for c in CASES])
def test_patients_of_each_member_type(resource: JSON, expected: set[str]) -> None:
    assert patients_of(resource) == expected


def test_cases_cover_every_required_type() -> None:
    assert {c[0]["resourceType"] for c in CASES} == set(REQUIRED)


def test_absolute_and_versioned_references_name_the_same_patient() -> None:
    enc = {"resourceType": "Encounter", "subject": {"reference": "https://other.example/fhir/Patient/p9/_history/2"}}
    assert patients_of(enc) == {"p9"}


def test_non_patient_subjects_and_identifier_only_references_are_not_members() -> None:
    assert patients_of({"resourceType": "Encounter", "subject": {"reference": "Group/g1"}}) == set()
    assert patients_of({"resourceType": "Encounter", "subject": {"identifier": {"value": "x"}}}) == set()
    assert patients_of({"resourceType": "Encounter", "subject": {"reference": "#contained"}}) == set()


def test_types_outside_the_compartment_have_no_patients() -> None:
    assert patients_of({"resourceType": "Organization", "id": "o1"}) == set()
    assert load_compartment().is_member_type("Organization") is False


def test_safety_net_finds_patients_named_anywhere() -> None:
    res = {"resourceType": "DeviceUseStatement", "subject": P, "derivedFrom": [{"reference": "Patient/p3"}]}
    assert patients_referenced(res) == {"p1", "p3"}


def test_compartment_param_without_element_path_is_refused() -> None:
    bad = {
        "resourceType": "CompartmentDefinition",
        "code": "Patient",
        "resource": [{"code": "Encounter", "param": ["x"]}],
    }
    with pytest.raises(CompartmentError, match="Encounter"):
        parse_compartment(bad)
