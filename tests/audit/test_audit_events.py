"""AuditEvent builders (IHE BALP style): every shape validates as R4 AuditEvent and records
who, purpose, what, the Patient, the outcome and the policy that decided."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from gateway.audit import (
    SERIOUS_FAILURE,
    SUCCESS,
    audit_read,
    audit_search,
    audit_write,
    build_audit_event,
    is_security_alert,
)
from gateway.auth.context import AccessContext
from gateway.consent import (
    AUDIT_SECURITY_ALERT,
    CLIENT_IDENTIFIER_SYSTEM,
    NOTIFY_CASE_MANAGER,
    Decision,
    FilterResult,
    patients_of,
)
from gateway.types import JSON

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
CTX = AccessContext(client_id="app-1", organization="Organization/case-mgmt", role="case-manager")
PERMIT = Decision(True, ("default-policy-permit",), ("Basic/isa-1",), patients=("p1",))
DENY = Decision(False, ("consent-deny",), ("Consent/c9",), patients=("p1",))
BTG = Decision(
    True,
    ("break-glass",),
    ("Basic/isa-btg",),
    frozenset({AUDIT_SECURITY_ALERT, NOTIFY_CASE_MANAGER}),
    ("p1",),
    break_glass=True,
    expires_at=NOW + timedelta(hours=1),
)


def valid(event: JSON) -> JSON:
    AuditEvent.model_validate(event)
    return event


def codes(event: JSON, key: str) -> set[tuple[str, str]]:
    value = event[key]
    items = value if isinstance(value, list) else [value]
    return {(c["system"], c["code"]) for c in items}


def entity_refs(event: JSON) -> set[str]:
    return {e["what"]["reference"] for e in event.get("entity", []) if "reference" in e.get("what", {})}


def test_permitted_read() -> None:
    event = valid(audit_read(event_id="a1", recorded=NOW, ctx=CTX, resource_ref="Encounter/e1", decision=PERMIT))
    assert event["type"]["code"] == "rest" and event["action"] == "R" and event["outcome"] == SUCCESS
    assert ("http://hl7.org/fhir/restful-interaction", "read") in codes(event, "subtype")
    client = event["agent"][0]
    assert client["who"]["identifier"] == {"system": CLIENT_IDENTIFIER_SYSTEM, "value": "app-1"}
    assert client["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert client["policy"] == ["Basic/isa-1"]
    assert event["agent"][1]["who"]["reference"] == "Organization/case-mgmt"
    patient = next(e for e in event["entity"] if e["what"].get("reference") == "Patient/p1")
    assert patient["role"]["code"] == "1" and patient["type"]["code"] == "1"
    assert entity_refs(event) == {"Encounter/e1", "Patient/p1", "Basic/isa-1"}


def test_denied_read_is_a_security_alert() -> None:
    event = valid(audit_read(event_id="a2", recorded=NOW, ctx=CTX, resource_ref="Encounter/e1", decision=DENY))
    assert (event["type"]["system"], event["type"]["code"]) == (
        "http://dicom.nema.org/resources/ontology/DCM",
        "110113",
    )
    assert ("https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType", "AuthZ-Consent") in codes(event, "subtype")
    assert event["outcome"] == SERIOUS_FAILURE and event["outcomeDesc"] == "consent-deny"
    assert "Consent/c9" in entity_refs(event)


def test_break_glass_read_records_override_and_reason() -> None:
    ctx = AccessContext(
        client_id="ed-app", organization="Organization/trust-rxx", role="clinician", purpose_of_use="BTG",
        break_glass_reason="collapsed, unknown history",
    )  # fmt: skip
    event = valid(audit_read(event_id="a3", recorded=NOW, ctx=ctx, resource_ref="Encounter/e1", decision=BTG))
    assert event["type"]["code"] == "110113"
    assert ("http://dicom.nema.org/resources/ontology/DCM", "110127") in codes(event, "subtype")
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    assert event["purposeOfEvent"][0]["text"] == "collapsed, unknown history"


def test_search_lists_query_and_only_returned_patients() -> None:
    hidden = Decision(False, ("no-agreement",), patients=("p2",))
    result = FilterResult(permitted=[{}], decisions=[PERMIT, hidden])
    event = valid(
        audit_search(
            event_id="s1",
            recorded=NOW,
            ctx=CTX,
            query="Encounter?subject=Patient/p1",
            result=result,
            request_id="req-7",
        )
    )
    assert event["action"] == "E" and event["type"]["code"] == "rest"
    query = next(e for e in event["entity"] if e.get("role", {}).get("code") == "24")
    assert base64.b64decode(query["query"]).decode() == "Encounter?subject=Patient/p1"
    assert "Patient/p1" in entity_refs(event) and "Patient/p2" not in entity_refs(event)
    assert any(e.get("what", {}).get("identifier", {}).get("value") == "req-7" for e in event["entity"])


def test_a_search_names_patients_and_policies_once_in_first_seen_order() -> None:
    """A page shares its decision objects between rows; the event reads as if each row was read."""
    a = Decision(True, ("agreement",), policy_ids=("Basic/isa-1",), patients=("p1",))
    b = Decision(True, ("consent-permit",), policy_ids=("Consent/c2", "Basic/isa-1"), patients=("p2", "p1"))
    c = Decision(True, ("agreement",), policy_ids=("Basic/isa-3",), patients=("p3",))
    hidden = Decision(False, ("no-agreement",), patients=("p4",))
    rows = [a, hidden, b, a, a, c, b, hidden]
    event = audit_search(
        event_id="s2",
        recorded=NOW,
        ctx=CTX,
        query="Observation",
        result=FilterResult(permitted=[], decisions=rows),
    )
    patients = [e["what"]["reference"] for e in event["entity"] if e.get("role", {}).get("code") == "1"]
    assert patients == ["Patient/p1", "Patient/p2", "Patient/p3"]
    assert event["agent"][0]["policy"] == ["Basic/isa-1", "Consent/c2", "Basic/isa-3"]


@pytest.mark.parametrize(("interaction", "action"), [("create", "C"), ("update", "U"), ("patch", "U"), ("delete", "D")])
def test_writes(interaction: str, action: str) -> None:
    event = valid(
        audit_write(
            event_id="w1",
            recorded=NOW,
            ctx=CTX,
            interaction=interaction,
            resource_ref="CarePlan/cp1",
            patient_ids=["p1"],
        )
    )
    assert event["action"] == action and event["type"]["code"] == "rest"
    assert ("http://hl7.org/fhir/restful-interaction", interaction) in codes(event, "subtype")


def test_audit_events_are_in_the_patients_compartment() -> None:
    event = audit_read(event_id="a1", recorded=NOW, ctx=CTX, resource_ref="Encounter/e1", decision=PERMIT)
    assert patients_of(event) == {"p1"}


def test_labels_are_not_recorded() -> None:
    event = audit_read(event_id="a1", recorded=NOW, ctx=CTX, resource_ref="Encounter/e1", decision=DENY)
    assert all("securityLabel" not in e for e in event["entity"])


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="interaction"):
        build_audit_event(event_id="x", recorded=NOW, interaction="peek", ctx=CTX)
    with pytest.raises(ValueError, match="timezone"):
        build_audit_event(event_id="x", recorded=NOW.replace(tzinfo=None), interaction="read", ctx=CTX)
    with pytest.raises(ValueError, match="write"):
        audit_write(event_id="x", recorded=NOW, ctx=CTX, interaction="read", resource_ref="Encounter/e1")


def test_filtered_search_entries_are_not_alerts_but_break_glass_is() -> None:
    assert not is_security_alert(DENY, direct=False)
    assert is_security_alert(DENY, direct=True)
    assert is_security_alert(BTG, direct=False)
    assert not is_security_alert(None, direct=True)
