"""`PatientIndex`: a process's own commits reach the candidate index at once, and a record the
writer built before the commit is filed only for exactly the content that committed."""

from __future__ import annotations

import pytest

from gateway.app import build_services
from gateway.fhir.services import Services
from gateway.identity.patient_index import PatientIndex
from gateway.identity.person import PersonRecord
from gateway.settings import Settings


class RolledBack(Exception):
    pass


def patient(family: str, **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Ann"]}],
        "birthDate": "1950-03-04",
        "gender": "female",
        **extra,
    }


def test_commits_are_filed_without_a_sync(services: Services) -> None:
    index = PatientIndex(services.store)
    stored = services.store.create(patient("Smith"))
    record = index.index.get(stored.id)
    assert record is not None and record.family == "smith"
    services.store.update({**patient("Jones"), "id": stored.id})
    record = index.index.get(stored.id)
    assert record is not None and record.family == "jones"
    services.store.update({**patient("Jones", active=False), "id": stored.id})
    assert index.index.get(stored.id) is None


def test_a_prepared_record_is_filed_for_its_own_content(services: Services) -> None:
    index = PatientIndex(services.store)
    with services.store.writer() as uow:
        stored = uow.create(patient("Smith"))
        offered = PersonRecord.from_patient(stored.json())
        index.prepared(stored, offered)
    assert index.index.get(stored.id) is offered


def test_an_offer_for_other_content_is_not_taken(services: Services) -> None:
    index = PatientIndex(services.store)
    stored = services.store.create(patient("Smith"))
    with pytest.raises(RolledBack), services.store.writer() as uow:  # rolled back after the offer
        stale = uow.update({**patient("Stale"), "id": stored.id})[0]
        index.prepared(stale, PersonRecord.from_patient(patient("Stale")))
        raise RolledBack
    services.store.update({**patient("Fresh"), "id": stored.id})  # same version, other content
    record = index.index.get(stored.id)
    assert record is not None and record.family == "fresh"


def test_a_sync_files_what_another_process_wrote_and_moves_the_watermark(settings: Settings) -> None:
    here, there = build_services(settings), build_services(settings)  # two stores: two processes
    try:
        index = PatientIndex(here.store)
        first = there.store.create(patient("Smith"))
        assert index.index.get(first.id) is None  # not this process's commit
        assert index.sync() == 1
        record = index.index.get(first.id)
        assert record is not None and record.family == "smith"
        second = there.store.create(patient("Brown"))
        renamed = there.store.update({**patient("Jones"), "id": first.id})
        assert index.sync() == 2
        record = index.index.get(first.id)
        assert record is not None and record.family == "jones"
        assert index.index.get(second.id) is not None
        assert index._watermark == max(second.last_updated, renamed.last_updated).replace(tzinfo=None)
        assert index.sync() == 2  # the overlap is read again, and changes nothing
        assert len(index.index) == 2
    finally:
        here.store.engine.dispose()
        there.store.engine.dispose()
