"""R4 Consent evaluated as written: one table of provisions against one request each.

Each row: the Consent (or its provision), the request, and the expected effect of that Consent
alone (`permit`, `deny`, or None = this Consent does not speak to the request).
Spec: http://hl7.org/fhir/R4/consent.html (provision, nested provisions, data.meaning).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.codes import V3_ACT_CODE, V3_ACT_REASON
from gateway.consent import CLIENT_IDENTIFIER_SYSTEM, data_references, default_policy
from gateway.consent.consents import Request, evaluate_consent
from gateway.consent.labels import labels_of
from gateway.consent.refs import self_reference
from gateway.types import JSON

CASE_TEAM = {"reference": {"reference": "Organization/case-mgmt"}}
COUNCIL = {"reference": {"reference": "Organization/la-e09"}}


def cls(*codes: str) -> list[JSON]:
    return [{"system": "http://hl7.org/fhir/resource-types", "code": c} for c in codes]


def purpose(*codes: str) -> list[JSON]:
    return [{"system": V3_ACT_REASON, "code": c} for c in codes]


def action(*codes: str) -> list[JSON]:
    return [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": c}]} for c in codes]


def data(meaning: str, ref: str) -> list[JSON]:
    return [{"meaning": meaning, "reference": {"reference": ref}}]


def request(
    b: SimpleNamespace,
    resource: JSON,
    *,
    org: str | None = "Organization/case-mgmt",
    purpose_code: str = "TREAT",
    client_id: str = "app-1",
    referenced: Mapping[str, JSON] | None = None,
) -> Request:
    policy = default_policy()
    return Request(
        client_id=client_id,
        organization=org,
        purposes=policy.purposes_of(purpose_code),
        actions=policy.read_actions,
        resource=resource,
        resource_ref=self_reference(resource),
        resource_type=resource["resourceType"],
        labels=labels_of(resource),
        now=b.NOW,
        referenced=referenced or {},
    )


# (id, provision, consent overrides, request overrides, resource overrides, expected)
DENY_ALL: JSON = {"type": "deny"}
TABLE: list[tuple[str, JSON | None, dict[str, Any], dict[str, Any], dict[str, Any], str | None]] = [
    ("active-deny", DENY_ALL, {}, {}, {}, "deny"),
    ("inactive-ignored", DENY_ALL, {"status": "inactive"}, {}, {}, None),
    ("draft-ignored", DENY_ALL, {"status": "draft"}, {}, {}, None),
    ("treatment-scope-ignored", DENY_ALL, {"scope": "treatment"}, {}, {}, None),
    ("privacy-without-patient-ignored", DENY_ALL, {"patient": None}, {}, {}, None),
    ("root-period-past", {"type": "deny", "period": {"end": "2025-01-01"}}, {}, {}, {}, None),
    ("root-period-future", {"type": "deny", "period": {"start": "2026-01-01"}}, {}, {}, {}, None),
    ("root-period-covers", {"type": "deny", "period": {"start": "2025-01-01", "end": "2025-12-31"}}, {}, {}, {}, "deny"),
    ("r5-style-consent-period-past", DENY_ALL, {"period": {"end": "2024-12-31"}}, {}, {}, None),
    ("actor-org-matches", {"type": "deny", "actor": [CASE_TEAM]}, {}, {}, {}, "deny"),
    ("actor-org-mismatch", {"type": "deny", "actor": [COUNCIL]}, {}, {}, {}, None),
    ("actor-repeats-ored", {"type": "deny", "actor": [COUNCIL, CASE_TEAM]}, {}, {}, {}, "deny"),
    (
        "actor-client-identifier",
        {"type": "deny", "actor": [{"reference": {"identifier": {"system": CLIENT_IDENTIFIER_SYSTEM, "value": "app-1"}}}]},
        {}, {"org": None}, {}, "deny",
    ),
    ("actor-practitioner-never-matches", {"type": "deny", "actor": [{"reference": {"reference": "Practitioner/x"}}]}, {}, {}, {}, None),
    ("action-access-covers-read", {"type": "deny", "action": action("access")}, {}, {}, {}, "deny"),
    ("action-collect-not-read", {"type": "deny", "action": action("collect")}, {}, {}, {}, None),
    ("purpose-match", {"type": "deny", "purpose": purpose("TREAT")}, {}, {}, {}, "deny"),
    ("purpose-mismatch", {"type": "deny", "purpose": purpose("HRESCH")}, {}, {}, {}, None),
    ("purpose-btg-is-treatment", {"type": "deny", "purpose": purpose("TREAT")}, {}, {"purpose_code": "BTG"}, {}, "deny"),
    ("class-match", {"type": "deny", "class": cls("Encounter")}, {}, {}, {}, "deny"),
    ("class-mismatch", {"type": "deny", "class": cls("Observation")}, {}, {}, {}, None),
    ("class-ored", {"type": "deny", "class": cls("Observation", "Encounter")}, {}, {}, {}, "deny"),
    (
        "class-profile",
        {"type": "deny", "class": [{"system": "urn:ietf:rfc:3986", "code": "https://x.example/StructureDefinition/ae"}]},
        {}, {}, {"meta": {"profile": ["https://x.example/StructureDefinition/ae"]}}, "deny",
    ),
    ("and-actor-and-class", {"type": "deny", "actor": [CASE_TEAM], "class": cls("Observation")}, {}, {}, {}, None),
    ("code-match", {"type": "deny", "code": [{"coding": [{"system": V3_ACT_CODE, "code": "EMER"}]}]}, {}, {}, {}, "deny"),
    ("code-mismatch", {"type": "deny", "code": [{"coding": [{"system": V3_ACT_CODE, "code": "IMP"}]}]}, {}, {}, {}, None),
    ("label-match", {"type": "deny", "securityLabel": [{"system": V3_ACT_CODE, "code": "PSY"}]}, {}, {}, {"labels": "PSY"}, "deny"),
    ("label-mismatch", {"type": "deny", "securityLabel": [{"system": V3_ACT_CODE, "code": "PSY"}]}, {}, {}, {}, None),
    ("dataperiod-overlaps", {"type": "deny", "dataPeriod": {"start": "2025-06-01", "end": "2025-06-30"}}, {}, {}, {}, "deny"),
    ("dataperiod-disjoint", {"type": "deny", "dataPeriod": {"end": "2024-12-31"}}, {}, {}, {}, None),
    ("dataperiod-undated", {"type": "deny", "dataPeriod": {"end": "2030-01-01"}}, {}, {}, {"period": None}, None),
    ("data-instance", {"type": "deny", "data": data("instance", "Encounter/e1")}, {}, {}, {}, "deny"),
    ("data-instance-other", {"type": "deny", "data": data("instance", "Encounter/e2")}, {}, {}, {}, None),
    ("data-instance-version-mismatch", {"type": "deny", "data": data("instance", "Encounter/e1/_history/1")}, {}, {}, {"meta": {"versionId": "2"}}, None),
    ("data-instance-version-match", {"type": "deny", "data": data("instance", "Encounter/e1/_history/2")}, {}, {}, {"meta": {"versionId": "2"}}, "deny"),
    ("data-dependents", {"type": "deny", "data": data("dependents", "EpisodeOfCare/eoc1")}, {}, {}, {"episodeOfCare": [{"reference": "EpisodeOfCare/eoc1"}]}, "deny"),
    ("data-dependents-unrelated", {"type": "deny", "data": data("dependents", "EpisodeOfCare/eoc1")}, {}, {}, {}, None),
    ("data-authoredby-none", {"type": "deny", "data": data("authoredby", "Practitioner/dr1")}, {}, {}, {}, None),
    ("nested-inverts-parent", {"type": "permit", "provision": [{"class": cls("Encounter")}]}, {}, {}, {}, "deny"),
    ("nested-not-matching-keeps-parent", {"type": "permit", "provision": [{"class": cls("Observation")}]}, {}, {}, {}, "permit"),
    ("nested-permit-in-deny", {"type": "deny", "provision": [{"actor": [CASE_TEAM]}]}, {}, {}, {}, "permit"),
    ("nested-permit-in-deny-other-org", {"type": "deny", "provision": [{"actor": [CASE_TEAM]}]}, {}, {"org": "Organization/la-e09"}, {}, "deny"),
    (
        "three-levels",
        {"type": "deny", "provision": [{"actor": [CASE_TEAM], "provision": [{"class": cls("Encounter")}]}]},
        {}, {}, {}, "deny",
    ),
    (
        "siblings-deny-wins",
        {"type": "permit", "provision": [{"type": "permit", "class": cls("Encounter")}, {"class": cls("Encounter")}]},
        {}, {}, {}, "deny",
    ),
    ("nested-period-over", {"type": "permit", "provision": [{"period": {"end": "2025-01-01"}}]}, {}, {}, {}, "permit"),
    ("policy-rule-optout", None, {"policyRule": {"coding": [{"system": V3_ACT_CODE, "code": "OPTOUT"}]}}, {}, {}, "deny"),
    ("policy-rule-optin", None, {"policyRule": {"coding": [{"system": V3_ACT_CODE, "code": "OPTIN"}]}}, {}, {}, "permit"),
    ("uninterpretable-fails-closed", {"actor": [CASE_TEAM]}, {}, {}, {}, "deny"),
]  # fmt: skip


NOTES = {
    "inactive-ignored": "consent-not-active",
    "draft-ignored": "consent-not-active",
    "treatment-scope-ignored": "consent-not-privacy",
    "privacy-without-patient-ignored": "consent-without-patient",
    "root-period-past": "consent-out-of-period",
    "root-period-future": "consent-out-of-period",
    "r5-style-consent-period-past": "consent-out-of-period",
    "uninterpretable-fails-closed": "consent-uninterpretable",
}


@pytest.mark.parametrize(("name", "provision", "c_kw", "r_kw", "res_kw", "expected"), TABLE, ids=[t[0] for t in TABLE])
def test_consent_table(
    b: SimpleNamespace,
    name: str,
    provision: JSON | None,
    c_kw: dict[str, Any],
    r_kw: dict[str, Any],
    res_kw: dict[str, Any],
    expected: str | None,
) -> None:
    c_kw = dict(c_kw)
    patient = c_kw.pop("patient", "keep")
    cons = b.consent(provision, **c_kw)
    if patient is None:
        del cons["patient"]
    res_kw = dict(res_kw)
    labels = (b.PSY,) if res_kw.pop("labels", None) == "PSY" else ()
    resource = b.encounter(labels=labels)
    resource["class"] = {"system": V3_ACT_CODE, "code": "EMER"}
    for key, value in res_kw.items():
        if value is None:
            resource.pop(key, None)
        elif key == "meta":
            resource["meta"].update(value)
        else:
            resource[key] = value
    outcome = evaluate_consent(cons, request(b, resource, **r_kw))
    assert outcome.effect == expected, outcome.note
    assert outcome.note == NOTES.get(name, f"consent-{expected}" if expected else "consent-no-matching-provision")
    assert outcome.consent_ref == "Consent/c1"


def test_authoredby_matches_author_elements(b: SimpleNamespace) -> None:
    qr = {"resourceType": "QuestionnaireResponse", "id": "q1", "subject": {"reference": "Patient/p1"}}
    qr["author"] = {"reference": "Practitioner/dr1"}
    cons = b.consent({"type": "deny", "data": data("authoredby", "Practitioner/dr1")})
    assert evaluate_consent(cons, request(b, qr)).effect == "deny"
    qr["author"] = {"reference": "Practitioner/dr2"}
    assert evaluate_consent(cons, request(b, qr)).effect is None


def test_related_needs_the_referenced_resource(b: SimpleNamespace) -> None:
    plan = {"resourceType": "CarePlan", "id": "cp1", "activity": [{"reference": {"reference": "Encounter/e1"}}]}
    cons = b.consent({"type": "deny", "data": data("related", "CarePlan/cp1")})
    assert data_references([cons]) == {"CarePlan/cp1"}
    enc = b.encounter()
    assert evaluate_consent(cons, request(b, enc)).effect is None
    assert evaluate_consent(cons, request(b, enc, referenced={"CarePlan/cp1": plan})).effect == "deny"


def test_permit_clears_only_the_labels_it_names(b: SimpleNamespace) -> None:
    psy = b.encounter(labels=(b.PSY,))
    broad = evaluate_consent(b.consent({"type": "permit"}), request(b, psy))
    named = evaluate_consent(
        b.consent({"type": "permit", "securityLabel": [{"system": V3_ACT_CODE, "code": "PSY"}]}), request(b, psy)
    )
    assert broad.effect == named.effect == "permit"
    assert broad.cleared_labels == frozenset()
    assert named.cleared_labels == {b.PSY}
