"""Canonical URLs of the profiles, value sets and questionnaire this package ships in `profiles/`.

They extend `gateway.codes` (the code systems live there); the JSON files under `profiles/` are the
definitions, these names only let code point at them.
"""

from __future__ import annotations

from gateway.codes import CANONICAL_BASE, EXT_BASE

CASE_MANAGED_EPISODE_OF_CARE = f"{EXT_BASE}/case-managed-episode-of-care"
CASE_MANAGEMENT_CARE_PLAN = f"{EXT_BASE}/case-management-care-plan"
CASE_MANAGEMENT_CARE_TEAM = f"{EXT_BASE}/case-management-care-team"
SHARED_ASSESSMENT_RESPONSE = f"{EXT_BASE}/shared-assessment-response"
CARE_GATEWAY_PATIENT = f"{EXT_BASE}/care-gateway-patient"
CASE_MANAGED_FLAG = f"{EXT_BASE}/case-managed-flag"

# Extension: CarePlan -> date of the next review (valueDate).
EXT_CARE_PLAN_REVIEW_DATE = f"{EXT_BASE}/care-plan-review-date"

SHARED_ASSESSMENT = f"{CANONICAL_BASE}/Questionnaire/shared-assessment"

VALUE_SET_BASE = f"{CANONICAL_BASE}/ValueSet"
EPISODE_TYPE_VALUE_SET = f"{VALUE_SET_BASE}/episode-type"
CASE_MANAGED_EPISODE_TYPE_VALUE_SET = f"{VALUE_SET_BASE}/case-managed-episode-type"
ALERT_VALUE_SET = f"{VALUE_SET_BASE}/alert"
SERVICE_TYPE_VALUE_SET = f"{VALUE_SET_BASE}/service-type"
CARE_TEAM_ROLE_VALUE_SET = f"{VALUE_SET_BASE}/care-team-role"
ASSESSMENT_DEPENDENCY_VALUE_SET = f"{VALUE_SET_BASE}/assessment-dependency"

# CodeSystem: roles in a case-management CareTeam (participant.role).
CARE_TEAM_ROLE_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/care-team-role"
CASE_MANAGER_ROLE = "case-manager"
SINGLE_POINT_OF_CONTACT_ROLE = "single-point-of-contact"
INFORMAL_CARER_ROLE = "informal-carer"

# CodeSystem: answers to the shared assessment's activities-of-daily-living items.
ASSESSMENT_DEPENDENCY_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/assessment-dependency"

# CareTeam.category every case-management team carries (LOINC care team category).
CARE_COORDINATION_TEAM_CATEGORY = ("http://loinc.org", "LA28865-6")


def strip_version(canonical: str) -> str:
    """`url|version` -> `url`: the gateway ships one version of each definition."""
    return canonical.split("|", 1)[0]
