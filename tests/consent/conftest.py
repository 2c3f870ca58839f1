"""Shared builders for the consent tests: a fixed clock, callers, agreements and Consents."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.auth.context import AccessContext
from gateway.codes import V3_ACT_CODE, V3_CONFIDENTIALITY
from gateway.consent import Agreement, PolicyDecisionPoint, build_agreement, parse_agreement
from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM
from gateway.consent.consents import CONSENT_SCOPE_SYSTEM
from gateway.types import JSON

NOW = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
TRUST = "Organization/trust-rxx"
COUNCIL = "Organization/la-e09"
CASE_TEAM = "Organization/case-mgmt"
STRANGER = "Organization/unknown-org"


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint()


def caller(org: str | None = CASE_TEAM, **kw: Any) -> AccessContext:
    return AccessContext(client_id=kw.pop("client_id", "app-1"), organization=org, **kw)


def agreement_for(*recipients: str, **kw: Any) -> Agreement:
    kw.setdefault("purposes", ["TREAT"])
    return parse_agreement(build_agreement(id=kw.pop("id", "isa-test"), recipients=list(recipients), **kw))


def encounter(pid: str = "p1", *, rid: str = "e1", labels: tuple[tuple[str, str], ...] = (), **kw: Any) -> JSON:
    res: JSON = {
        "resourceType": "Encounter",
        "id": rid,
        "status": "finished",
        "class": {"code": "EMER"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2025-06-01T10:00:00Z", "end": "2025-06-01T14:00:00Z"},
        "meta": {"security": [{"system": s, "code": c} for s, c in labels]},
    }
    if "source" in kw:
        res["meta"]["tag"] = [{"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": kw.pop("source")}]
    res.update(kw)
    return res


def consent(provision: JSON | None, *, pid: str = "p1", cid: str = "c1", **kw: Any) -> JSON:
    res: JSON = {
        "resourceType": "Consent",
        "id": cid,
        "status": kw.pop("status", "active"),
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": kw.pop("scope", "patient-privacy")}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
    }
    if provision is not None:
        res["provision"] = provision
    res.update(kw)
    return res


PSY = (V3_ACT_CODE, "PSY")
SDV = (V3_ACT_CODE, "SDV")
R = (V3_CONFIDENTIALITY, "R")
V = (V3_CONFIDENTIALITY, "V")
N = (V3_CONFIDENTIALITY, "N")


@pytest.fixture(scope="session")
def b() -> SimpleNamespace:
    """Builders and constants, as one fixture so tests import nothing from conftest."""
    return SimpleNamespace(
        NOW=NOW,
        TRUST=TRUST,
        COUNCIL=COUNCIL,
        CASE_TEAM=CASE_TEAM,
        STRANGER=STRANGER,
        PSY=PSY,
        SDV=SDV,
        R=R,
        V=V,
        N=N,
        caller=caller,
        agreement_for=agreement_for,
        encounter=encounter,
        consent=consent,
    )
