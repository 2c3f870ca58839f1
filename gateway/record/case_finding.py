"""Case-finding: an explainable points score that ranks people for a clinician to consider.

What it is: a transparent additive score over a person's linked record (all their Patient records'
resources, gathered by the caller), where every point can be traced to a resource and a row of
`DEFAULT_WEIGHTS`. It is written as a `RiskAssessment` listing each contributing factor, and the
`worklist` ranks people above a threshold who are not yet case-managed, with their reasons.

What it is not: a prediction model or a decision. The points are not calibrated probabilities
(so the RiskAssessment carries a qualitative risk band and the raw score, never a
`probabilityDecimal`), it has not been validated on a population, and it sees only what the
gateway holds. It puts names in front of a clinician, who decides whether case management is
right; someone low on the list may need it more than someone at the top.

Factors (points are data: `RiskWeights`, overridable by configuration):

| factor                  | where it comes from                                                        |
|-------------------------|----------------------------------------------------------------------------|
| emergency admissions    | Encounters in the past 12 months with an inpatient class (IMP/ACUTE/NONAC/ |
|                         | SS) and priority EM/UR (v3-ActPriority), admitSource `emd`, or an HL7 v2   |
|                         | admission type (PV1-4, v2-0007) of E/A/U                                   |
| A&E attendances         | Encounters in the past 12 months with class EMER                           |
| long-term conditions    | distinct active Conditions coded in `LONG_TERM_CONDITIONS` (SNOMED CT)     |
| age                     | Patient.birthDate, banded                                                  |
| social-care support     | an active EpisodeOfCare of type social-care-package                        |
| living alone            | a final Observation coded SNOMED 105529008 "Lives alone" (code or value)   |
| unpaid carer            | an active RelatedPerson coded SNOMED 407542009 "Informal carer"            |

Cancelled / entered-in-error resources never count. Dates without a time zone are read as UTC.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gateway.codes import EPISODE_TYPE_SYSTEM, EXT_BASE, SOCIAL_CARE_PACKAGE, V3_ACT_CODE
from gateway.types import JSON

SNOMED = "http://snomed.info/sct"
V3_ACT_PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ADMIT_SOURCE = "http://terminology.hl7.org/CodeSystem/admit-source"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
EXT_RISK_SCORE = f"{EXT_BASE}/case-finding-score"
EXT_RISK_FACTOR = f"{EXT_BASE}/case-finding-factor"
METHOD_TEXT = "care-gateway case-finding points score v1"

LIVES_ALONE = "105529008"
INFORMAL_CARER = "407542009"

# Starter list, not a clinical reference set: replace with the locally agreed LTC value set.
LONG_TERM_CONDITIONS: dict[str, str] = {
    "73211009": "diabetes mellitus",
    "44054006": "type 2 diabetes mellitus",
    "46635009": "type 1 diabetes mellitus",
    "13645005": "chronic obstructive lung disease",
    "195967001": "asthma",
    "84114007": "heart failure",
    "49436004": "atrial fibrillation",
    "38341003": "hypertensive disorder",
    "53741008": "coronary arteriosclerosis",
    "52448006": "dementia",
    "709044004": "chronic kidney disease",
    "230690007": "cerebrovascular accident",
    "363346000": "malignant neoplastic disease",
    "69896004": "rheumatoid arthritis",
    "396275006": "osteoarthritis",
    "49049000": "Parkinson's disease",
    "35489007": "depressive disorder",
    "84757009": "epilepsy",
    "64859006": "osteoporosis",
}

INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC", "SS"})
EMERGENCY_PRIORITIES = frozenset({"EM", "UR"})
# HL7 v2 feeds carry the admission type (PV1-4, table 0007) as Encounter.type, per the V2-to-FHIR IG.
V2_ADMISSION_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0007"
EMERGENCY_ADMISSION_TYPES = frozenset({"E", "A", "U"})  # emergency, accident, urgent
ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
VOID_STATUSES = frozenset({"cancelled", "entered-in-error"})


@dataclass(frozen=True)
class RiskWeights:
    """Points per factor, caps, age bands and risk bands: the whole scoring policy as data."""

    per_emergency_admission: int = 3
    max_emergency_admissions: int = 4
    per_ae_attendance: int = 1
    max_ae_attendances: int = 5
    per_long_term_condition: int = 1
    max_long_term_conditions: int = 6
    multimorbidity_from: int = 3
    multimorbidity_bonus: int = 2
    age_bands: tuple[tuple[int, int], ...] = ((85, 4), (75, 2), (65, 1))
    social_care_support: int = 2
    living_alone: int = 2
    unpaid_carer: int = 1
    lookback_days: int = 365
    high_from: int = 10
    moderate_from: int = 5


DEFAULT_WEIGHTS = RiskWeights()


@dataclass(frozen=True)
class Factor:
    code: str
    label: str
    points: int
    basis: tuple[str, ...] = ()


@dataclass(frozen=True)
class RiskScore:
    patient_id: str
    points: int
    band: str
    factors: tuple[Factor, ...] = field(default_factory=tuple)

    def count(self, code: str) -> int:
        return len(next((f.basis for f in self.factors if f.code == code), ()))


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value[:10])
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ref(resource: JSON) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _codes(concept: JSON | None, system: str) -> set[str]:
    return {c["code"] for c in (concept or {}).get("coding") or [] if c.get("system") == system and c.get("code")}


def _recent(encounter: JSON, since: datetime, now: datetime) -> bool:
    start = _when((encounter.get("period") or {}).get("start"))
    return start is not None and since <= start <= now


def _is_emergency_admission(encounter: JSON) -> bool:
    cls = encounter.get("class") or {}
    if cls.get("system") not in (None, V3_ACT_CODE) or cls.get("code") not in INPATIENT_CLASSES:
        return False
    urgent = _codes(encounter.get("priority"), V3_ACT_PRIORITY) & EMERGENCY_PRIORITIES
    from_ae = "emd" in _codes((encounter.get("hospitalization") or {}).get("admitSource"), ADMIT_SOURCE)
    v2_type = any(_codes(t, V2_ADMISSION_TYPE) & EMERGENCY_ADMISSION_TYPES for t in encounter.get("type") or [])
    return bool(urgent or from_ae or v2_type)


def _is_ae_attendance(encounter: JSON) -> bool:
    cls = encounter.get("class") or {}
    return bool(cls.get("system") in (None, V3_ACT_CODE) and cls.get("code") == "EMER")


def _active_condition_code(condition: JSON, ltc: Collection[str]) -> str | None:
    if not _codes(condition.get("clinicalStatus"), CONDITION_CLINICAL) & ACTIVE_CLINICAL:
        return None
    if _codes(condition.get("verificationStatus"), CONDITION_VERIFICATION) & {"entered-in-error", "refuted"}:
        return None
    return next(iter(sorted(_codes(condition.get("code"), SNOMED) & set(ltc))), None)


def _age(birth_date: str | None, today: date) -> int | None:
    if not birth_date or len(birth_date) < 4:
        return None
    year = int(birth_date[:4])
    month = int(birth_date[5:7]) if len(birth_date) >= 7 else 7
    day = int(birth_date[8:10]) if len(birth_date) >= 10 else 1
    return today.year - year - ((today.month, today.day) < (month, day))


def _band(points: int, weights: RiskWeights) -> str:
    if points >= weights.high_from:
        return "high"
    return "moderate" if points >= weights.moderate_from else "low"


def score_person(
    patient: JSON,
    resources: Iterable[JSON],
    *,
    now: datetime,
    weights: RiskWeights = DEFAULT_WEIGHTS,
    long_term_conditions: Collection[str] = frozenset(LONG_TERM_CONDITIONS),
) -> RiskScore:
    """Score one person from their linked record (`resources`: everything across linked Patients)."""
    since = now - timedelta(days=weights.lookback_days)
    admissions: list[str] = []
    attendances: list[str] = []
    conditions: dict[str, str] = {}
    social: list[str] = []
    alone: list[str] = []
    carers: list[str] = []
    for r in resources:
        kind = r.get("resourceType")
        if r.get("status") in VOID_STATUSES:
            continue
        if kind == "Encounter" and _recent(r, since, now):
            if _is_emergency_admission(r):
                admissions.append(_ref(r))
            elif _is_ae_attendance(r):
                attendances.append(_ref(r))
        elif kind == "Condition" and (code := _active_condition_code(r, long_term_conditions)):
            conditions.setdefault(code, _ref(r))
        elif kind == "EpisodeOfCare" and r.get("status") == "active":
            if any(SOCIAL_CARE_PACKAGE in _codes(t, EPISODE_TYPE_SYSTEM) for t in r.get("type") or []):
                social.append(_ref(r))
        elif kind == "Observation" and r.get("status") in ("final", "amended", "corrected"):
            if LIVES_ALONE in _codes(r.get("code"), SNOMED) | _codes(r.get("valueCodeableConcept"), SNOMED):
                alone.append(_ref(r))
        elif kind == "RelatedPerson" and r.get("active", True):
            if any(INFORMAL_CARER in _codes(rel, SNOMED) for rel in r.get("relationship") or []):
                carers.append(_ref(r))

    w = weights
    factors: list[Factor] = []
    if admissions:
        n = min(len(admissions), w.max_emergency_admissions)
        factors.append(
            Factor(
                "emergency-admissions",
                f"{len(admissions)} emergency admission(s) in 12 months",
                n * w.per_emergency_admission,
                tuple(sorted(admissions)),
            )
        )
    if attendances:
        n = min(len(attendances), w.max_ae_attendances)
        factors.append(
            Factor(
                "ae-attendances",
                f"{len(attendances)} A&E attendance(s) in 12 months",
                n * w.per_ae_attendance,
                tuple(sorted(attendances)),
            )
        )
    if conditions:
        n = len(conditions)
        points = min(n, w.max_long_term_conditions) * w.per_long_term_condition
        points += w.multimorbidity_bonus if n >= w.multimorbidity_from else 0
        factors.append(
            Factor(
                "long-term-conditions", f"{n} long-term condition(s)", points, tuple(sorted(set(conditions.values())))
            )
        )
    age = _age(patient.get("birthDate"), now.date())
    band_points = next((p for floor, p in w.age_bands if age is not None and age >= floor), 0)
    if band_points:
        factors.append(Factor("age", f"aged {age}", band_points, (_ref(patient),)))
    if social:
        factors.append(
            Factor("social-care-support", "receives social care support", w.social_care_support, tuple(sorted(social)))
        )
    if alone:
        factors.append(Factor("living-alone", "lives alone", w.living_alone, tuple(sorted(set(alone)))))
    if carers:
        factors.append(Factor("unpaid-carer", "relies on an unpaid carer", w.unpaid_carer, tuple(sorted(carers))))
    total = sum(f.points for f in factors)
    return RiskScore(str(patient.get("id")), total, _band(total, w), tuple(factors))


def risk_assessment(score: RiskScore, *, now: datetime, performer_ref: str | None = None) -> JSON:
    """The score as a FHIR RiskAssessment: band as qualitativeRisk, factors as extensions + note."""
    basis = sorted({ref for f in score.factors for ref in f.basis})
    resource: JSON = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "method": {"text": METHOD_TEXT},
        "subject": {"reference": f"Patient/{score.patient_id}"},
        "occurrenceDateTime": now.isoformat(timespec="seconds"),
        "prediction": [
            {
                "outcome": {"text": "unplanned hospital use in the next 12 months"},
                "qualitativeRisk": {"coding": [{"system": RISK_PROBABILITY, "code": score.band}]},
            }
        ],
        "extension": [
            {"url": EXT_RISK_SCORE, "valueInteger": score.points},
            *(
                {
                    "url": EXT_RISK_FACTOR,
                    "extension": [
                        {"url": "code", "valueCode": f.code},
                        {"url": "label", "valueString": f.label},
                        {"url": "points", "valueInteger": f.points},
                    ],
                }
                for f in score.factors
            ),
        ],
        "note": [{"text": explain(score)}],
    }
    if basis:
        resource["basis"] = [{"reference": ref} for ref in basis]
    if performer_ref:
        resource["performer"] = {"reference": performer_ref}
    return resource


def explain(score: RiskScore) -> str:
    if not score.factors:
        return f"Score 0 ({score.band}): no contributing factors found in the linked record."
    parts = "; ".join(f"{f.label} +{f.points}" for f in score.factors)
    return f"Score {score.points} ({score.band}): {parts}. Ranks for clinical review; it does not decide."


@dataclass(frozen=True)
class WorklistItem:
    rank: int
    patient_id: str
    points: int
    band: str
    reasons: tuple[str, ...]


def worklist(scored: Iterable[RiskScore], case_managed_ids: Collection[str], threshold: int) -> list[WorklistItem]:
    """People scoring at least `threshold` and not already case-managed, highest first.

    Ties go to more emergency admissions, then the patient id, so the order is reproducible.
    """
    managed = set(case_managed_ids)
    chosen = [s for s in scored if s.points >= threshold and s.patient_id not in managed]
    chosen.sort(key=lambda s: (-s.points, -s.count("emergency-admissions"), s.patient_id))
    return [
        WorklistItem(i, s.patient_id, s.points, s.band, tuple(f"{f.label} (+{f.points})" for f in s.factors))
        for i, s in enumerate(chosen, start=1)
    ]
