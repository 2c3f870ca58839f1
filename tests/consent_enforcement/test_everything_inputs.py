"""`$everything` under consent reads the whole linked record's policy inputs once.

The focus Patient is decided first (a hidden one answers 404), then the record of every linked
Patient. Both decisions need the policy inputs (Patients, Consents, agreements, client registry);
the linked ids are known before the focus is decided, so one statement reads them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import event

from gateway.audit.writer import ListAuditSink
from gateway.fhir.operations import registry_imports  # noqa: F401  (registers the operations)
from gateway.fhir.services import Services

from .test_leaks import objection, seed

Caller = Callable[[str], httpx.AsyncClient]


async def _linked_person(admin: httpx.AsyncClient) -> tuple[str, str]:
    a = (await admin.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "Linkwater"}]})).json()["id"]
    b_body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Linkwater"}],
        "link": [{"other": {"reference": f"Patient/{a}"}, "type": "seealso"}],
    }
    b = (await admin.post("/Patient", json=b_body)).json()["id"]
    for pid, code in ((a, "EMER"), (b, "AMB")):
        enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": code}}
        assert (
            await admin.post("/Encounter", json={**enc, "subject": {"reference": f"Patient/{pid}"}})
        ).status_code == 201
    return a, b


def _inputs_statements(services: Services) -> list[str]:
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "gateway_meta" in statement and "UNION ALL" in statement:  # the policy-inputs statement
            seen.append(statement)

    event.listen(services.store.engine, "before_cursor_execute", listen)
    return seen


async def test_everything_reads_the_linked_records_inputs_once(as_caller: Caller, services: Services) -> None:
    await seed(as_caller("admin"))
    a, b = await _linked_person(as_caller("admin"))
    seen = _inputs_statements(services)
    page = (await as_caller("trust").get(f"/Patient/{a}/$everything")).json()
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in page["entry"]}
    assert {("Patient", a), ("Patient", b)} <= got
    assert sum(1 for t, _ in got if t == "Encounter") == 2  # both records' Encounters
    assert len(seen) == 1


async def test_a_hidden_linked_record_stays_hidden_and_a_hidden_focus_is_missing(
    as_caller: Caller, services: Services
) -> None:
    await seed(as_caller("admin"))
    admin = as_caller("admin")
    a, b = await _linked_person(admin)
    assert (await admin.post("/Consent", json=objection(b, "Organization/trust-a"))).status_code == 201
    trust = as_caller("trust")
    page = (await trust.get(f"/Patient/{a}/$everything")).json()
    got = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in page["entry"]}
    assert ("Patient", a) in got and ("Patient", b) not in got
    assert sum(1 for t, _ in got if t == "Encounter") == 1
    assert (await trust.get(f"/Patient/{b}/$everything")).status_code == 404


async def test_everything_is_one_audited_disclosure(as_caller: Caller, audit_sink: ListAuditSink) -> None:
    """One request, one AuditEvent: the focus is decided first, but audited with the record it opens
    (an auditor counting accesses must not see two for one `$everything`)."""
    await seed(as_caller("admin"))
    a, b = await _linked_person(as_caller("admin"))
    audit_sink.events.clear()
    trust = as_caller("trust")
    assert (await trust.get(f"/Patient/{a}/$everything")).status_code == 200
    events = [e for e in audit_sink.events if e["resourceType"] == "AuditEvent"]
    assert len(events) == 1
    named = {e.get("what", {}).get("reference") for e in events[0]["entity"]}
    assert {f"Patient/{a}", f"Patient/{b}"} <= named
    audit_sink.events.clear()  # the focus alone asked for (no Patient in `_type`) is still audited
    page = (await trust.get(f"/Patient/{a}/$everything", params={"_type": "Encounter"})).json()
    assert {e["resource"]["resourceType"] for e in page["entry"]} == {"Encounter"}
    events = [e for e in audit_sink.events if e["resourceType"] == "AuditEvent"]
    assert len(events) == 1 and f"Patient/{a}" in {e.get("what", {}).get("reference") for e in events[0]["entity"]}


async def test_a_hidden_focus_is_audited_as_refused(as_caller: Caller, audit_sink: ListAuditSink) -> None:
    await seed(as_caller("admin"))
    admin = as_caller("admin")
    _, b = await _linked_person(admin)
    assert (await admin.post("/Consent", json=objection(b, "Organization/trust-a"))).status_code == 201
    audit_sink.events.clear()
    assert (await as_caller("trust").get(f"/Patient/{b}/$everything")).status_code == 404
    events = [e for e in audit_sink.events if e["resourceType"] == "AuditEvent"]
    assert len(events) == 1
    assert not any(e.get("what", {}).get("reference") == f"Patient/{b}" for e in events[0].get("entity", []))


async def test_episode_everything_is_one_audited_disclosure(as_caller: Caller, audit_sink: ListAuditSink) -> None:
    await seed(as_caller("admin"))
    admin = as_caller("admin")
    a, _ = await _linked_person(admin)
    episode = {"resourceType": "EpisodeOfCare", "status": "active", "patient": {"reference": f"Patient/{a}"}}
    eid = (await admin.post("/EpisodeOfCare", json=episode)).json()["id"]
    audit_sink.events.clear()
    assert (await as_caller("trust").get(f"/EpisodeOfCare/{eid}/$everything")).status_code == 200
    assert len([e for e in audit_sink.events if e["resourceType"] == "AuditEvent"]) == 1
