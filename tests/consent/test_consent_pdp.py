"""The policy decision point end to end: agreements, Consents, default policy, opt-out, labels,
break-glass and non-patient resources, for single resources and search pages."""

from __future__ import annotations

import copy
from datetime import timedelta
from types import SimpleNamespace

import pytest

from gateway.codes import EXT_NATIONAL_OPT_OUT, V3_ACT_CODE, V3_ACT_REASON
from gateway.consent import (
    AUDIT_SECURITY_ALERT,
    NOTIFY_CASE_MANAGER,
    Decision,
    PolicyDecisionPoint,
    default_policy,
    parse_policy,
)
from gateway.consent import decision as d
from gateway.types import JSON


def patient(pid: str = "p1", *, opted_out: bool | None = None) -> JSON:
    res: JSON = {"resourceType": "Patient", "id": pid}
    if opted_out is not None:
        res["extension"] = [{"url": EXT_NATIONAL_OPT_OUT, "valueBoolean": opted_out}]
    return res


def decide(pdp: PolicyDecisionPoint, b: SimpleNamespace, resource: JSON, **kw: object) -> Decision:
    ctx = kw.pop("ctx", None) or b.caller()
    kw.setdefault("agreements", [b.agreement_for(b.CASE_TEAM)])
    kw.setdefault("patient_resource", patient())
    return pdp.decide(ctx, resource, now=b.NOW, **kw)  # type: ignore[arg-type]


# -- agreements ---------------------------------------------------------------------------------


def test_no_agreement_sees_nothing_even_with_a_consent_permit(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    permit = b.consent({"type": "permit", "actor": [{"reference": {"reference": b.STRANGER}}]})
    ctx = b.caller(b.STRANGER)
    for resource in (b.encounter(), patient()):
        dec = decide(pdp, b, resource, ctx=ctx, patient_consents=[permit])
        assert dec.deny and dec.reasons == (d.NO_AGREEMENT,)


def test_agreement_admits_direct_care_under_default_policy(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    dec = decide(pdp, b, b.encounter())
    assert dec.permit
    assert dec.reasons == (d.DEFAULT_PERMIT,)
    assert dec.policy_ids == ("Basic/isa-test",)
    assert dec.patients == ("p1",)


@pytest.mark.parametrize(
    "kw",
    [
        {"status": "draft"},
        {"status": "suspended"},
        {"period": {"end": "2025-06-30"}},
        {"period": {"start": "2025-07-02"}},
        {"purposes": ["HRESCH"]},
        {"resource_types": ["Patient"]},
        {"sources": ["Organization/la-e09"]},
    ],
)
def test_agreement_not_admitting_denies(pdp: PolicyDecisionPoint, b: SimpleNamespace, kw: dict[str, object]) -> None:
    dec = decide(pdp, b, b.encounter(source="trust-rxx"), agreements=[b.agreement_for(b.CASE_TEAM, **kw)])
    assert dec.deny and dec.reasons == (d.NO_AGREEMENT,)


def test_source_restricted_agreement(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    agreements = [b.agreement_for(b.CASE_TEAM, sources=[b.COUNCIL])]
    assert decide(pdp, b, b.encounter(source="la-e09"), agreements=agreements).permit
    assert decide(pdp, b, b.encounter(source="trust-rxx"), agreements=agreements).deny
    assert decide(pdp, b, b.encounter(), agreements=agreements).deny  # unknown source


def test_category_restricted_agreement(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    cat = ("http://terminology.hl7.org/CodeSystem/observation-category", "social-history")
    agreements = [b.agreement_for(b.CASE_TEAM, categories=[cat])]
    obs = {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/p1"}}
    assert decide(pdp, b, obs, agreements=agreements).deny
    obs["category"] = [{"coding": [{"system": cat[0], "code": cat[1]}]}]
    assert decide(pdp, b, obs, agreements=agreements).permit


def test_own_source_data_is_visible_without_agreement(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    ctx = b.caller(b.TRUST)
    dec = decide(pdp, b, b.encounter(source="trust-rxx", labels=(b.PSY,)), ctx=ctx, agreements=[])
    assert dec.permit and dec.reasons == (d.OWN_SOURCE, d.DEFAULT_PERMIT)


# -- Consents through the PDP ------------------------------------------------------------------------


def test_objection_for_one_org_hides_from_exactly_that_org(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    objection = b.consent({"type": "deny", "actor": [{"reference": {"reference": b.COUNCIL}}]}, cid="obj")
    agreements = [b.agreement_for(b.CASE_TEAM, b.COUNCIL)]
    council = decide(
        pdp, b, b.encounter(), ctx=b.caller(b.COUNCIL), agreements=agreements, patient_consents=[objection]
    )
    team = decide(pdp, b, b.encounter(), agreements=agreements, patient_consents=[objection])
    assert council.deny and council.reasons == (d.CONSENT_DENY,) and council.policy_ids == ("Consent/obj",)
    assert team.permit


def test_deny_overrides_permit_across_consents(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    consents = [b.consent({"type": "permit"}, cid="yes"), b.consent({"type": "deny"}, cid="no")]
    dec = decide(pdp, b, b.encounter(), patient_consents=consents)
    assert dec.deny and dec.policy_ids == ("Consent/no",)


def test_other_patients_consents_are_ignored(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    dec = decide(pdp, b, b.encounter("p1"), patient_consents=[b.consent({"type": "deny"}, pid="p2")])
    assert dec.permit


def test_patient_resource_itself_follows_consent(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    assert decide(pdp, b, patient(), patient_consents=[b.consent({"type": "deny"})]).deny


def test_group_visible_only_if_every_member_permits(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    group = {
        "resourceType": "Group",
        "id": "g1",
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in ("p1", "p2")],
    }
    assert decide(pdp, b, group, patient_resource=[patient("p1"), patient("p2")]).permit
    dec = decide(pdp, b, group, patient_consents=[b.consent({"type": "deny"}, pid="p2")])
    assert dec.deny and dec.patients == ("p1", "p2")


# -- default policy and national data opt-out -------------------------------------------------------


def research_policy_pdp() -> PolicyDecisionPoint:
    raw = copy.deepcopy(default_policy().raw)
    raw["purposes"]["default_permit"] = ["TREAT", "HRESCH"]
    return PolicyDecisionPoint(parse_policy(raw))


def test_default_policy_denies_purposes_beyond_direct_care(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    dec = decide(
        pdp,
        b,
        b.encounter(),
        ctx=b.caller(purpose_of_use="HRESCH"),
        agreements=[b.agreement_for(b.CASE_TEAM, purposes=["HRESCH"])],
    )
    assert dec.deny and dec.reasons == (d.DEFAULT_DENY,)


@pytest.mark.parametrize(
    ("opted_out", "permit", "reason"),
    [(True, False, d.NATIONAL_OPT_OUT), (False, True, d.DEFAULT_PERMIT), (None, True, d.DEFAULT_PERMIT)],
)
def test_opt_out_applies_beyond_direct_care(
    b: SimpleNamespace, opted_out: bool | None, permit: bool, reason: str
) -> None:
    dec = decide(
        research_policy_pdp(),
        b,
        b.encounter(),
        ctx=b.caller(purpose_of_use="HRESCH"),
        agreements=[b.agreement_for(b.CASE_TEAM, purposes=["HRESCH"])],
        patient_resource=patient(opted_out=opted_out),
    )
    assert dec.permit is permit and dec.reasons == (reason,)


def test_opt_out_fails_closed_without_the_patient(b: SimpleNamespace) -> None:
    dec = decide(
        research_policy_pdp(),
        b,
        b.encounter(),
        ctx=b.caller(purpose_of_use="HRESCH"),
        agreements=[b.agreement_for(b.CASE_TEAM, purposes=["HRESCH"])],
        patient_resource=None,
    )
    assert dec.deny and dec.reasons == (d.OPT_OUT_UNKNOWN,)


def test_opt_out_does_not_touch_direct_care(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    assert decide(pdp, b, b.encounter(), patient_resource=patient(opted_out=True)).permit


def test_explicit_consent_for_the_purpose_overrides_opt_out(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    agree = b.consent({"type": "permit", "purpose": [{"system": V3_ACT_REASON, "code": "HRESCH"}]})
    kw = {
        "ctx": b.caller(purpose_of_use="HRESCH"),
        "agreements": [b.agreement_for(b.CASE_TEAM, purposes=["HRESCH"])],
        "patient_resource": patient(opted_out=True),
    }
    assert decide(pdp, b, b.encounter(), patient_consents=[agree], **kw).permit
    broad = b.consent({"type": "permit"})
    assert decide(pdp, b, b.encounter(), patient_consents=[broad], **kw).reasons == (d.NATIONAL_OPT_OUT,)


# -- sensitive labels ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "agreement_labels", "consent_label", "permit"),
    [
        ("N", [], None, True),
        ("PSY", [], None, False),
        ("PSY", ["PSY"], None, True),
        ("PSY", [], "PSY", True),
        ("SDV", ["PSY"], None, False),
        ("R", [], None, False),
        ("R", ["R"], None, True),
        ("V", [], None, False),
        ("V", [], "V", True),
        ("HTEST", [], None, True),
        ("UNKNOWN", [], None, False),
    ],
)
def test_labels_withheld_until_cleared(
    pdp: PolicyDecisionPoint,
    b: SimpleNamespace,
    label: str,
    agreement_labels: list[str],
    consent_label: str | None,
    permit: bool,
) -> None:
    known = {"N": b.N, "PSY": b.PSY, "SDV": b.SDV, "R": b.R, "V": b.V, "HTEST": (V3_ACT_REASON, "HTEST")}
    lbl = known.get(label, ("https://local.example/labels", "UNKNOWN"))
    consents = []
    if consent_label:
        system = known[consent_label][0]
        consents = [b.consent({"type": "permit", "securityLabel": [{"system": system, "code": consent_label}]})]
    agreements = [b.agreement_for(b.CASE_TEAM, security_labels=[known[x] for x in agreement_labels])]
    dec = decide(pdp, b, b.encounter(labels=(lbl,)), agreements=agreements, patient_consents=consents)
    assert dec.permit is permit
    if not permit:
        assert dec.reasons == (d.WITHHELD,)


def test_hidden_labels_never_appear_in_a_decision(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    dec = decide(pdp, b, b.encounter(labels=(b.PSY, b.SDV, b.V)))
    text = repr(dec)
    assert dec.deny
    assert not any(code in text for code in ("PSY", "SDV", "'V'", V3_ACT_CODE))


# -- break-glass ------------------------------------------------------------------------------------------


def btg_ctx(b: SimpleNamespace, **kw: object) -> object:
    kw.setdefault("role", "clinician")
    kw.setdefault("break_glass_reason", "unconscious in ED, no history available")
    return b.caller(b.TRUST, purpose_of_use="BTG", **kw)


def btg_agreements(b: SimpleNamespace) -> list[object]:
    return [b.agreement_for(b.TRUST, id="isa-btg", purposes=["ETREAT"], break_glass=True)]


def test_break_glass_allowed(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    objection = b.consent({"type": "deny"}, cid="obj")
    dec = decide(
        pdp, b, b.encounter(labels=(b.PSY,)), ctx=btg_ctx(b), agreements=btg_agreements(b), patient_consents=[objection]
    )
    assert dec.permit and dec.break_glass
    assert dec.expires_at == b.NOW + timedelta(minutes=60)
    assert dec.obligations == {AUDIT_SECURITY_ALERT, NOTIFY_CASE_MANAGER}
    assert dec.reasons == (d.BREAK_GLASS,)
    assert dec.policy_ids == ("Basic/isa-btg", "Consent/obj")
    assert dec.valid_until is not None and dec.valid_until <= dec.expires_at


def test_break_glass_never_reveals_very_restricted(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    dec = decide(pdp, b, b.encounter(labels=(b.V,)), ctx=btg_ctx(b), agreements=btg_agreements(b))
    assert dec.deny and not dec.break_glass and AUDIT_SECURITY_ALERT in dec.obligations


@pytest.mark.parametrize(
    ("ctx_kw", "agreement_kw"),
    [
        ({"break_glass_reason": "  "}, {"break_glass": True}),
        ({"break_glass_reason": None}, {"break_glass": True}),
        ({"role": "ward-clerk"}, {"break_glass": True}),
        ({}, {"break_glass": False}),
    ],
    ids=["blank-reason", "no-reason", "role-not-allowed", "agreement-without-btg"],
)
def test_break_glass_refused_falls_back_to_ordinary_care(
    pdp: PolicyDecisionPoint, b: SimpleNamespace, ctx_kw: dict[str, object], agreement_kw: dict[str, object]
) -> None:
    ctx = btg_ctx(b, **ctx_kw)
    agreements = [b.agreement_for(b.TRUST, purposes=["TREAT"], **agreement_kw)]
    plain = decide(pdp, b, b.encounter(), ctx=ctx, agreements=agreements)
    psy = decide(pdp, b, b.encounter(labels=(b.PSY,)), ctx=ctx, agreements=agreements)
    assert plain.permit and not plain.break_glass and plain.expires_at is None
    assert plain.reasons == (d.BREAK_GLASS_REFUSED, d.DEFAULT_PERMIT)
    assert plain.obligations == {AUDIT_SECURITY_ALERT}
    assert psy.deny and d.BREAK_GLASS_REFUSED in psy.reasons


# -- resources outside the compartment, system callers --------------------------------------------------------


def test_non_patient_resources(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    stranger = b.caller(b.STRANGER)
    assert pdp.decide(stranger, {"resourceType": "Organization", "id": "o"}, now=b.NOW).reasons == (d.NON_PATIENT,)
    login = {"resourceType": "AuditEvent", "id": "a", "agent": [{"who": {"reference": "Device/x"}}]}
    assert pdp.decide(stranger, login, now=b.NOW).deny
    secret_org = {"resourceType": "Organization", "id": "o", "meta": {"security": [{"system": b.V[0], "code": "V"}]}}
    assert pdp.decide(stranger, secret_org, now=b.NOW).deny


def test_provenance_of_a_non_patient_target_is_withheld(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    prov = {"resourceType": "Provenance", "id": "pv", "target": [{"reference": "Encounter/e1"}]}
    assert pdp.decide(b.caller(b.STRANGER), prov, now=b.NOW).reasons == (d.NON_PATIENT_WITHHELD,)


def test_member_naming_a_patient_outside_compartment_params_is_patient_data(
    pdp: PolicyDecisionPoint, b: SimpleNamespace
) -> None:
    task = {"resourceType": "Task", "id": "t", "focus": {"reference": "Patient/p1"}}
    assert pdp.decide(b.caller(b.STRANGER), task, now=b.NOW).reasons == (d.NO_AGREEMENT,)


def test_unlisted_type_naming_a_patient_is_treated_as_patient_data(
    pdp: PolicyDecisionPoint, b: SimpleNamespace
) -> None:
    res = {"resourceType": "DeviceUseStatement", "id": "x", "subject": {"reference": "Patient/p1"}}
    assert pdp.decide(b.caller(b.STRANGER), res, now=b.NOW).reasons == (d.NO_AGREEMENT,)


def test_system_context_is_permitted(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    from gateway.auth.context import system_context

    assert pdp.decide(system_context("alerts"), b.encounter(labels=(b.V,)), now=b.NOW).permit


def test_naive_now_is_refused(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    with pytest.raises(ValueError, match="timezone"):
        pdp.decide(b.caller(), b.encounter(), now=b.NOW.replace(tzinfo=None))


# -- search pages and cache validity ------------------------------------------------------------------


def test_filter_drops_hidden_entries_and_keeps_order(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    page = [
        b.encounter("p1", rid="e1"),
        b.encounter("p2", rid="e2"),
        b.encounter("p1", rid="e3", labels=(b.PSY,)),
        b.encounter("p3", rid="e4"),
        {"resourceType": "Organization", "id": "o1"},
    ]
    result = pdp.filter(
        b.caller(),
        page,
        patient_consents=[b.consent({"type": "deny"}, pid="p2")],
        patient_resources=[patient("p1"), patient("p2"), patient("p3")],
        agreements=[b.agreement_for(b.CASE_TEAM)],
        now=b.NOW,
    )
    assert [r["id"] for r in result.permitted] == ["e1", "e4", "o1"]
    assert len(result.decisions) == 5 and result.hidden_count == 2


def test_valid_until_is_the_next_period_boundary(pdp: PolicyDecisionPoint, b: SimpleNamespace) -> None:
    consent = b.consent({"type": "permit", "period": {"start": "2025-01-01", "end": "2025-09-30"}})
    agreements = [b.agreement_for(b.CASE_TEAM, period={"start": "2025-01-01", "end": "2026-03-31"})]
    dec = decide(pdp, b, b.encounter(), agreements=agreements, patient_consents=[consent])
    assert dec.valid_until is not None and dec.valid_until.isoformat() == "2025-10-01T00:00:00+00:00"
