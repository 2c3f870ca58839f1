"""Storing audit batches: every event lands once, a batch delivered twice adds no versions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from gateway.audit.events import build_audit_event
from gateway.audit.storage import store_audit_events
from gateway.auth.context import AccessContext
from gateway.fhir.services import Services
from gateway.store.schema import resource, resource_version
from gateway.types import JSON

CTX = AccessContext(
    client_id="case-app",
    organization="Organization/case",
    role="case-manager",
    scopes=frozenset({"system/*.rs"}),
    purpose_of_use="TREAT",
)


def _event(patient: str) -> JSON:
    return build_audit_event(
        event_id=str(uuid.uuid4()),
        recorded=datetime(2026, 1, 1, tzinfo=UTC),
        interaction="read",
        ctx=CTX,
        resource_ref=f"Patient/{patient}",
        patient_ids=[patient],
    )


def _counts(services: Services) -> tuple[int, int]:
    with services.store.engine.connect() as conn:
        current = conn.execute(
            select(func.count()).select_from(resource).where(resource.c.res_type == "AuditEvent")
        ).scalar_one()
        versions = conn.execute(
            select(func.count()).select_from(resource_version).where(resource_version.c.res_type == "AuditEvent")
        ).scalar_one()
    return int(current), int(versions)


def test_a_batch_is_stored_with_the_events_own_ids(services: Services) -> None:
    events = [_event(f"p{i}") for i in range(7)]
    store_audit_events(services.store, events)
    assert _counts(services) == (7, 7)
    with services.store.reader() as uow:
        for event in events:
            assert uow.read("AuditEvent", event["id"]).json()["entity"] == event["entity"]


def test_a_batch_delivered_again_adds_nothing(services: Services) -> None:
    events = [_event(f"p{i}") for i in range(3)]
    store_audit_events(services.store, events)
    store_audit_events(services.store, [*events, _event("p9")])  # redelivered, plus one new event
    assert _counts(services) == (4, 4)


def test_the_same_event_twice_in_one_batch_is_stored_once(services: Services) -> None:
    event = _event("p1")
    store_audit_events(services.store, [event, dict(event)])
    assert _counts(services) == (1, 1)


def test_a_new_batch_is_created_without_asking_which_ids_are_stored(services: Services) -> None:
    """Fresh ids: one INSERT per table and nothing read first; a redelivery is still caught (above)."""
    from sqlalchemy import event as sa_event

    seen: list[str] = []
    sa_event.listen(
        services.store.engine, "before_cursor_execute", lambda *a: seen.append(" ".join(a[2].split()).upper())
    )
    store_audit_events(services.store, [_event(f"p{i}") for i in range(5)])
    assert not [s for s in seen if s.startswith("SELECT")]
    assert _counts(services) == (5, 5)


def test_a_redelivered_batch_rolls_back_its_first_attempt_entirely(services: Services) -> None:
    """The first attempt fails on the stored id after writing others: none of its rows remain twice."""
    stored = _event("p1")
    store_audit_events(services.store, [stored])
    batch = [_event("p2"), stored, _event("p3")]
    store_audit_events(services.store, batch)
    assert _counts(services) == (3, 3)
    with services.store.engine.connect() as conn:
        from gateway.store.schema import sp_reference

        rows = conn.execute(
            select(sp_reference.c.res_id, func.count())
            .where(sp_reference.c.res_type == "AuditEvent", sp_reference.c.param == "patient")
            .group_by(sp_reference.c.res_id)
        ).all()
    assert sorted(n for _, n in rows) == [1, 1, 1]
