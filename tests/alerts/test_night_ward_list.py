"""Night-shift ward list (issue 5, item 6): List, Group and CSV, filtered by what the receiver may see."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from gateway.alerts.registry import CaseManagedEntry
from gateway.alerts.ward_list import CSV_COLUMNS, to_csv, to_fhir_list, to_group, ward_rows
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit

NOW = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
HOSPITAL = "https://acute.example/Id/mrn"
NHS_A = with_check_digit("999000001")
NHS_B = with_check_digit("999000002")


def entry(pid: str, since: str = "2026-01-05") -> CaseManagedEntry:
    return CaseManagedEntry(
        patient_id=pid,
        episode_id=f"ep-{pid}",
        episode_type="virtual-ward",
        ward_id="ward-north",
        ward_name="North Virtual Ward",
        care_manager="Practitioner/cm1",
        teams=("CareTeam/team1",),
        care_plan=f"CarePlan/cp-{pid}",
        since=since,
    )


def patient(pid: str, given: str, family: str, nhs: str | None, mrn: str | None) -> dict[str, Any]:
    identifiers = []
    if nhs:
        identifiers.append({"system": NHS_NUMBER_SYSTEM, "value": nhs})
    if mrn:
        identifiers.append({"system": HOSPITAL, "value": mrn})
        identifiers.append({"system": "https://other.example/Id/mrn", "value": "X9"})
    resource = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": identifiers,
        "name": [{"use": "official", "given": [given], "family": family}],
        "birthDate": "1940-05-17",
    }
    get_fhir_model_class("Patient").model_validate(resource)
    return resource


PATIENTS = {
    "p1": patient("p1", "Zed", "Synthetic", NHS_A, "H100"),
    "p2": patient("p2", "Ada", "Synthetic", NHS_B, None),
    "p3": patient("p3", "Hidden", "Synthetic", None, "H300"),
}
MANAGERS = {"Practitioner/cm1": {"resourceType": "Practitioner", "name": [{"text": "Alex Example"}]}}
TEAMS = {"CareTeam/team1": {"resourceType": "CareTeam", "telecom": [{"system": "phone", "value": "0300 000 0999"}]}}


def rows() -> list[Any]:
    return ward_rows(
        [entry("p1"), entry("p2", "2026-02-01T09:00:00Z"), entry("p3"), entry("p-unknown")],
        patients=PATIENTS,
        care_managers=MANAGERS,
        teams=TEAMS,
        visible=lambda pid: pid != "p3",
        hospital_number_systems={HOSPITAL},
    )


def test_rows_leave_out_people_the_receiver_may_not_see() -> None:
    result = rows()
    assert [r.patient_id for r in result] == ["p2", "p1"]  # sorted by name; p3 hidden; unknown skipped
    zed = result[1]
    assert (zed.nhs_number, zed.hospital_numbers, zed.name) == (NHS_A, "H100", "Zed Synthetic")
    assert (zed.case_manager, zed.contact, zed.care_plan_id) == ("Alex Example", "0300 000 0999", "cp-p1")
    assert result[0].enrolled_since == "2026-02-01"


def test_csv_has_documented_columns() -> None:
    text = to_csv(rows())
    assert text.startswith(",".join(CSV_COLUMNS) + "\r\n")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["nhs_number"] for r in parsed] == [NHS_B, NHS_A]
    assert parsed[1] == {
        "nhs_number": NHS_A,
        "hospital_numbers": "H100",
        "name": "Zed Synthetic",
        "birth_date": "1940-05-17",
        "ward": "North Virtual Ward",
        "case_manager": "Alex Example",
        "contact": "0300 000 0999",
        "care_plan_id": "cp-p1",
        "enrolled_since": "2026-01-05",
    }
    assert "Hidden" not in text and "H300" not in text


def test_fhir_list_and_group_hold_only_visible_members() -> None:
    listing = to_fhir_list(
        rows(),
        ward_id="ward-north",
        ward_name="North Virtual Ward",
        organisation_ref="Organization/acute-trust",
        source_ref="Device/care-gateway",
        now=NOW,
    )
    group = to_group(
        rows(),
        ward_id="ward-north",
        ward_name="North Virtual Ward",
        organisation_ref="Organization/acute-trust",
        now=NOW,
    )
    get_fhir_model_class("List").model_validate(listing)
    get_fhir_model_class("Group").model_validate(group)
    assert listing["id"] == "ward-list-ward-north-acute-trust-20260301"
    assert [e["item"]["reference"] for e in listing["entry"]] == ["Patient/p2", "Patient/p1"]
    assert (listing["status"], listing["mode"]) == ("current", "snapshot")
    assert (group["actual"], group["quantity"]) == (True, 2)
    assert [m["entity"]["reference"] for m in group["member"]] == ["Patient/p2", "Patient/p1"]


def test_empty_ward_list_is_valid() -> None:
    listing = to_fhir_list(
        [], ward_id="w", ward_name="W", organisation_ref="Organization/o", source_ref="Device/gw", now=NOW
    )
    get_fhir_model_class("List").model_validate(listing)
    assert "entry" not in listing
    assert listing["emptyReason"]["coding"][0]["code"] == "nilknown"
    assert to_csv([]) == ",".join(CSV_COLUMNS) + "\r\n"
