"""Presentation detection (issue 5, item 2): which Encounter writes are presentations, retractions, or neither."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.alerts.rules import Presentation, Retraction, detect_presentation
from gateway.codes import NHS_111, OUT_OF_HOURS, SERVICE_TYPE_SYSTEM, V3_ACT_CODE


def encounter(
    eid: str = "enc1",
    *,
    cls: str = "EMER",
    status: str = "in-progress",
    service_type: str | None = None,
    start: str = "2026-03-01T02:10:00+00:00",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": V3_ACT_CODE, "code": cls},
        "subject": {"reference": "Patient/hosp-123"},
        "serviceProvider": {"reference": "Organization/acute-trust", "display": "Acute Trust"},
        "period": {"start": start},
    }
    if service_type:
        resource["serviceType"] = {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": service_type}]}
    get_fhir_model_class("Encounter").model_validate(resource)
    return resource


def presented(result: Presentation | Retraction | None) -> Presentation:
    assert isinstance(result, Presentation)
    return result


def test_ae_registration_is_a_presentation() -> None:
    p = presented(detect_presentation(encounter(), source_event="A04"))
    assert (p.kind, p.rule, p.is_admission) == ("ae-attendance", "adt:A04", False)
    assert p.encounter_ref == "Encounter/enc1"
    assert p.subject_ref == "Patient/hosp-123"
    assert (p.organisation_ref, p.organisation_display) == ("Organization/acute-trust", "Acute Trust")
    assert p.time == "2026-03-01T02:10:00+00:00"


@pytest.mark.parametrize(
    ("cls", "kind", "admission"),
    [
        ("EMER", "ae-attendance", False),
        ("IMP", "admission", True),
        ("ACUTE", "admission", True),
        ("OBSENC", "observation", False),
        ("PRENC", "pre-admission", False),
    ],
)
def test_fhir_encounter_class_rules(cls: str, kind: str, admission: bool) -> None:
    p = presented(detect_presentation(encounter(cls=cls)))
    assert (p.kind, p.rule, p.is_admission) == (kind, f"class:{cls}", admission)


def test_admission_a01() -> None:
    p = presented(detect_presentation(encounter(cls="IMP"), source_event="A01"))
    assert (p.kind, p.is_admission) == ("admission", True)


def test_pre_admission_a05() -> None:
    p = presented(detect_presentation(encounter(cls="PRENC", status="planned"), source_event="A05"))
    assert p.kind == "pre-admission"


@pytest.mark.parametrize(("code", "kind"), [(OUT_OF_HOURS, "out-of-hours"), (NHS_111, "111")])
def test_out_of_hours_and_111_service_types(code: str, kind: str) -> None:
    p = presented(detect_presentation(encounter(cls="AMB", service_type=code)))
    assert (p.kind, p.rule) == (kind, f"service-type:{kind}")


def test_outpatient_and_community_contacts_are_not_presentations() -> None:
    assert detect_presentation(encounter(cls="AMB")) is None
    assert detect_presentation(encounter(cls="HH")) is None
    assert detect_presentation(encounter(cls="AMB"), source_event="A04") is None


def test_class_change_a06_outpatient_to_inpatient() -> None:
    before = encounter(cls="AMB")
    p = presented(detect_presentation(encounter(cls="IMP"), before, source_event="A06"))
    assert (p.kind, p.rule, p.is_admission) == ("class-change", "class-change:AMB->IMP", True)


def test_class_change_seen_from_versions_without_trigger() -> None:
    p = presented(detect_presentation(encounter(cls="IMP"), encounter(cls="EMER")))
    assert (p.kind, p.is_admission) == ("class-change", True)


def test_a07_to_outpatient_is_not_a_presentation() -> None:
    assert detect_presentation(encounter(cls="AMB"), encounter(cls="IMP"), source_event="A07") is None


def test_same_encounter_updated_twice_keeps_its_dedupe_key() -> None:
    first = presented(detect_presentation(encounter(), source_event="A04"))
    update = encounter(start="2026-03-01T02:15:00+00:00")
    update["location"] = [{"location": {"display": "Majors"}}]
    second = presented(detect_presentation(update, encounter(), source_event="A08"))
    third = presented(detect_presentation(update, update, source_event="A08"))
    assert first.dedupe_key == second.dedupe_key == third.dedupe_key
    assert len(first.dedupe_key) == 32


def test_new_encounter_after_discharge_gets_a_new_key() -> None:
    first = presented(detect_presentation(encounter("enc1")))
    assert detect_presentation(encounter("enc1", status="finished"), encounter("enc1"), source_event="A03") is None
    again = presented(detect_presentation(encounter("enc2", start="2026-03-09T10:00:00+00:00")))
    assert again.dedupe_key != first.dedupe_key


def test_key_from_identifier_when_no_id() -> None:
    enc = encounter()
    del enc["id"]
    enc["identifier"] = [{"system": "https://acute.example/visit", "value": "V1"}]
    p = presented(detect_presentation(enc))
    assert p.encounter_ref == "Encounter?identifier=https://acute.example/visit|V1"


def test_a11_cancel_is_a_retraction_with_the_same_key() -> None:
    original = presented(detect_presentation(encounter(), source_event="A04"))
    result = detect_presentation(encounter(), source_event="A11")
    assert result == Retraction("Encounter/enc1", original.dedupe_key, "adt:A11")


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_cancelled_or_erroneous_encounter_is_a_retraction(status: str) -> None:
    result = detect_presentation(encounter(status=status))
    assert isinstance(result, Retraction)
    assert result.reason == f"status:{status}"


def test_a13_cancel_discharge_is_not_a_retraction() -> None:
    p = presented(detect_presentation(encounter(cls="IMP"), source_event="A13"))
    assert p.kind == "admission"


def test_finished_encounter_is_not_a_new_presentation() -> None:
    assert detect_presentation(encounter(status="finished")) is None


def test_only_presentations_during_the_episode_alert() -> None:
    from gateway.alerts.rules import during_episode

    assert during_episode("2026-11-20T09:30:00+00:00", "2026-11-01")
    assert during_episode("2026-11-01T00:10:00+00:00", "2026-11-01")
    assert not during_episode("2026-08-15T10:00:00+01:00", "2026-09-01")  # history loaded after enrolment
    assert during_episode(None, "2026-09-01") and during_episode("2026-08-15", None)
