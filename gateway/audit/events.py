"""Pure builders for AuditEvent (FHIR R4) in the IHE BALP style: who, for what, on what, how it ended.

One event per interaction: read / vread / history / search / create / update / patch / delete /
operation. Shape, following IHE Basic Audit Log Patterns (BALP):
- `type` audit-event-type#rest, `subtype` restful-interaction#<interaction>, `action` C/R/U/D/E;
  a Security Alert (DCM 110113, subtype BALP AuthZ-Consent) instead when the decision was a
  denial of a direct request, a break-glass (also DCM 110127 Emergency Override Started), or
  carries the `audit-security-alert` obligation.
- agents: the client (DCM 110150 Application, identified by client id, with role, purpose of
  use and `policy` = the Consent/agreement ids that decided), its organisation (v3-RoleClass
  PROV) and the gateway (DCM 110153 Source Role ID).
- entities: the resource (audit-entity-type 2 / object-role 4 Domain Resource), each Patient
  (type 1 Person / role 1 Patient, so `AuditEvent?patient=` tells a person who saw their record),
  the query (role 24, base64), the X-Request-Id (BALP XrequestId) and each deciding Consent or
  agreement (type resource-types#Consent / #Basic, as BALP AuthZconsent does).
- outcome 0 success, 4 minor failure (bad request, not found), 8 serious failure (refused by
  policy, as BALP records a denial), 12 major failure (server fault).

Security labels are deliberately not copied into entities: labels are as sensitive as the data.
Callers pass `event_id` and `recorded` so the builders stay pure.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime

from gateway.auth.context import AccessContext
from gateway.codes import V3_ACT_REASON
from gateway.consent.consents import CLIENT_IDENTIFIER_SYSTEM
from gateway.consent.decision import AUDIT_SECURITY_ALERT, Decision, FilterResult, distinct
from gateway.consent.refs import normalise
from gateway.types import JSON

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
BALP_AUTHZ_SUBTYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
BALP_ENTITY_TYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = "0", "4", "8", "12"
SECURITY_ALERT = "110113"
EXPORT = "110106"
EMERGENCY_OVERRIDE_STARTED = "110127"

# interaction -> (AuditEvent.action, restful-interaction code)
INTERACTIONS: dict[str, tuple[str, str]] = {
    "read": ("R", "read"),
    "vread": ("R", "vread"),
    "history": ("R", "history-instance"),
    "history-type": ("R", "history-type"),
    "history-system": ("R", "history-system"),
    "search": ("E", "search-type"),
    "search-type": ("E", "search-type"),
    "search-system": ("E", "search-system"),
    "create": ("C", "create"),
    "update": ("U", "update"),
    "patch": ("U", "patch"),
    "delete": ("D", "delete"),
    "operation": ("E", "operation"),
}


def _coding(system: str, code: str, display: str | None = None) -> JSON:
    coding: JSON = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def is_security_alert(decision: Decision | None, *, direct: bool) -> bool:
    """Denials of a direct request, break-glass and flagged decisions are security alerts."""
    if decision is None:
        return False
    return (decision.deny and direct) or decision.break_glass or AUDIT_SECURITY_ALERT in decision.obligations


def build_audit_event(
    *,
    event_id: str,
    recorded: datetime,
    interaction: str,
    ctx: AccessContext,
    outcome: str = SUCCESS,
    resource_ref: str | None = None,
    patient_ids: Iterable[str] = (),
    decision: Decision | None = None,
    direct: bool = True,
    query: str | None = None,
    request_id: str | None = None,
    observer: str = "care-gateway",
    network_address: str | None = None,
    outcome_desc: str | None = None,
) -> JSON:
    """An R4 AuditEvent for one interaction. `direct` is False for entries filtered out of a search.

    Raises ValueError for an unknown interaction or a naive `recorded`.
    """
    if interaction not in INTERACTIONS:
        raise ValueError(f"unknown interaction {interaction!r}; expected one of {sorted(INTERACTIONS)}")
    if recorded.tzinfo is None:
        raise ValueError("recorded must be timezone-aware")
    action, rest_code = INTERACTIONS[interaction]
    alert = is_security_alert(decision, direct=direct)
    subtype = [_coding(RESTFUL_INTERACTION, rest_code)]
    if alert:
        event_type = _coding(DCM, SECURITY_ALERT, "Security Alert")
        subtype.append(_coding(BALP_AUTHZ_SUBTYPE, "AuthZ-Consent", "Authorization Decision using Roles and Consent"))
        if decision is not None and decision.break_glass:
            subtype.append(_coding(DCM, EMERGENCY_OVERRIDE_STARTED, "Emergency Override Started"))
    else:
        event_type = _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")

    policy_ids = list(decision.policy_ids) if decision else []
    purpose: JSON = {"coding": [_coding(V3_ACT_REASON, ctx.purpose_of_use)]}
    if ctx.is_break_glass and ctx.break_glass_reason:
        purpose["text"] = ctx.break_glass_reason

    client: JSON = {
        "type": {"coding": [_coding(DCM, "110150", "Application")]},
        "who": {"identifier": {"system": CLIENT_IDENTIFIER_SYSTEM, "value": ctx.client_id}},
        "requestor": True,
        "purposeOfUse": [purpose],
    }
    if ctx.role:
        client["role"] = [{"text": ctx.role}]
    if policy_ids:
        client["policy"] = policy_ids
    if network_address:
        client["network"] = {"address": network_address, "type": "2"}
    agents = [client]
    if ctx.organization:
        agents.append(
            {
                "type": {"coding": [_coding(ROLE_CLASS, "PROV", "healthcare provider")]},
                "who": {"reference": normalise(ctx.organization) or ctx.organization},
                "requestor": False,
            }
        )
    agents.append(
        {
            "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
            "who": {"display": observer},
            "requestor": False,
        }
    )

    entities: list[JSON] = []
    if resource_ref:
        entities.append(
            {
                "what": {"reference": resource_ref},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            }
        )
    for pid in dict.fromkeys(patient_ids):
        entities.append(
            {
                "what": {"reference": f"Patient/{pid}"},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            }
        )
    if query is not None:
        entities.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "query": base64.b64encode(query.encode("utf-8")).decode("ascii"),
            }
        )
    if request_id:
        entities.append(
            {"what": {"identifier": {"value": request_id}}, "type": _coding(BALP_ENTITY_TYPE, "XrequestId")}
        )
    for ref in policy_ids:
        entities.append({"what": {"reference": ref}, "type": _coding(RESOURCE_TYPES, ref.split("/", 1)[0])})

    event: JSON = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": event_type,
        "subtype": subtype,
        "action": action,
        "recorded": recorded.isoformat(),
        "outcome": outcome,
        "purposeOfEvent": [purpose],
        "agent": agents,
        "source": {
            "observer": {"display": observer},
            "type": [_coding(SECURITY_SOURCE_TYPE, "4", "Application Server")],
        },
    }
    desc = outcome_desc or (", ".join(decision.reasons) if decision is not None and decision.deny else None)
    if desc:
        event["outcomeDesc"] = desc
    if entities:
        event["entity"] = entities
    return event


def audit_read(
    *,
    event_id: str,
    recorded: datetime,
    ctx: AccessContext,
    resource_ref: str,
    decision: Decision,
    interaction: str = "read",
    request_id: str | None = None,
    observer: str = "care-gateway",
    network_address: str | None = None,
) -> JSON:
    """A read/vread/history of one resource, permitted or refused by `decision`."""
    return build_audit_event(
        event_id=event_id,
        recorded=recorded,
        interaction=interaction,
        ctx=ctx,
        outcome=SUCCESS if decision.permit else SERIOUS_FAILURE,
        resource_ref=resource_ref,
        patient_ids=decision.patients,
        decision=decision,
        request_id=request_id,
        observer=observer,
        network_address=network_address,
    )


def audit_search(
    *,
    event_id: str,
    recorded: datetime,
    ctx: AccessContext,
    query: str,
    result: FilterResult,
    interaction: str = "search",
    request_id: str | None = None,
    observer: str = "care-gateway",
    network_address: str | None = None,
) -> JSON:
    """One search page: the query, and every Patient whose data was returned (hidden entries add nothing)."""
    # A page shares a few decision objects (one per class): each is read once, in first-seen order,
    # which keeps the order of first appearance of every Patient and policy.
    shown = [dec for dec in distinct(result.decisions) if dec.permit]
    patients = [p for dec in shown for p in dec.patients]
    policies = tuple(dict.fromkeys(p for dec in shown for p in dec.policy_ids))
    summary = Decision(
        permit=True,
        reasons=("search",),
        policy_ids=policies,
        obligations=result.obligations,
        break_glass=any(dec.break_glass for dec in shown),
    )
    return build_audit_event(
        event_id=event_id,
        recorded=recorded,
        interaction=interaction,
        ctx=ctx,
        query=query,
        patient_ids=patients,
        decision=summary,
        direct=False,
        request_id=request_id,
        observer=observer,
        network_address=network_address,
    )


def audit_write(
    *,
    event_id: str,
    recorded: datetime,
    ctx: AccessContext,
    interaction: str,
    resource_ref: str,
    patient_ids: Iterable[str] = (),
    outcome: str = SUCCESS,
    request_id: str | None = None,
    observer: str = "care-gateway",
    network_address: str | None = None,
) -> JSON:
    """A create/update/patch/delete (writes are authorised by scope, not by Consent)."""
    if INTERACTIONS.get(interaction, ("",))[0] not in ("C", "U", "D"):
        raise ValueError(f"{interaction!r} is not a write interaction")
    return build_audit_event(
        event_id=event_id,
        recorded=recorded,
        interaction=interaction,
        ctx=ctx,
        outcome=outcome,
        resource_ref=resource_ref,
        patient_ids=patient_ids,
        request_id=request_id,
        observer=observer,
        network_address=network_address,
    )


def audit_export(
    *,
    event_id: str,
    recorded: datetime,
    ctx: AccessContext,
    query: str,
    outcome: str = SUCCESS,
    outcome_desc: str | None = None,
    request_id: str | None = None,
    observer: str = "care-gateway",
) -> JSON:
    """A Bulk Data export as a whole (DCM 110106 Export): who asked, what, how it ended.

    The people whose data left are recorded by the export's own search events (one per batch,
    as `audit_search` records them), so this event names no Patient.
    """
    event = build_audit_event(
        event_id=event_id,
        recorded=recorded,
        interaction="operation",
        ctx=ctx,
        outcome=outcome,
        query=query,
        request_id=request_id,
        observer=observer,
        outcome_desc=outcome_desc,
    )
    event["type"] = _coding(DCM, EXPORT, "Export")
    return event
