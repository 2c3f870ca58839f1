"""A version's content is stored once: in `resource` while it is current, moved into its history
row when a later version (an update, a staged bulk update, a delete) supersedes it. Every read of a
version — read, vread, history, `versions` — answers as if each version carried its own copy;
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select, update

from gateway.fhir.services import Services
from gateway.store.schema import resource_version
from gateway.store.staging import StagingUnitOfWork

SYSTEM = "https://example.org/ids"


def plan(status: str, rid: str | None = None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "CarePlan",
        "identifier": [{"system": SYSTEM, "value": "A"}],
        "status": status,
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
    }
    if rid:
        res["id"] = rid
    return res


def stored_copies(services: Services, rid: str) -> dict[int, bool]:
    """version → whether its history row holds a copy of the content."""
    v = resource_version.c
    with services.store.engine.connect() as conn:
        rows = conn.execute(select(v.version_id, v.content).where(v.res_type == "CarePlan", v.res_id == rid))
        return {int(r.version_id): r.content is not None for r in rows}


def statuses(services: Services, rid: str) -> dict[int, str | None]:
    """version → status, as vread, history and `versions` each answer it (they must agree)."""
    with services.store.reader() as uow:
        history, total = uow.history("CarePlan", rid)
        by_history = {s.version_id: (s.json()["status"] if not s.deleted else None) for s in history}
        by_versions = {
            s.version_id: (s.json()["status"] if not s.deleted else None)
            for s in uow.versions("CarePlan", [(rid, v) for v in range(1, total + 1)])
        }
        by_vread = {}
        for version in range(1, total + 1):
            found = uow.versions("CarePlan", [(rid, version)])[0]
            by_vread[version] = uow.vread("CarePlan", rid, version).json()["status"] if not found.deleted else None
    assert by_history == by_versions == by_vread
    return by_history


def test_current_content_is_stored_once_and_moves_to_history_when_superseded(services: Services) -> None:
    first = services.store.create(plan("draft"))
    assert stored_copies(services, first.id) == {1: False}
    assert statuses(services, first.id) == {1: "draft"}
    with services.store.reader() as uow:
        assert uow.vread("CarePlan", first.id, 1).content == first.content  # byte for byte

    second = services.store.update(plan("active", first.id))
    assert stored_copies(services, first.id) == {1: True, 2: False}
    assert statuses(services, first.id) == {1: "draft", 2: "active"}
    with services.store.reader() as uow:
        assert uow.vread("CarePlan", first.id, 1).content == first.content
        assert uow.vread("CarePlan", first.id, 2).content == second.content

    with services.store.writer() as uow:
        uow.delete("CarePlan", first.id)
    assert stored_copies(services, first.id) == {1: True, 2: True, 3: False}
    assert statuses(services, first.id) == {1: "draft", 2: "active", 3: None}


def test_create_and_update_in_one_transaction_keep_both_versions(services: Services) -> None:
    with services.store.writer() as uow:
        created = uow.create(plan("draft"))
        uow.update(plan("active", created.id))
    assert statuses(services, created.id) == {1: "draft", 2: "active"}


def test_a_staged_bulk_update_keeps_the_superseded_content(services: Services) -> None:
    first = services.store.create(plan("draft"))
    other = services.store.create({**plan("draft"), "identifier": [{"system": SYSTEM, "value": "B"}]})
    with services.store.writer() as uow:
        staging = StagingUnitOfWork(uow)
        staging.preload([("CarePlan", SYSTEM, "A"), ("CarePlan", SYSTEM, "B")])
        staging.update(plan("active", first.id))
        staging.apply()
    assert statuses(services, first.id) == {1: "draft", 2: "active"}
    assert stored_copies(services, first.id) == {1: True, 2: False}
    assert stored_copies(services, other.id) == {1: False}  # untouched: still stored once
    with services.store.reader() as uow:
        assert uow.vread("CarePlan", first.id, 1).content == first.content


def test_versions_written_with_both_copies_read_and_supersede_the_same(services: Services) -> None:
    """Rows written before content was stored once carry a copy in history too; nothing changes for them."""
    first = services.store.create(plan("draft"))
    v = resource_version.c
    with services.store.engine.begin() as conn:
        conn.execute(
            update(resource_version)
            .where(v.res_type == "CarePlan", v.res_id == first.id)
            .values(content=(first.content or b"").decode())
        )
    assert stored_copies(services, first.id) == {1: True}
    services.store.update(plan("active", first.id))
    assert statuses(services, first.id) == {1: "draft", 2: "active"}
    with services.store.reader() as uow:
        assert orjson.loads(uow.vread("CarePlan", first.id, 1).content or b"") == orjson.loads(first.content or b"")
