"""Shared fixtures: the shipped registry (loaded once) and one valid example per profile."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from gateway.codes import ALERT_CODE_SYSTEM, CASE_MANAGED_FLAG, EPISODE_TYPE_SYSTEM, NHS_NUMBER_SYSTEM, VIRTUAL_WARD
from gateway.identity.nhs_number import with_check_digit
from gateway.record.validation import ProfileRegistry, Validator, default_registry
from gateway.record.validation import urls as u
from gateway.types import JSON

SYSTEM, CODE = u.CARE_COORDINATION_TEAM_CATEGORY
NHS_NUMBER = with_check_digit("999000001")
assert NHS_NUMBER is not None


def _role(code: str) -> JSON:
    return {"coding": [{"system": u.CARE_TEAM_ROLE_SYSTEM, "code": code}]}


EXAMPLES: dict[str, JSON] = {
    u.CASE_MANAGED_EPISODE_OF_CARE: {
        "resourceType": "EpisodeOfCare",
        "meta": {"profile": [u.CASE_MANAGED_EPISODE_OF_CARE]},
        "status": "active",
        "statusHistory": [
            {"status": "planned", "period": {"start": "2025-01-01", "end": "2025-01-03"}},
            {"status": "active", "period": {"start": "2025-01-03"}},
        ],
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
        "patient": {"reference": "Patient/p1"},
        "managingOrganization": {"reference": "Organization/trust"},
        "period": {"start": "2025-01-03"},
        "careManager": {"reference": "Practitioner/cm1"},
        "team": [{"reference": "CareTeam/ct1"}],
    },
    u.CASE_MANAGEMENT_CARE_PLAN: {
        "resourceType": "CarePlan",
        "meta": {"profile": [u.CASE_MANAGEMENT_CARE_PLAN]},
        "extension": [{"url": u.EXT_CARE_PLAN_REVIEW_DATE, "valueDate": "2025-04-01"}],
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2025-01-03"},
        "author": {"reference": "Practitioner/cm1"},
        "contributor": [{"reference": "Practitioner/sw1"}, {"reference": "Organization/council"}],
        "goal": [{"reference": "Goal/g1"}],
        "activity": [
            {"detail": {"status": "scheduled", "performer": [{"reference": "Organization/community-nursing"}]}},
            {"reference": {"reference": "ServiceRequest/sr1"}},
        ],
    },
    u.CASE_MANAGEMENT_CARE_TEAM: {
        "resourceType": "CareTeam",
        "meta": {"profile": [u.CASE_MANAGEMENT_CARE_TEAM]},
        "status": "active",
        "category": [{"coding": [{"system": SYSTEM, "code": CODE}]}],
        "subject": {"reference": "Patient/p1"},
        "participant": [
            {
                "role": [_role(u.CASE_MANAGER_ROLE), _role(u.SINGLE_POINT_OF_CONTACT_ROLE)],
                "member": {"reference": "Practitioner/cm1"},
            },
            {"role": [_role(u.INFORMAL_CARER_ROLE)], "member": {"reference": "RelatedPerson/rp1"}},
            {"role": [_role("social-worker")], "member": {"reference": "PractitionerRole/sw1"}},
        ],
        "managingOrganization": [{"reference": "Organization/trust"}],
    },
    u.SHARED_ASSESSMENT_RESPONSE: {
        "resourceType": "QuestionnaireResponse",
        "meta": {"profile": [u.SHARED_ASSESSMENT_RESPONSE]},
        "questionnaire": u.SHARED_ASSESSMENT,
        "status": "in-progress",
        "subject": {"reference": "Patient/p1"},
        "authored": "2025-01-04T10:00:00Z",
        "author": {"reference": "Practitioner/cm1"},
        "item": [
            {"linkId": "home", "item": [{"linkId": "home.lives-alone", "answer": [{"valueBoolean": True}]}]},
        ],
    },
    u.CARE_GATEWAY_PATIENT: {
        "resourceType": "Patient",
        "meta": {"profile": [u.CARE_GATEWAY_PATIENT]},
        "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": NHS_NUMBER},
            {"system": "https://care-gateway.example.org/source/pas/patient-id", "value": "PAS-1"},
        ],
    },
    u.CASE_MANAGED_FLAG: {
        "resourceType": "Flag",
        "meta": {"profile": [u.CASE_MANAGED_FLAG]},
        "status": "active",
        "code": {"coding": [{"system": ALERT_CODE_SYSTEM, "code": CASE_MANAGED_FLAG}]},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2025-01-03"},
    },
}


@pytest.fixture(scope="session")
def registry() -> ProfileRegistry:
    return default_registry()


@pytest.fixture(scope="session")
def validator(registry: ProfileRegistry) -> Validator:
    return Validator(registry)


@pytest.fixture
def example() -> Callable[[str], JSON]:
    """A fresh, valid copy of the example for a profile URL (tests then break one thing)."""
    return lambda url: copy.deepcopy(EXAMPLES[url])
