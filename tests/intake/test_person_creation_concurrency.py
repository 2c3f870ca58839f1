"""Two gateway processes receiving the same new person at once on one PostgreSQL database make one
Patient, not two: the second waits for the first to commit and then finds its Patient."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from gateway.fhir.errors import FhirError
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit
from gateway.identity.patient_index import PatientIndex
from gateway.intake.writes import PersonResolver
from gateway.store.api import Store
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade
from gateway.store.schema import resource

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NHS = with_check_digit("999000555")


def patient(source: str, mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [
            {"system": f"https://example.org/{source}/patient-id", "value": mrn},
            {"system": NHS_NUMBER_SYSTEM, "value": NHS},
        ],
        "name": [{"family": "Concurrent", "given": ["Casey"]}],
        "birthDate": "1950-02-03",
    }


@pytest.fixture
def stores(pg_url: str) -> Iterator[list[Store]]:
    """Two stores on one database, each with its own engine: two gateway processes."""
    engines = [make_engine(pg_url) for _ in range(2)]
    upgrade(engines[0])
    yield [Store(e, fhir_base="http://testserver/fhir") for e in engines]
    for e in engines:
        e.dispose()


def test_two_writers_creating_one_new_person_make_one_patient(
    stores: list[Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both writers must have looked the person up (and found nobody) before either creates: the race
    # of two processes. A writer made to wait for the other (the fix) gives up waiting after a second.
    both_looked = threading.Barrier(2, timeout=1.0)
    by_demographics = PersonResolver._by_demographics

    def look_then_meet(self: PersonResolver, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_looked.wait()
        return by_demographics(self, *args, **kwargs)

    monkeypatch.setattr(PersonResolver, "_by_demographics", look_then_meet)
    outcomes: dict[str, Any] = {}

    def write(store: Store, source: str) -> None:
        record = patient(source, f"{source}-1")
        resolver = PersonResolver(PatientIndex(store), now=NOW)
        try:
            with store.writer() as uow:
                outcomes[source] = resolver.resolve(uow, record, record["identifier"]).how
        except FhirError as exc:
            outcomes[source] = exc

    threads = [
        threading.Thread(target=write, args=(s, src)) for s, src in zip(stores, ("trust", "council"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    # A writer that lost the race was refused as a concurrent write (409: its sender retries) …
    for source, outcome in outcomes.items():
        if isinstance(outcome, FhirError):
            assert outcome.status == 409
            record = patient(source, f"{source}-1")
            with stores[0].writer() as uow:  # … and its retry finds the Patient the other made
                outcomes[source] = (
                    PersonResolver(PatientIndex(stores[0]), now=NOW).resolve(uow, record, record["identifier"]).how
                )
    assert sorted(outcomes.values()) == ["identifier", "new"]
    with stores[0].reader() as uow:
        rows = uow.conn.execute(resource.select().where(resource.c.res_type == "Patient")).all()
    assert len(rows) == 1
    systems = {i["system"] for i in orjson.loads(rows[0].content)["identifier"]}
    assert systems == {
        "https://example.org/trust/patient-id",
        "https://example.org/council/patient-id",
        NHS_NUMBER_SYSTEM,
    }
