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
from sqlalchemy import event, text

from gateway.fhir.errors import FhirError
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit
from gateway.identity.patient_index import PatientIndex
from gateway.intake.chunks import ChunkWrite, _token
from gateway.intake.new_person import claim_new_people
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


def test_chunk_claims_its_new_people_up_front_and_sees_what_committed_before_the_lock(stores: list[Store]) -> None:
    """A chunk locks every Patient identifier its preload found nowhere, in one statement, then looks
    them up again: a Patient another writer committed between the preload and the lock is found
    (updated, not duplicated, not refused), and the row's own new person needs no lock of its own."""
    first, other = stores
    mine = patient("council", "council-7")
    theirs = patient("trust", "trust-7")  # holds the same NHS number
    tokens = [_token("Patient", ident) for ident in mine["identifier"]]
    with first.writer() as uow:
        chunk = ChunkWrite(uow, PatientIndex(first), now=NOW)
        chunk.staging.preload(tokens)  # found nowhere …
        with other.writer() as other_uow:  # … then the other writer commits the person
            PersonResolver(PatientIndex(other), now=NOW).resolve(other_uow, theirs, theirs["identifier"])
        claim_new_people(chunk.staging, tokens)
        assert chunk.staging.claimed_identifiers == {(i["system"], i["value"]) for i in mine["identifier"]}
        held = uow.conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        ).scalar_one()
        assert held == 2
        rid = chunk.person(mine, mine["identifier"])
        chunk.apply()
    with first.reader() as uow:
        rows = uow.conn.execute(resource.select().where(resource.c.res_type == "Patient")).all()
    assert [r.res_id for r in rows] == [rid]
    systems = {i["system"] for i in orjson.loads(rows[0].content)["identifier"]}
    assert "https://example.org/council/patient-id" in systems and "https://example.org/trust/patient-id" in systems


def test_claimed_new_person_takes_no_further_lock(stores: list[Store]) -> None:
    """Once a chunk has claimed a person's identifiers, resolving that person makes the Patient with
    no lock or lookup round trip of its own (the point of claiming up front)."""
    store = stores[0]
    mine = patient("council", "council-8")
    with store.writer() as uow:
        chunk = ChunkWrite(uow, PatientIndex(store), now=NOW)
        chunk.preload([mine])
        assert len(chunk.staging.claimed_identifiers) == 2
        statements: list[str] = []
        event.listen(uow.conn, "before_cursor_execute", lambda *a: statements.append(a[2]))
        chunk.person(mine, mine["identifier"])
        assert not [s for s in statements if "advisory" in s or "sp_token" in s]
