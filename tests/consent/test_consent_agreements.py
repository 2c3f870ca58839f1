"""Information-sharing agreements as FHIR Basic resources: parsing, validation, examples, matching."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fhir.resources.R4B.basic import Basic

from gateway.codes import V3_ACT_CODE, V3_CONFIDENTIALITY
from gateway.consent import AgreementError, build_agreement, load_agreements, parse_agreement, source_organizations
from gateway.consent.agreements import AGREEMENTS_DIR, ISA_EXT, SOURCE_ORGANIZATION_TAG_SYSTEM


def test_shipped_examples_parse_and_are_valid_r4_basic(b: SimpleNamespace) -> None:
    agreements = load_agreements()
    assert {a.ref for a in agreements} >= {"Basic/isa-westshire-direct-care", "Basic/isa-emergency-break-glass"}
    for path in AGREEMENTS_DIR.glob("*.json"):
        Basic.model_validate(json.loads(path.read_text()))
    in_force = {a.ref for a in agreements if a.in_force(b.NOW)}
    assert "Basic/isa-draft-research" not in in_force
    assert "Basic/isa-westshire-direct-care" in in_force


def test_build_and_parse_round_trip() -> None:
    resource = build_agreement(
        id="isa-1",
        recipients=["Organization/a", "https://x.example/fhir/Organization/b"],
        sources=["Organization/c"],
        purposes=["TREAT", "COC"],
        resource_types=["Encounter", "CarePlan"],
        security_labels=[(V3_ACT_CODE, "SDV")],
        period={"start": "2025-01-01"},
        break_glass=True,
        title="t",
    )
    agreement = parse_agreement(resource)
    assert agreement.ref == "Basic/isa-1"
    assert agreement.recipients == {"Organization/a", "Organization/b"}
    assert agreement.sources == {"Organization/c"}
    assert agreement.purposes == {"TREAT", "COC"}
    assert agreement.resource_types == {"Encounter", "CarePlan"}
    assert agreement.security_labels == {(V3_ACT_CODE, "SDV")}
    assert agreement.break_glass and agreement.title == "t"


def test_every_problem_is_reported_at_once() -> None:
    resource = build_agreement(id="x", recipients=["Practitioner/p"], purposes=[], resource_types=["Encouter"])
    resource["extension"].append({"url": ISA_EXT + "recipent", "valueReference": {"reference": "Organization/a"}})
    resource["extension"][0]["valueCode"] = "live"
    with pytest.raises(AgreementError) as err:
        parse_agreement(resource)
    text = " | ".join(err.value.problems)
    for fragment in ("isa-status", "Organization", "isa-purpose", "Encouter", "recipent"):
        assert fragment in text


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda r: r.update(resourceType="Consent"), "Basic"),
        (lambda r: r["code"]["coding"].clear(), "Basic.code"),
        (lambda r: r["extension"].append({"url": ISA_EXT + "status", "valueCode": "active"}), "at most once"),
        (lambda r: r["extension"].append({"url": ISA_EXT + "break-glass", "valueString": "yes"}), "valueBoolean"),
        (
            lambda r: r["extension"].append(
                {"url": ISA_EXT + "period", "valuePeriod": {"start": "2025-02", "end": "2025-01"}}
            ),
            "ends before",
        ),
        (
            lambda r: r["extension"].append(
                {"url": ISA_EXT + "purpose", "valueCoding": {"system": "urn:x", "code": "T"}}
            ),
            "v3-ActReason",
        ),
    ],
)
def test_single_faults(change: object, fragment: str) -> None:
    resource = build_agreement(id="x", recipients=["Organization/a"], purposes=["TREAT"])
    change(resource)  # type: ignore[operator]
    with pytest.raises(AgreementError, match=fragment):
        parse_agreement(resource)


def test_very_restricted_label_cannot_be_shared_by_agreement() -> None:
    resource = build_agreement(
        id="x", recipients=["Organization/a"], purposes=["TREAT"], security_labels=[(V3_CONFIDENTIALITY, "V")]
    )
    with pytest.raises(AgreementError, match="V"):
        parse_agreement(resource)


def test_fingerprint_follows_content() -> None:
    one = build_agreement(id="x", recipients=["Organization/a"], purposes=["TREAT"])
    two = build_agreement(id="x", recipients=["Organization/a"], purposes=["TREAT", "COC"])
    assert parse_agreement(one).fingerprint == parse_agreement(json.loads(json.dumps(one))).fingerprint
    assert parse_agreement(one).fingerprint != parse_agreement(two).fingerprint


def test_source_organisation_tag() -> None:
    res = {"resourceType": "Encounter", "meta": {"tag": [{"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": "la-e09"}]}}
    assert source_organizations(res) == {"Organization/la-e09"}
    assert source_organizations({"resourceType": "Encounter"}) == frozenset()
