"""AuditEvents get time-ordered ids, like every other server-assigned id.

One AuditEvent is stored per read, search, write and refusal, so they are the most numerous
resources by far. With random (version 4) ids each one landed on a random page of every B-tree
keyed on (type, id) — the current and history tables and each search-index table's owner index —
and storing one cost ~1.7x the CPU once some 10,000 were stored (`gateway.store.ids` explains why).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from gateway.audit.writer import ListAuditSink

from .test_leaks import seed

Caller = Callable[[str], httpx.AsyncClient]


async def test_audit_event_ids_are_version_7_and_sort_in_recording_order(
    as_caller: Caller, audit_sink: ListAuditSink
) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")
    assert (await trust.get(f"/Patient/{ids['open']}")).status_code == 200  # read
    assert (await trust.get(f"/Patient/{ids['hidden']}")).status_code == 404  # refused
    assert (await trust.get("/Encounter")).status_code == 200  # search
    created = await trust.post(
        "/Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "pulse"},
            "subject": {"reference": f"Patient/{ids['open']}"},
        },
    )
    assert created.status_code == 201  # write
    events = [e for e in audit_sink.events if e["resourceType"] == "AuditEvent"]
    assert len(events) >= 4
    event_ids = [str(e["id"]) for e in events]
    assert all(uuid.UUID(i).version == 7 for i in event_ids)
    assert event_ids == sorted(event_ids)  # recorded one after another, so in id order
