"""A new person's match record is built once: the record the resolver matched with is filed for the
Patient it creates, when the stored Patient reads the same in every field a record is built from.
Whatever a store hook changed, the filed record is the stored Patient's own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.fhir.services import Services
from gateway.identity.patient_index import PatientIndex
from gateway.identity.person import PersonRecord
from gateway.intake.writes import PersonResolver, stored_person_record

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def sent(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:test:mrn", "value": "M1"},
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"},
        ],
        "name": [{"family": "Parker", "given": ["Alice", "May"]}],
        "birthDate": "1947-03-12",
        "gender": "female",
        "address": [{"postalCode": "NT1 4AB", "city": "Northtown"}],
        **extra,
    }


def filed(services: Services, patient: dict[str, Any]) -> tuple[PersonRecord | None, dict[str, Any]]:
    index = PatientIndex(services.store)
    resolver = PersonResolver(index, now=NOW)
    with services.store.writer() as uow:
        link = resolver.resolve(uow, patient, patient["identifier"][:1])
    assert link.how == "new"
    stored = services.store.read("Patient", link.patient.id).json()
    index.sync()
    return index.index.get(link.patient.id), stored


def test_the_record_filed_is_the_stored_patients(services: Services) -> None:
    record, stored = filed(services, sent())
    assert record is not None
    assert record == PersonRecord.from_patient(stored)
    assert record.resource_id == stored["id"]


def test_a_field_changed_by_a_store_hook_is_read_from_the_stored_patient(services: Services) -> None:
    def rename(res: dict[str, Any]) -> dict[str, Any]:
        return {**res, "name": [{"family": "Parker-Jones", "given": ["Alice"]}], "birthDate": "1947-03-13"}

    services.store.before_write("Patient", rename)
    record, stored = filed(services, sent())
    assert record is not None
    assert (record.family, record.given, record.birth_day) == ("parker jones", ("alice",), 13)
    assert record == PersonRecord.from_patient(stored)


@pytest.mark.parametrize(
    ("patient", "hook_field"),
    [(sent(), None), (sent(), "address"), (sent(active=False), None), (sent(), "active")],
)
def test_stored_person_record_is_person_record_of_the_stored_patient(
    patient: dict[str, Any], hook_field: str | None
) -> None:
    stored = {**patient, "id": "p1", "meta": {"versionId": "1"}}
    if hook_field == "address":
        stored["address"] = [{"postalCode": "ZZ9 9ZZ"}]
    if hook_field == "active":
        stored["active"] = False
    expected = PersonRecord.from_patient(stored) if stored.get("active", True) is not False else None
    assert stored_person_record(stored, (patient, PersonRecord.from_patient(patient))) == expected
    assert stored_person_record(stored, None) == expected
