"""Alert content (issue 5, item 3): Flag, Communication, discharge Task and their retraction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from gateway.alerts.content import (
    alert_ids,
    build_alert,
    build_communication,
    build_discharge_task,
    build_flag,
    end_flag,
    retract,
)
from gateway.alerts.reasoning import from_extension
from gateway.alerts.registry import EXT_CARE_PLAN, CaseManagedEntry
from gateway.alerts.rules import PRESENTATION_KEY_SYSTEM, Presentation, detect_presentation
from gateway.codes import (
    ALERT_CODE_SYSTEM,
    CASE_MANAGED_FLAG,
    EARLY_DISCHARGE_PLANNING,
    PRESENTATION_ALERT,
    V3_ACT_CODE,
)

NOW = datetime(2026, 3, 1, 2, 11, tzinfo=UTC)
AUTHOR = "Device/care-gateway"
ENTRY = CaseManagedEntry(
    patient_id="p1",
    episode_id="ep1",
    episode_type="virtual-ward",
    ward_id="ward-north",
    ward_name="North Virtual Ward",
    care_manager="Practitioner/cm1",
    teams=("CareTeam/team1",),
    care_plan="CarePlan/cp1",
)
MANAGER = {
    "resourceType": "Practitioner",
    "id": "cm1",
    "name": [{"given": ["Alex"], "family": "Example"}],
    "telecom": [{"system": "email", "value": "alex@example.org"}, {"system": "phone", "value": "0300 000 0001"}],
}
TEAM = {
    "resourceType": "CareTeam",
    "id": "team1",
    "telecom": [{"system": "phone", "value": "0300 000 0999"}],
}


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def presentation(cls: str = "EMER", eid: str = "enc1") -> Presentation:
    enc = {
        "resourceType": "Encounter",
        "id": eid,
        "status": "in-progress",
        "class": {"system": V3_ACT_CODE, "code": cls},
        "subject": {"reference": "Patient/hosp-123"},
        "serviceProvider": {"reference": "Organization/acute-trust", "display": "Acute Trust"},
        "period": {"start": "2026-03-01T02:10:00+00:00"},
    }
    result = detect_presentation(enc)
    assert isinstance(result, Presentation)
    return result


def test_flag_tells_the_presenting_service_who_to_call() -> None:
    p = presentation()
    flag = valid(build_flag(ENTRY, p, MANAGER, author_ref=AUTHOR, now=NOW, team=TEAM))
    assert flag["id"] == alert_ids(p.dedupe_key).flag
    assert flag["identifier"] == [{"system": PRESENTATION_KEY_SYSTEM, "value": p.dedupe_key}]
    assert flag["status"] == "active"
    assert flag["code"]["coding"][0] == {
        "system": ALERT_CODE_SYSTEM,
        "code": CASE_MANAGED_FLAG,
        "display": "Case-managed",
    }
    assert flag["code"]["text"] == (
        "case-managed on North Virtual Ward, case manager Alex Example, contact 0300 000 0999"
    )
    assert flag["subject"] == {"reference": "Patient/hosp-123"}
    assert flag["period"] == {"start": "2026-03-01T02:10:00+00:00"}
    assert flag["author"] == {"reference": AUTHOR}
    assert flag["extension"] == [{"url": EXT_CARE_PLAN, "valueReference": {"reference": "CarePlan/cp1"}}]


def test_flag_contact_falls_back_to_case_managers_phone() -> None:
    flag = build_flag(ENTRY, presentation(), MANAGER, "CarePlan/other", author_ref=AUTHOR, now=NOW)
    assert flag["code"]["text"].endswith("case manager Alex Example, contact 0300 000 0001")
    assert flag["extension"][0]["valueReference"] == {"reference": "CarePlan/other"}


def test_communication_goes_to_case_manager_and_team_from_presenting_org() -> None:
    p = presentation()
    comm = valid(build_communication(ENTRY, p, author_ref=AUTHOR, now=NOW))
    assert comm["id"] == alert_ids(p.dedupe_key).communication
    assert comm["identifier"][0]["value"] == p.dedupe_key
    assert comm["category"][0]["coding"][0] == {"system": ALERT_CODE_SYSTEM, "code": PRESENTATION_ALERT}
    assert comm["recipient"] == [{"reference": "Practitioner/cm1"}, {"reference": "CareTeam/team1"}]
    assert comm["sender"] == {"reference": "Organization/acute-trust"}
    assert comm["subject"] == {"reference": "Patient/p1"}
    assert {"reference": "Encounter/enc1"} in comm["about"]
    assert comm["payload"][0]["contentString"] == (
        "A person on North Virtual Ward has presented: A&E attendance at Acute Trust at 2026-03-01T02:10:00+00:00."
    )
    assert "extension" not in comm


def test_admission_opens_early_discharge_planning() -> None:
    p = presentation("IMP")
    task = valid(build_discharge_task(ENTRY, p, author_ref=AUTHOR, now=NOW))
    assert task["id"] == alert_ids(p.dedupe_key).task
    assert (task["status"], task["intent"]) == ("requested", "plan")
    assert task["code"]["coding"][0]["code"] == EARLY_DISCHARGE_PLANNING
    assert task["for"] == {"reference": "Patient/p1"}
    assert task["owner"] == {"reference": "Practitioner/cm1"}
    assert task["focus"] == {"reference": "Encounter/enc1"}
    assert task["basedOn"] == [{"reference": "CarePlan/cp1"}]


def test_build_alert_adds_task_only_for_admissions() -> None:
    ae = build_alert(ENTRY, presentation("EMER"), MANAGER, author_ref=AUTHOR, now=NOW)
    admitted = build_alert(ENTRY, presentation("IMP"), MANAGER, author_ref=AUTHOR, now=NOW)
    assert [r["resourceType"] for r in ae] == ["Flag", "Communication"]
    assert [r["resourceType"] for r in admitted] == ["Flag", "Communication", "Task"]
    assert "early discharge planning" in admitted[1]["payload"][0]["contentString"]


def test_same_visit_builds_identical_alert_and_a_new_visit_does_not() -> None:
    later = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    first = build_alert(ENTRY, presentation("IMP"), MANAGER, author_ref=AUTHOR, now=NOW)
    repeat = build_alert(ENTRY, presentation("IMP"), MANAGER, author_ref=AUTHOR, now=later)
    other = build_alert(ENTRY, presentation("IMP", eid="enc2"), MANAGER, author_ref=AUTHOR, now=NOW)
    assert [r["id"] for r in first] == [r["id"] for r in repeat]
    assert first[0] == repeat[0]  # the Flag carries no clock of its own
    assert not {r["id"] for r in first} & {r["id"] for r in other}


def test_retract_cancels_every_part_and_is_idempotent() -> None:
    alert = build_alert(ENTRY, presentation("IMP"), MANAGER, author_ref=AUTHOR, now=NOW)
    once = [valid(r) for r in retract(alert, reason="ADT A11 cancel admit", now=NOW)]
    flag, comm, task = once
    assert (flag["status"], flag["period"]["end"]) == ("entered-in-error", "2026-03-01T02:11:00+00:00")
    assert comm["status"] == "entered-in-error"
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", "ADT A11 cancel admit")
    assert alert[0]["status"] == "active"  # inputs untouched
    assert retract(once, reason="again", now=NOW)[0] == flag


def test_end_flag_when_episode_closes() -> None:
    flag = build_flag(ENTRY, presentation(), MANAGER, author_ref=AUTHOR, now=NOW)
    ended = valid(end_flag(flag, now=NOW))
    assert (ended["status"], ended["period"]["end"]) == ("inactive", "2026-03-01T02:11:00+00:00")


def test_communication_without_reasoning_reads_back_none() -> None:
    comm = build_communication(ENTRY, presentation(), author_ref=AUTHOR, now=NOW)
    assert from_extension(comm) is None
