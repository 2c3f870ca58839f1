"""Deciding once per class (`Facts`) gives exactly the per-resource answers.

`PolicyDecisionPoint.filter` decides each class of resources once; this checks it against
`decide` on every resource, for a mix of sources, labels, types, opted-out Patients and both
class-level Consents and Consents that read resource content.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.codes import EXT_NATIONAL_OPT_OUT
from gateway.consent import PolicyDecisionPoint
from gateway.consent.consents import is_class_level


def _resources(b: SimpleNamespace) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n, (source, labels, pid) in enumerate(
        itertools.product((b.TRUST, b.COUNCIL, None), ((), (b.PSY,), (b.V,), (b.N,)), ("p1", "p2"))
    ):
        extra = {"source": source.split("/")[1]} if source else {}
        found.append(b.encounter(pid, rid=f"e{n}", labels=labels, **extra))
    found.append({"resourceType": "Patient", "id": "p1"})
    found.append(
        {"resourceType": "Patient", "id": "p2", "extension": [{"url": EXT_NATIONAL_OPT_OUT, "valueBoolean": True}]}
    )
    found.append({"resourceType": "Organization", "id": "o1"})
    return found


CONSENTS = {
    "none": [],
    "deny-council": [{"type": "deny", "actor": [{"reference": {"reference": "Organization/la-e09"}}]}],
    "permit-psy": [{"type": "permit", "securityLabel": [{"code": "PSY"}]}],
    "deny-by-code": [{"type": "permit", "provision": [{"type": "deny", "code": [{"coding": [{"code": "EMER"}]}]}]}],
    "deny-by-data-period": [{"type": "deny", "dataPeriod": {"start": "2025-06-01", "end": "2025-06-02"}}],
}


@pytest.mark.parametrize("consent_name", sorted(CONSENTS))
@pytest.mark.parametrize("purpose", ["TREAT", "HRESCH"])
def test_filter_equals_decide_per_resource(
    b: SimpleNamespace, pdp: PolicyDecisionPoint, consent_name: str, purpose: str
) -> None:
    consents = [b.consent(p, pid=pid, cid=f"c-{pid}") for p in CONSENTS[consent_name] for pid in ("p1", "p2")]
    resources = _resources(b)
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    agreements = [b.agreement_for(b.CASE_TEAM, purposes=["TREAT", "HRESCH"], security_labels=[b.R])]
    for caller in (b.caller(), b.caller(b.COUNCIL), b.caller(purpose_of_use=purpose)):
        args: dict[str, Any] = {
            "patient_consents": consents,
            "agreements": agreements,
            "now": b.NOW,
        }
        grouped = pdp.filter(caller, resources, patient_resources=patients, **args).decisions
        one_by_one = [pdp.decide(caller, r, patient_resource=patients, **args) for r in resources]
        assert grouped == one_by_one


def test_class_level_consents(b: SimpleNamespace) -> None:
    assert is_class_level(b.consent({"type": "deny", "securityLabel": [{"code": "PSY"}]}))
    assert is_class_level(b.consent(None))
    assert not is_class_level(b.consent({"type": "permit", "provision": [{"type": "deny", "code": [{}]}]}))
    assert not is_class_level(b.consent({"type": "deny", "data": [{"meaning": "instance"}]}))
