"""fixtures/community/contact_records.json: contacts → Encounter (OOH and 111 are presentations),
referrals → ServiceRequest, team membership → CareTeam, each with the person's Patient."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from gateway.codes import NHS_NUMBER_SYSTEM, SERVICE_TYPE_SYSTEM, SOURCE_TAG_SYSTEM, V3_ACT_CODE
from gateway.mappings.community import Accepted, Rejected, json_schema, map_record, map_records, read_records
from gateway.mappings.source import SourceSystem
from gateway.paths import FIXTURES_DIR
from gateway.types import JSON

PATIENT_ID = "https://gateway.example.org/source/cp-northeast/patient-id"


@pytest.fixture(scope="module")
def mapped(source: SourceSystem) -> list[Accepted]:
    data = (FIXTURES_DIR / "community" / "contact_records.json").read_bytes()
    results = list(map_records(read_records(data), source=source))
    assert all(isinstance(r, Accepted) for r in results), results
    return [r for r in results if isinstance(r, Accepted)]


def test_published_schema_is_the_model(load: Callable[[str], Any]) -> None:
    assert load("contact.schema.json") == json.loads(json.dumps(json_schema()))


def test_every_resource_valid_and_tagged(mapped: list[Accepted], assert_valid_r4: Callable[[JSON], None]) -> None:
    assert [r.resource_types for r in mapped] == [("Patient", "Encounter")] * 5 + [
        ("Patient", "ServiceRequest"),
        ("Patient", "CareTeam"),
    ]
    for result in mapped:
        for resource in result.resources:
            assert_valid_r4(resource)
            assert {"system": SOURCE_TAG_SYSTEM, "code": "cp-northeast"} in resource["meta"]["tag"]


def test_community_nursing_home_visit(mapped: list[Accepted]) -> None:
    patient, enc = mapped[0].resources
    assert patient["identifier"] == [
        {"system": PATIENT_ID, "value": "CN-40021"},
        {"system": NHS_NUMBER_SYSTEM, "value": "9990010080"},
    ]
    assert patient["name"] == [{"use": "official", "family": "Testperson", "given": ["Ada"]}]
    assert enc["class"] == {"system": V3_ACT_CODE, "code": "HH", "display": "home health"}
    assert enc["serviceType"] == {"text": "Community nursing"}  # not a presentation
    assert enc["status"] == "finished"
    assert enc["period"] == {"start": "2024-07-01T09:30:00+01:00", "end": "2024-07-01T10:05:00+01:00"}
    assert enc["subject"] == {"type": "Patient", "identifier": {"system": PATIENT_ID, "value": "CN-40021"}}
    assert enc["participant"][0]["individual"]["identifier"]["value"] == "N0412"
    assert enc["serviceProvider"] == {"reference": "Organization/cp-northeast"}


def test_voluntary_sector_phone_call_is_virtual(mapped: list[Accepted]) -> None:
    patient, enc = mapped[1].resources
    assert enc["class"]["code"] == "VR"
    assert enc["serviceType"] == {"text": "Voluntary sector"}
    assert patient["address"] == [{"use": "home", "postalCode": "ZZ99 4DZ"}]
    assert len(patient["identifier"]) == 1  # no NHS number given


@pytest.mark.parametrize(("index", "code", "klass"), [(2, "out-of-hours", "HH"), (3, "nhs-111", "VR")])
def test_out_of_hours_and_111_are_presentations(mapped: list[Accepted], index: int, code: str, klass: str) -> None:
    enc = mapped[index].resources[1]
    assert enc["serviceType"]["coding"] == [
        {"system": SERVICE_TYPE_SYSTEM, "code": code, "display": enc["serviceType"]["text"]}
    ]
    assert enc["class"]["code"] == klass


def test_planned_clinic_contact(mapped: list[Accepted]) -> None:
    enc = mapped[4].resources[1]
    assert enc["status"] == "planned" and enc["class"]["code"] == "AMB" and "end" not in enc["period"]


def test_referral(mapped: list[Accepted]) -> None:
    sr = mapped[5].resources[1]
    assert sr["identifier"][0]["value"] == "CN-REF-3391"
    assert (sr["status"], sr["intent"], sr["priority"]) == ("active", "order", "urgent")
    assert sr["performer"][0]["identifier"]["value"] == "Y99010"
    assert sr["requester"]["identifier"]["value"] == "N0412"


def test_team_membership(mapped: list[Accepted]) -> None:
    team = mapped[6].resources[1]
    assert team["name"] == "North East neighbourhood nursing"
    assert [p["role"][0]["text"] for p in team["participant"]] == ["Named nurse", "Occupational therapist"]
    assert team["participant"][0]["period"] == {"start": "2024-06-01"}
    assert team["managingOrganization"] == [{"reference": "Organization/cp-northeast"}]


def test_bad_records_rejected_with_reasons(load: Callable[[str], Any], source: SourceSystem) -> None:
    results = list(map_records(load("contact_records_bad.json"), source=source))
    assert all(isinstance(r, Rejected) for r in results)
    reasons = [r.reasons for r in results if isinstance(r, Rejected)]
    assert reasons[0] == ("person.nhsNumber: Value error, NHS number fails the Modulus 11 check digit",)
    assert reasons[1][0].startswith("service: Input should be")
    assert reasons[2][0].startswith("start: ")
    assert reasons[3] == ("toService: Field required",)
    assert reasons[4] == ("colour: Extra inputs are not permitted",)


def test_unknown_record_type_and_non_object(source: SourceSystem) -> None:
    result = map_record({"recordType": "invoice"}, source=source)
    assert isinstance(result, Rejected) and "recordType" in result.reasons[0]
    assert map_record([1], source=source) == Rejected(1, ("record is not a JSON object",))
