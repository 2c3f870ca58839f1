"""Caseloads (issue 6, item 5): active episodes per case manager, high-risk share, warnings at the limits."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from gateway.codes import EPISODE_TYPE_SYSTEM, SOCIAL_CARE_PACKAGE, VIRTUAL_WARD
from gateway.record.caseload import HIGH_RISK_SHARE, OVER_LIMIT, CaseloadPolicy, caseloads


def episode(n: int, manager: str = "cm1", *, status: str = "active", type_code: str = VIRTUAL_WARD) -> dict[str, Any]:
    resource = {
        "resourceType": "EpisodeOfCare",
        "id": f"ep{manager}{n}",
        "status": status,
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": type_code}]}],
        "patient": {"reference": f"Patient/{manager}-p{n}"},
        "careManager": {"reference": f"Practitioner/{manager}", "display": f"Manager {manager}"},
    }
    get_fhir_model_class("EpisodeOfCare").model_validate(resource)
    return resource


def test_counts_only_active_case_management_episodes() -> None:
    episodes = [
        episode(1),
        episode(2),
        episode(3, status="finished"),
        episode(4, type_code=SOCIAL_CARE_PACKAGE),
        episode(1, "cm2"),
    ]
    loads = caseloads(episodes, high_risk_patient_ids={"cm1-p1"})
    assert [(c.care_manager, c.active, c.high_risk) for c in loads] == [
        ("Practitioner/cm1", 2, 1),
        ("Practitioner/cm2", 1, 0),
    ]
    assert loads[0].care_manager_display == "Manager cm1"
    assert loads[0].high_risk_share == 0.5


def test_caseload_limit_warns_only_when_passed() -> None:
    full = caseloads([episode(i) for i in range(50)], high_risk_patient_ids=())
    over = caseloads([episode(i) for i in range(51)], high_risk_patient_ids=())
    assert full[0].warnings == ()
    assert over[0].warnings == (OVER_LIMIT,)


def test_high_risk_share_warns_above_fifteen_percent() -> None:
    episodes = [episode(i) for i in range(20)]
    at_limit = caseloads(episodes, high_risk_patient_ids={f"cm1-p{i}" for i in range(3)})  # exactly 15%
    above = caseloads(episodes, high_risk_patient_ids={f"cm1-p{i}" for i in range(4)})  # 20%
    assert at_limit[0].warnings == ()
    assert above[0].warnings == (HIGH_RISK_SHARE,)


def test_policy_is_configurable() -> None:
    loads = caseloads(
        [episode(i) for i in range(5)],
        high_risk_patient_ids={"cm1-p0", "cm1-p1"},
        policy=CaseloadPolicy(limit=4, high_risk_share=0.5),
    )
    assert loads[0].warnings == (OVER_LIMIT,)
