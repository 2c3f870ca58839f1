"""StagingUnitOfWork: reads see what was staged, `apply` writes the net change once, `undo` takes
a record's staging back; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from gateway.fhir.services import Services
from gateway.store.api import SearchQuery
from gateway.store.staging import StagingUnitOfWork

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
