"""FHIR R4 `Consent` (scope patient-privacy) evaluated as written, for one request.

What the spec says and this module does:
- Only `status = active` Consents count; `scope` must be patient-privacy
  (http://terminology.hl7.org/CodeSystem/consentscope). The R4 invariant ppc-2 ("a privacy
  consent needs a patient") never fires as published, so it is checked here: a privacy Consent
  without `patient` is ignored.
- Inside one provision, elements are AND-ed, repeated values OR-ed, and an absent element sets no
  limit: period (covers now), actor, action, purpose, class, code, securityLabel, dataPeriod, data.
- A nested provision applies only where its parent applied, and its `type` defaults to the
  inverse of the parent's. The deepest matching provision decides; among matching siblings a
  deny wins. Across Consents, deny overrides permit.

Choices the spec leaves open (documented here because they change who sees what):
- R4 has no `Consent.period`: the root provision's period is the Consent's period. An R5-style
  `Consent.period`, if present, is honoured too.
- A root provision without `type` takes it from `policyRule` (v3-ActCode OPTIN/OPTINR -> permit,
  OPTOUT/OPTOUTE -> deny). A Consent with neither is uninterpretable and treated as a deny
  (fail closed: an active privacy Consent we cannot read must not open data up).
- `actor` matches the caller when `actor.reference` names the caller's Organization, or names
  the client by identifier (`CLIENT_IDENTIFIER_SYSTEM` | client_id). `actor.role` is not
  checked. Practitioner/CareTeam actors never match: the access context carries no person.
- `action`: a read is the consentaction codes in the policy's `read_actions` (access, use,
  disclose); a provision naming any of them covers reads.
- `purpose` matches the requested purpose or any purpose it is a kind of (BTG -> ETREAT -> TREAT).
- `class` matches the resource type (system resource-types or none) or a profile URL in
  `meta.profile`. `code` matches a Coding anywhere in the resource outside `meta`/`text`.
- `dataPeriod` matches when the resource's clinical date (table `DATA_DATE_ELEMENTS`) overlaps
  it; a resource with no clinical date does not match.
- `data.meaning`: instance = that resource (a versioned reference must match meta.versionId);
  dependents = it, or a resource that references it; authoredby = a resource whose author-like
  element (`AUTHOR_PATHS`) references it; related = it, or a resource it references (needs the
  referenced resource pre-fetched in `referenced`, else only the instance itself matches).
- Sensitive labels: a permit provision clears only the labels it names in `securityLabel`; a
  broad permit does not reveal labelled data (see `labels.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.codes import CANONICAL_BASE, V3_ACT_CODE, V3_ACT_REASON
from gateway.consent.fhirtime import (
    FhirTimeError,
    Interval,
    boundaries,
    covers,
    interval_of,
    overlaps,
    period_interval,
)
from gateway.consent.labels import Label, codings_to_labels, label_in
from gateway.consent.refs import all_references, normalise, references_at, split
from gateway.types import JSON

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PATIENT_PRIVACY = "patient-privacy"
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
RESOURCE_TYPES_SYSTEM = "http://hl7.org/fhir/resource-types"
CLIENT_IDENTIFIER_SYSTEM = f"{CANONICAL_BASE}/Id/client"

PERMIT_RULES = frozenset({"OPTIN", "OPTINR"})
DENY_RULES = frozenset({"OPTOUT", "OPTOUTE"})

AUTHOR_PATHS: tuple[tuple[str, ...], ...] = (
    ("author",),
    ("recorder",),
    ("asserter",),
    ("requester",),
    ("sender",),
    ("enterer",),
    ("informationSource",),
    ("agent", "who"),
)

# The element holding the clinical date of each type; the first one present is used.
DATA_DATE_ELEMENTS: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("onsetDateTime", "onsetPeriod", "recordedDate"),
    "Appointment": ("start",),
    "AuditEvent": ("recorded",),
    "Basic": ("created",),
    "CarePlan": ("period", "created"),
    "CareTeam": ("period",),
    "Communication": ("sent", "received"),
    "Composition": ("date",),
    "Condition": ("onsetDateTime", "onsetPeriod", "recordedDate"),
    "Consent": ("dateTime",),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod", "issued"),
    "DocumentReference": ("date",),
    "Encounter": ("period",),
    "EpisodeOfCare": ("period",),
    "Flag": ("period",),
    "Goal": ("startDate",),
    "Immunization": ("occurrenceDateTime",),
    "List": ("date",),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod", "dateAsserted"),
    "Observation": ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"),
    "Procedure": ("performedDateTime", "performedPeriod"),
    "Provenance": ("occurredDateTime", "occurredPeriod", "recorded"),
    "QuestionnaireResponse": ("authored",),
    "RiskAssessment": ("occurrenceDateTime", "occurrencePeriod"),
    "ServiceRequest": ("occurrenceDateTime", "occurrencePeriod", "authoredOn"),
    "Task": ("executionPeriod", "authoredOn"),
}


@dataclass(frozen=True)
class Request:
    """What is asked: by whom, why, and which resource. Built once per decision by the PDP."""

    client_id: str
    organization: str | None
    purposes: frozenset[str]
    actions: frozenset[str]
    resource: JSON
    resource_ref: str | None
    resource_type: str
    labels: frozenset[Label]
    now: datetime
    referenced: Mapping[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsentOutcome:
    """One Consent's answer. `effect` is None when the Consent does not speak to this request."""

    consent_ref: str
    effect: str | None
    note: str
    cleared_labels: frozenset[Label] = frozenset()
    named_purposes: frozenset[str] = frozenset()


def _codes(codings: Iterable[Any], systems: tuple[str | None, ...]) -> set[str]:
    return {c["code"] for c in codings if isinstance(c, dict) and c.get("code") and c.get("system") in systems}


def is_privacy_consent(consent: JSON) -> bool:
    scope = consent.get("scope") or {}
    return any(
        c.get("system") == CONSENT_SCOPE_SYSTEM and c.get("code") == PATIENT_PRIVACY for c in scope.get("coding") or ()
    )


def consent_patient(consent: JSON) -> str | None:
    """The Patient id a Consent is about, or None."""
    ref = normalise(str((consent.get("patient") or {}).get("reference", "")))
    return ref.split("/", 1)[1] if ref and ref.startswith("Patient/") else None


def not_applicable_reason(consent: JSON, now: datetime) -> str | None:
    """Why a Consent is not in force now (None when it is): the gate before any provision is read."""
    if consent.get("status") != "active":
        return "consent-not-active"
    if not is_privacy_consent(consent):
        return "consent-not-privacy"
    if consent_patient(consent) is None:
        return "consent-without-patient"
    try:
        if not covers(consent.get("period"), now):
            return "consent-out-of-period"
        if not covers((consent.get("provision") or {}).get("period"), now):
            return "consent-out-of-period"
    except (FhirTimeError, TypeError):
        return None  # malformed periods are judged below (uninterpretable -> deny)
    return None


def evaluate_consent(consent: JSON, request: Request) -> ConsentOutcome:
    """Evaluate one Consent for one request (see the module docstring for the rules)."""
    ref = f"Consent/{consent.get('id', '(unsaved)')}"
    reason = not_applicable_reason(consent, request.now)
    if reason is not None:
        return ConsentOutcome(ref, None, reason)
    root = consent.get("provision")
    root_type = (root or {}).get("type")
    if root_type not in ("permit", "deny"):
        rules = _codes((consent.get("policyRule") or {}).get("coding") or (), (V3_ACT_CODE, None))
        root_type = "permit" if rules & PERMIT_RULES else "deny" if rules & DENY_RULES else None
    if root_type is None:
        return ConsentOutcome(ref, "deny", "consent-uninterpretable")
    try:
        result = _evaluate(root or {}, root_type, request)
    except (FhirTimeError, TypeError, KeyError, AttributeError):
        return ConsentOutcome(ref, "deny", "consent-uninterpretable")
    if result is None:
        return ConsentOutcome(ref, None, "consent-no-matching-provision")
    effect, labels, purposes = result
    return ConsentOutcome(ref, effect, f"consent-{effect}", labels, purposes)


_Result = tuple[str, frozenset[Label], frozenset[str]]


def _evaluate(provision: JSON, ptype: str, request: Request) -> _Result | None:
    if not _matches(provision, request):
        return None
    own: _Result = (ptype, frozenset(), frozenset())
    if ptype == "permit":
        own = (
            "permit",
            codings_to_labels(provision.get("securityLabel") or ()),
            frozenset(_codes(provision.get("purpose") or (), (V3_ACT_REASON, None))),
        )
    inverse = "deny" if ptype == "permit" else "permit"
    children = [
        r
        for child in provision.get("provision") or ()
        if (r := _evaluate(child, child.get("type") or inverse, request)) is not None
    ]
    if not children:
        return own
    denies = [r for r in children if r[0] == "deny"]
    if denies:
        return ("deny", frozenset(), frozenset())
    labels = frozenset().union(*(r[1] for r in children))
    purposes = frozenset().union(*(r[2] for r in children))
    if ptype == "permit":  # permit inside permit: both provisions' labels are named on the path
        labels, purposes = labels | own[1], purposes | own[2]
    return ("permit", labels, purposes)


def _matches(p: JSON, r: Request) -> bool:
    if p.get("period") and not covers(p["period"], r.now):
        return False
    if p.get("actor") and not any(_actor_matches(a, r) for a in p["actor"]):
        return False
    if p.get("action"):
        codes = _codes((c for cc in p["action"] for c in cc.get("coding") or ()), (CONSENT_ACTION_SYSTEM, None))
        if not codes & r.actions:
            return False
    if p.get("purpose") and not _codes(p["purpose"], (V3_ACT_REASON, None)) & r.purposes:
        return False
    if p.get("class") and not any(_class_matches(c, r) for c in p["class"]):
        return False
    if p.get("code"):
        wanted = codings_to_labels(c for cc in p["code"] for c in cc.get("coding") or ())
        if not any(label_in(found, wanted) for found in _codings_in(r.resource)):
            return False
    if p.get("securityLabel"):
        wanted = codings_to_labels(p["securityLabel"])
        if not any(label_in(found, wanted) for found in r.labels):
            return False
    if p.get("dataPeriod"):
        when = clinical_interval(r.resource)
        if when is None or not overlaps(when, period_interval(p["dataPeriod"])):
            return False
    return not p.get("data") or any(_data_matches(d, r) for d in p["data"])


def _actor_matches(actor: JSON, r: Request) -> bool:
    ref = actor.get("reference") or {}
    target = normalise(str(ref.get("reference", "")))
    if target is not None and r.organization is not None and target == normalise(r.organization):
        return True
    ident = ref.get("identifier") or {}
    return ident.get("system") == CLIENT_IDENTIFIER_SYSTEM and ident.get("value") == r.client_id


def _class_matches(coding: JSON, r: Request) -> bool:
    code, system = coding.get("code"), coding.get("system")
    if system in (None, RESOURCE_TYPES_SYSTEM) and code == r.resource_type:
        return True
    profiles = (r.resource.get("meta") or {}).get("profile") or ()
    return bool(code) and code in profiles


def _codings_in(node: Any) -> Iterable[Label]:
    if isinstance(node, list):
        for item in node:
            yield from _codings_in(item)
    elif isinstance(node, dict):
        if isinstance(node.get("code"), str) and "system" in node:
            yield (str(node.get("system") or ""), node["code"])
        for key, value in node.items():
            if key not in ("meta", "text", "contained") and isinstance(value, dict | list):
                yield from _codings_in(value)


def clinical_interval(resource: JSON) -> Interval | None:
    """When the resource's data happened, per `DATA_DATE_ELEMENTS`; None if unknown."""
    for element in DATA_DATE_ELEMENTS.get(str(resource.get("resourceType")), ()):
        value = resource.get(element)
        if isinstance(value, str):
            return interval_of(value)
        if isinstance(value, dict) and (value.get("start") or value.get("end")):
            return period_interval(value)
    return None


def _data_matches(data: JSON, r: Request) -> bool:
    raw = str((data.get("reference") or {}).get("reference", ""))
    parts = split(raw)
    if parts is None:
        return False
    target = f"{parts[0]}/{parts[1]}"
    version = parts[2]
    is_instance = target == r.resource_ref and (
        version is None or version == (r.resource.get("meta") or {}).get("versionId")
    )
    meaning = data.get("meaning")
    if is_instance and meaning in ("instance", "related", "dependents"):
        return True
    if meaning == "dependents":
        return target in set(all_references(r.resource))
    if meaning == "related":
        referenced = r.referenced.get(target)
        return referenced is not None and r.resource_ref in set(all_references(referenced))
    if meaning == "authoredby":
        return any(target in set(references_at(r.resource, path)) for path in AUTHOR_PATHS)
    return False


# Provision elements that read a resource's content (not only its type, labels and profiles).
_CONTENT_ELEMENTS = ("code", "dataPeriod", "data")


def is_class_level(consent: JSON) -> bool:
    """True when no provision reads resource content (`code`, `dataPeriod`, `data`).

    Such a Consent answers alike for every resource of one type, label set and profile set, so
    the PDP may decide once per class of resources instead of once per resource.
    """

    def visit(p: Any) -> bool:
        if not isinstance(p, dict):
            return True
        if any(p.get(name) for name in _CONTENT_ELEMENTS):
            return False
        children = p.get("provision") or []
        return isinstance(children, list) and all(visit(child) for child in children)

    return visit(consent.get("provision") or {})


def data_references(consents: Iterable[JSON]) -> set[str]:
    """`Type/id` of every `data.reference` with meaning=related: what the caller should pre-fetch."""
    found: set[str] = set()

    def visit(p: JSON) -> None:
        for d in p.get("data") or ():
            if d.get("meaning") == "related":
                ref = normalise(str((d.get("reference") or {}).get("reference", "")))
                if ref:
                    found.add(ref)
        for child in p.get("provision") or ():
            visit(child)

    for consent in consents:
        visit(consent.get("provision") or {})
    return found


def period_boundaries(consent: JSON) -> list[datetime]:
    """Instants at which any period in this Consent starts or ends (for cache expiry)."""
    found: list[datetime] = []
    try:
        found.extend(boundaries(consent.get("period")))

        def visit(p: JSON) -> None:
            found.extend(boundaries(p.get("period")))
            for child in p.get("provision") or ():
                visit(child)

        visit(consent.get("provision") or {})
    except (FhirTimeError, TypeError):
        pass
    return found
