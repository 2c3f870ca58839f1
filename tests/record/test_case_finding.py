"""Case-finding (issue 6, item 4): explainable points per factor, RiskAssessment, ranked worklist."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from gateway.codes import EPISODE_TYPE_SYSTEM, SOCIAL_CARE_PACKAGE, V3_ACT_CODE
from gateway.record.case_finding import (
    ADMIT_SOURCE,
    EXT_RISK_FACTOR,
    EXT_RISK_SCORE,
    INFORMAL_CARER,
    LIVES_ALONE,
    SNOMED,
    V3_ACT_PRIORITY,
    Factor,
    RiskScore,
    RiskWeights,
    risk_assessment,
    score_person,
    worklist,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def patient(birth: str = "1940-06-01") -> dict[str, Any]:
    return valid({"resourceType": "Patient", "id": "p1", "birthDate": birth})


def enc(eid: str, cls: str, start: str, *, emergency: bool = False, status: str = "finished") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "status": status,
        "class": {"system": V3_ACT_CODE, "code": cls},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": start},
    }
    if emergency:
        resource["priority"] = {"coding": [{"system": V3_ACT_PRIORITY, "code": "EM"}]}
    return valid(resource)


def condition(cid: str, code: str, clinical: str = "active") -> dict[str, Any]:
    return valid(
        {
            "resourceType": "Condition",
            "id": cid,
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]},
            "code": {"coding": [{"system": SNOMED, "code": code}]},
            "subject": {"reference": "Patient/p1"},
        }
    )


def full_record() -> list[dict[str, Any]]:
    from_ae = enc("adm2", "IMP", "2025-12-01T10:00:00Z")
    from_ae["hospitalization"] = {"admitSource": {"coding": [{"system": ADMIT_SOURCE, "code": "emd"}]}}
    return [
        enc("adm1", "IMP", "2025-06-01T10:00:00Z", emergency=True),
        valid(from_ae),
        enc("elective", "IMP", "2025-07-01T10:00:00Z"),  # planned: not counted
        enc("old", "IMP", "2024-01-01T10:00:00Z", emergency=True),  # over 12 months ago
        enc("ae1", "EMER", "2026-01-10T02:00:00Z"),
        enc("ae-void", "EMER", "2026-01-11T02:00:00Z", status="entered-in-error"),
        condition("c1", "84114007"),  # heart failure
        condition("c2", "13645005"),  # COPD
        condition("c2-dup", "13645005"),  # same fact from a second source
        condition("c3", "52448006"),  # dementia
        condition("c4", "195967001", clinical="resolved"),
        condition("c5", "22298006"),  # not on the LTC list
        valid(
            {
                "resourceType": "EpisodeOfCare",
                "id": "sc1",
                "status": "active",
                "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": SOCIAL_CARE_PACKAGE}]}],
                "patient": {"reference": "Patient/p1"},
            }
        ),
        valid(
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": "final",
                "code": {"coding": [{"system": SNOMED, "code": LIVES_ALONE}]},
                "subject": {"reference": "Patient/p1"},
            }
        ),
        valid(
            {
                "resourceType": "RelatedPerson",
                "id": "rp1",
                "patient": {"reference": "Patient/p1"},
                "relationship": [{"coding": [{"system": SNOMED, "code": INFORMAL_CARER}]}],
            }
        ),
    ]


def test_every_factor_scores_its_documented_points() -> None:
    score = score_person(patient(), full_record(), now=NOW)
    by_code = {f.code: f for f in score.factors}
    assert by_code["emergency-admissions"] == Factor(
        "emergency-admissions", "2 emergency admission(s) in 12 months", 6, ("Encounter/adm1", "Encounter/adm2")
    )
    assert by_code["ae-attendances"].points == 1
    assert by_code["long-term-conditions"].points == 3 + 2  # three LTCs plus multimorbidity bonus
    assert by_code["long-term-conditions"].basis == ("Condition/c1", "Condition/c2", "Condition/c3")
    assert (by_code["age"].label, by_code["age"].points) == ("aged 85", 4)
    assert by_code["social-care-support"].points == 2
    assert by_code["living-alone"].basis == ("Observation/o1",)
    assert by_code["unpaid-carer"].points == 1
    assert score.points == 6 + 1 + 5 + 4 + 2 + 2 + 1
    assert score.band == "high"


def test_age_bands_and_empty_record() -> None:
    assert score_person(patient("1990-01-01"), [], now=NOW).points == 0
    assert score_person(patient("1955-01-01"), [], now=NOW).points == 1  # 71
    assert score_person(patient("1951-03-02"), [], now=NOW).points == 1  # 75 tomorrow: still 74
    assert score_person(patient("1951-03-01"), [], now=NOW).points == 2  # 75 today
    assert score_person(patient("1941-03-01"), [], now=NOW).points == 4  # 85 today


def test_weights_are_data() -> None:
    heavy = RiskWeights(per_ae_attendance=5)
    score = score_person(patient("1990-01-01"), [enc("ae1", "EMER", "2026-01-10T02:00:00Z")], now=NOW, weights=heavy)
    assert score.points == 5


def test_risk_assessment_lists_contributing_factors() -> None:
    score = score_person(patient(), full_record(), now=NOW)
    ra = valid(risk_assessment(score, now=NOW, performer_ref="Device/care-gateway"))
    assert ra["subject"] == {"reference": "Patient/p1"}
    assert ra["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "high"
    assert "probabilityDecimal" not in ra["prediction"][0]
    assert ra["extension"][0] == {"url": EXT_RISK_SCORE, "valueInteger": 21}
    factors = [e for e in ra["extension"] if e["url"] == EXT_RISK_FACTOR]
    assert [f["extension"][0]["valueCode"] for f in factors] == [f.code for f in score.factors]
    assert {"reference": "Encounter/adm1"} in ra["basis"]
    assert "emergency admission(s) in 12 months +6" in ra["note"][0]["text"]
    assert "does not decide" in ra["note"][0]["text"]


def s(pid: str, points: int, admissions: int = 0) -> RiskScore:
    basis = tuple(f"Encounter/{pid}-{i}" for i in range(admissions))
    factors = (Factor("emergency-admissions", "adm", admissions * 3, basis),) if admissions else ()
    return RiskScore(pid, points, "high" if points >= 10 else "moderate", factors)


def test_worklist_ranks_uncase_managed_people_above_threshold() -> None:
    scored = [s("a", 12, 1), s("b", 15), s("c", 12, 3), s("d", 9), s("managed", 30), s("e", 10)]
    items = worklist(scored, case_managed_ids={"managed"}, threshold=10)
    assert [(i.rank, i.patient_id) for i in items] == [(1, "b"), (2, "c"), (3, "a"), (4, "e")]
    assert items[1].reasons == ("adm (+9)",)


def test_worklist_is_stable_on_ties() -> None:
    items = worklist([s("z", 10), s("y", 10)], case_managed_ids=(), threshold=10)
    assert [i.patient_id for i in items] == ["y", "z"]


def test_an_hl7_v2_emergency_admission_counts() -> None:
    from gateway.record.case_finding import _is_emergency_admission

    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0007", "code": "E"}]}],
    }
    assert _is_emergency_admission(encounter)
    encounter["type"][0]["coding"][0]["code"] = "C"  # elective
    assert not _is_emergency_admission(encounter)
