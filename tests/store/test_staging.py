"""StagingUnitOfWork: reads see what was staged, `apply` writes the net change once, `undo` takes
a record's staging back; on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from gateway.fhir.errors import FhirError
from gateway.fhir.services import Services
from gateway.store.api import SearchQuery, StoredResource
from gateway.store.staging import InFlight, StagingUnitOfWork

SYSTEM = "https://example.org/ids"


def plan(value: str, status: str = "active", rid: str | None = None) -> dict[str, object]:
    res: dict[str, object] = {
        "resourceType": "CarePlan",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": status,
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
    }
    if rid:
        res["id"] = rid
    return res


def ids(services: Services, value: str) -> list[str]:
    with services.store.reader() as uow:
        return uow.ids_by_token("CarePlan", "identifier", SYSTEM, value)


def test_staged_writes_are_seen_and_written_once(services: Services) -> None:
    existing = services.store.create(plan("A"))
    with services.store.writer() as uow:
        staging = StagingUnitOfWork(uow)
        staging.preload([("CarePlan", SYSTEM, "A"), ("CarePlan", SYSTEM, "B")])
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "A") == [existing.id]
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "B") == []
        # Same content: nothing staged.
        assert staging.update(plan("A", rid=existing.id)) == (staging.get("CarePlan", existing.id), False)
        assert staging.changed_since(0) == []
        # Two changes to one resource, and a new one found by its identifier before it is written.
        staging.update(plan("A", "on-hold", rid=existing.id))
        staging.update({**plan("A2", "completed", rid=existing.id)})
        created = staging.create(plan("B"))
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "B") == [created.id]
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "A") == []  # identifier replaced
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "A2") == [existing.id]
        assert staging.changed_since(0) == [("CarePlan", existing.id), ("CarePlan", created.id)]
        assert uow.written == []
        written = staging.apply()
    assert {k: (s.version_id, s.method) for k, s in written.items()} == {
        ("CarePlan", existing.id): (2, "PUT"),
        ("CarePlan", created.id): (1, "POST"),
    }
    stored = services.store.read("CarePlan", existing.id)
    assert stored.version_id == 2 and stored.json()["status"] == "completed"
    with services.store.reader() as uow:
        assert uow.history("CarePlan", existing.id)[1] == 2  # one new version, not two
    # The index follows: the old identifier no longer finds it, the new ones do.
    assert ids(services, "A") == []
    assert ids(services, "A2") == [existing.id]
    assert ids(services, "B") == [created.id]
    page = services.store.search(SearchQuery(resource_type="CarePlan", count=10))
    assert sorted(r.id for r in page.rows) == sorted([existing.id, created.id])


def test_undo_and_changing_back_write_nothing(services: Services) -> None:
    existing = services.store.create(plan("A"))
    with services.store.writer() as uow:
        staging = StagingUnitOfWork(uow)
        mark = staging.mark()
        staging.create(plan("C"))
        staging.update(plan("A", "revoked", rid=existing.id))
        staging.undo(mark)
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "C") == []
        assert staging.get("CarePlan", existing.id) == services.store.read("CarePlan", existing.id)
        # Changed, then changed back by a later record: the net change is none.
        staging.update(plan("A", "revoked", rid=existing.id))
        staging.update(plan("A", rid=existing.id))
        assert staging.apply() == {}
    assert services.store.read("CarePlan", existing.id).version_id == 1
    assert ids(services, "C") == []


def test_reads_that_would_miss_staged_writes_are_refused(services: Services) -> None:
    with services.store.writer() as uow:
        staging = StagingUnitOfWork(uow)
        with pytest.raises(NotImplementedError):
            staging.search(SearchQuery(resource_type="CarePlan", count=10))
        with pytest.raises(NotImplementedError):
            staging.history("CarePlan")
        with pytest.raises(NotImplementedError):
            staging.update(plan("A", rid="x"), if_match=1)


def in_flight(stored: StoredResource, *values: str) -> dict[tuple[str, str], InFlight]:
    """`stored` as the version a chunk still being committed wrote, holding these identifiers."""
    tokens = frozenset(("CarePlan", SYSTEM, v) for v in values)
    return {("CarePlan", stored.id): InFlight(stored, tokens)}


def test_an_in_flight_chunk_counts_as_stored_and_is_checked_before_writing(services: Services) -> None:
    stored = services.store.create(plan("A"))
    # The chunk in flight gave it version 2 under a new identifier (not committed: the database shows version 1).
    flying = replace(stored, version_id=2, content=orjson.dumps(plan("A2", rid=stored.id)))
    with pytest.raises(FhirError) as raised, services.store.writer() as uow:
        staging = StagingUnitOfWork(uow, in_flight(flying, "A2"))
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "A2") == [stored.id]
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "A") == []  # the database's is stale
        assert staging.get("CarePlan", stored.id) == flying
        staging.update(plan("A2", "completed", rid=stored.id))
        written = staging.finish()
        assert written[("CarePlan", stored.id)].stored.version_id == 3
        # The database still holds version 1, not the version 2 this was staged on: someone else's
        # change (here: the in-flight chunk never committed). Nothing is written.
        staging.write_out()
    assert raised.value.status == 409
    assert services.store.read("CarePlan", stored.id).version_id == 1


def test_an_in_flight_base_only_read_is_checked_too(services: Services) -> None:
    """A resource of the chunk in flight that this chunk only looked up (a row's Patient, say) is
    locked and checked as well: another writer's change in between is a conflict, not a dangling read."""
    stored = services.store.create(plan("A"))
    services.store.update({**plan("A", "on-hold"), "id": stored.id})  # another writer, after that chunk committed
    with pytest.raises(FhirError) as raised, services.store.writer() as uow:
        staging = StagingUnitOfWork(uow, in_flight(stored, "A"))
        assert staging.ids_by_token("CarePlan", "identifier", SYSTEM, "A") == [stored.id]
        staging.create(plan("B"))
        staging.apply()
    assert raised.value.status == 409
    assert ids(services, "B") == []


def test_a_chunk_staged_on_one_in_flight_writes_after_it_commits(services: Services) -> None:
    """The in-flight version has committed by the time the next chunk writes: its base checks out."""
    stored = services.store.create(plan("A"))
    with services.store.writer() as uow:
        staging = StagingUnitOfWork(uow, in_flight(stored, "A"))
        staging.preload([("CarePlan", SYSTEM, "A")])
        staging.update(plan("A", "completed", rid=stored.id))
        written = staging.apply()
    assert written[("CarePlan", stored.id)].version_id == 2
    current = services.store.read("CarePlan", stored.id)
    assert current.version_id == 2 and current.json()["status"] == "completed"
    with services.store.reader() as uow:
        assert uow.history("CarePlan", stored.id)[1] == 2
