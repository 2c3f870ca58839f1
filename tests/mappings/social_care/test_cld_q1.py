"""fixtures/social_care/cld_2024_q1.csv: a council's first-quarter CLD extract maps row by row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from gateway.codes import (
    EPISODE_TYPE_SYSTEM,
    EXT_BASE,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    SOCIAL_CARE_PACKAGE,
    SOURCE_TAG_SYSTEM,
)
from gateway.mappings.social_care import Accepted, RowResult
from gateway.types import JSON

Pick = Callable[[tuple[JSON, ...], str], JSON]


PERSON_SYSTEM = "https://gateway.example.org/source/la-e99999999/person-id"
EVENT_SYSTEM = "https://gateway.example.org/source/la-e99999999/event-id"


@pytest.fixture(scope="module")
def q1(map_file: Callable[[str], list[RowResult]]) -> list[Accepted]:
    results = map_file("cld_2024_q1.csv")
    assert all(isinstance(r, Accepted) for r in results), [r for r in results if not isinstance(r, Accepted)]
    return [r for r in results if isinstance(r, Accepted)]


def row(results: list[Accepted], number: int) -> Accepted:
    return next(r for r in results if r.row_number == number)


def test_every_row_is_accepted_and_every_resource_is_valid_r4(
    q1: list[Accepted], assert_valid_r4: Callable[[JSON], None]
) -> None:
    assert len(q1) == 30
    for result in q1:
        for resource in result.resources:
            assert_valid_r4(resource)
            assert resource["meta"]["tag"] == [{"system": SOURCE_TAG_SYSTEM, "code": "la-e99999999"}]


def test_resource_types_per_event_type(q1: list[Accepted]) -> None:
    counts = Counter(t for r in q1 for t in r.resource_types)
    # 30 rows → 30 Patients; 11 Service rows → EoC + CarePlan; 7 assessments + 4 reviews → QR; 8 requests.
    assert counts["Patient"] == 30
    assert counts["EpisodeOfCare"] == counts["CarePlan"] == 11
    assert counts["QuestionnaireResponse"] == 11
    assert counts["ServiceRequest"] == 8
    assert counts["RelatedPerson"] == 3  # the carers' rows


def test_event_keys_are_distinct_per_event(q1: list[Accepted]) -> None:
    keys = [r.event_key for r in q1]
    assert len(set(keys)) == len(keys)
    # Two services for the same person on the same day differ by component and mechanism (rows 8, 10).
    assert row(q1, 8).event_key != row(q1, 10).event_key


def test_patient_demographics(q1: list[Accepted], by_type: Pick) -> None:
    patient = by_type(row(q1, 1).resources, "Patient")
    assert patient["identifier"] == [
        {"system": PERSON_SYSTEM, "value": "SC0001"},
        {"system": NHS_NUMBER_SYSTEM, "value": "9990010005"},
    ]
    assert patient["gender"] == "female"
    assert patient["birthDate"] == "1938-05-14"
    assert patient["address"] == [{"use": "home", "postalCode": "ZZ99 1AA"}]
    assert patient["generalPractitioner"][0]["identifier"] == {"system": ODS_SYSTEM, "value": "Y99001"}
    ethnicity = patient["extension"][0]
    assert ethnicity["url"] == f"{EXT_BASE}/asc-ethnicity"
    assert (
        ethnicity["valueCodeableConcept"]["coding"][0]["code"] == "white-english-welsh-scottish-northern-irish-british"
    )


def test_blank_nhs_number_person_known_by_council_id(q1: list[Accepted], by_type: Pick) -> None:
    patient = by_type(row(q1, 7).resources, "Patient")  # SC0003: no NHS number, postcode typed 'zz991cc'
    assert patient["identifier"] == [{"system": PERSON_SYSTEM, "value": "SC0003"}]
    assert patient["address"][0]["postalCode"] == "ZZ99 1CC"


def test_uk_style_date_of_birth(q1: list[Accepted], by_type: Pick) -> None:
    assert by_type(row(q1, 4).resources, "Patient")["birthDate"] == "1945-11-12"  # typed 12/11/1945


def test_open_service_is_an_active_care_package_with_a_plan(q1: list[Accepted], by_type: Pick) -> None:
    result = row(q1, 3)  # SC0001 home support, commissioned, 14 units a week, no end yet
    eoc = by_type(result.resources, "EpisodeOfCare")
    assert eoc["identifier"] == [{"system": EVENT_SYSTEM, "value": result.event_key}]
    assert eoc["status"] == "active"
    assert eoc["type"][0]["coding"][0] == {
        "system": EPISODE_TYPE_SYSTEM,
        "code": SOCIAL_CARE_PACKAGE,
        "display": "Social care package",
    }
    assert eoc["type"][1]["coding"][0]["display"] == "Long Term Support: Community"
    assert eoc["patient"] == {"type": "Patient", "identifier": {"system": PERSON_SYSTEM, "value": "SC0001"}}
    assert eoc["managingOrganization"] == {"reference": "Organization/la-e99999999"}
    assert eoc["period"] == {"start": "2024-04-22"}
    assert eoc["careManager"]["display"] == "Sam Worker"
    assert eoc["team"][0]["identifier"]["value"] == "allocated|SC0001"
    psr = _ext(eoc, "asc-primary-support-reason")
    assert psr["valueCoding"]["display"] == "Physical Support: Personal care support"

    plan = by_type(result.resources, "CarePlan")
    assert plan["status"] == "active" and plan["intent"] == "plan"
    detail = plan["activity"][0]["detail"]
    assert detail["code"]["coding"][0]["display"] == "Home Support"
    assert detail["status"] == "in-progress"
    assert detail["quantity"] == {"value": 14, "unit": "units per week"}
    assert detail["extension"][0]["valueCoding"]["display"] == "CASSR Commissioned Support"
    assert plan["supportingInfo"] == [{"type": "EpisodeOfCare", "identifier": eoc["identifier"][0]}]


def test_fractional_planned_units(q1: list[Accepted], by_type: Pick) -> None:
    plan = by_type(row(q1, 5).resources, "CarePlan")
    assert plan["activity"][0]["detail"]["quantity"]["value"] == 10.5


def test_assessment_is_a_questionnaire_response(q1: list[Accepted], by_type: Pick) -> None:
    qr = by_type(row(q1, 2).resources, "QuestionnaireResponse")
    assert qr["questionnaire"].endswith("/Questionnaire/asc-assessment")
    assert qr["status"] == "completed"  # has an end date
    answers = {i["linkId"]: i["answer"][0] for i in qr["item"]}
    assert answers["assessment-type"]["valueCoding"]["display"] == "Long Term Assessment"
    assert answers["eligible-needs-identified"] == {"valueBoolean": True}
    assert answers["event-outcome"]["valueCoding"]["display"] == "Progress to Support Planning / Services"
    assert answers["event-end-date"] == {"valueDate": "2024-04-19"}


def test_review_is_a_questionnaire_response(q1: list[Accepted], by_type: Pick) -> None:
    qr = by_type(row(q1, 19).resources, "QuestionnaireResponse")  # SC0008 unplanned review
    assert qr["questionnaire"].endswith("/Questionnaire/asc-review")
    answers = {i["linkId"]: i["answer"][0] for i in qr["item"]}
    assert answers["review-reason"]["valueCoding"]["display"] == "Unplanned"
    assert answers["review-outcomes-achieved"]["valueCoding"]["display"] == "Outcomes not met"


def test_request_is_a_service_request(q1: list[Accepted], by_type: Pick) -> None:
    sr = by_type(row(q1, 1).resources, "ServiceRequest")
    assert sr["status"] == "completed" and sr["intent"] == "order"
    assert sr["occurrencePeriod"] == {"start": "2024-04-02", "end": "2024-04-05"}
    assert _ext(sr, "asc-request-route-of-access")["valueCoding"]["display"] == "Discharge from Hospital"
    assert _ext(sr, "asc-event-outcome")["valueCoding"]["display"] == "Progress to Assessment"
    open_request = by_type(row(q1, 16).resources, "ServiceRequest")
    assert open_request["status"] == "active"


def test_carer_is_a_patient_and_a_related_person_of_the_cared_for(q1: list[Accepted], by_type: Pick) -> None:
    result = row(q1, 22)  # SC0101 carer: direct payment for respite, caring for SC0001
    carer = by_type(result.resources, "Patient")
    assert carer["identifier"][0] == {"system": PERSON_SYSTEM, "value": "SC0101"}
    rp = by_type(result.resources, "RelatedPerson")
    assert rp["patient"] == {"type": "Patient", "identifier": {"system": PERSON_SYSTEM, "value": "SC0001"}}
    assert rp["identifier"][0]["value"] == "SC0101|SC0001"
    assert rp["identifier"][1] == {"system": PERSON_SYSTEM, "value": "SC0101"}
    assert rp["relationship"][0]["text"] == "Unpaid carer"
    # The carer's own service is about the carer.
    eoc = by_type(result.resources, "EpisodeOfCare")
    assert eoc["patient"]["identifier"]["value"] == "SC0101"
    assert eoc["type"][1]["coding"][0]["display"] == "Carer Support: Direct to Carer"


def test_allocated_worker_care_team(q1: list[Accepted], by_type: Pick) -> None:
    team = by_type(row(q1, 8).resources, "CareTeam")  # SC0004, worker W023
    member = team["participant"][0]["member"]
    assert member["identifier"] == {
        "system": "https://gateway.example.org/source/la-e99999999/worker-id",
        "value": "W023",
    }
    assert member["display"] == "Alex Practitioner"
    assert team["subject"]["identifier"]["value"] == "SC0004"


def test_mapping_is_deterministic(map_file: Callable[[str], list[RowResult]], q1: list[Accepted]) -> None:
    again = map_file("cld_2024_q1.csv")
    assert again == q1


def _ext(resource: JSON, name: str) -> JSON:
    return next(e for e in resource["extension"] if e["url"] == f"{EXT_BASE}/{name}")
