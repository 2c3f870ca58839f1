"""The ward list read from the store (issue 5, item 6): active case-managed episodes only, per ward."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.alerts.registry import EXT_CARE_PLAN, EXT_VIRTUAL_WARD
from gateway.alerts.ward_list_service import (
    WardListConfig,
    current_ward_list,
    parse_hhmm,
    patient_visibility,
    receiver_repository,
    ward_entries,
)
from gateway.auth.context import AccessContext
from gateway.codes import EPISODE_TYPE_SYSTEM, SOCIAL_CARE_PACKAGE, VIRTUAL_WARD
from gateway.fhir.services import Services
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit
from gateway.store.api import StoredResource, UnitOfWork

MRN = "https://acute.example/Id/mrn"
NHS = {pid: with_check_digit(f"99900010{n}") for n, pid in enumerate(["p1", "p2", "p3", "p4", "p5"], start=1)}


def _episode(eid: str, pid: str, ward: str, *, status: str = "active", code: str = VIRTUAL_WARD) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "id": eid,
        "extension": [
            {"url": EXT_VIRTUAL_WARD, "valueReference": {"reference": f"Location/{ward}", "display": f"{ward} VW"}},
            {"url": EXT_CARE_PLAN, "valueReference": {"reference": f"CarePlan/cp-{pid}"}},
        ],
        "status": status,
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": code}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "managingOrganization": {"reference": "Organization/community"},
        "period": {"start": "2026-01-10"},
        "careManager": {"reference": "Practitioner/cm1"},
        "team": [{"reference": "CareTeam/team-north" if ward == "north" else "CareTeam/team-south"}],
    }


def _patient(pid: str, given: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": NHS[pid]}, {"system": MRN, "value": f"H-{pid}"}],
        "name": [{"use": "official", "given": [given], "family": "Synthetic"}],
        "birthDate": "1941-02-03",
    }


def seed_resources() -> list[dict[str, Any]]:
    """Two wards: north (p1, p2; p4's episode finished), south (p3); p5 only has a social care package."""
    resources: list[dict[str, Any]] = [
        _patient("p1", "Bea"),
        _patient("p2", "Alf"),
        _patient("p3", "Cy"),
        _patient("p4", "Dot"),
        _patient("p5", "Eve"),
        {"resourceType": "Organization", "id": "community", "name": "Community Trust"},
        {"resourceType": "Practitioner", "id": "cm1", "name": [{"given": ["Casey"], "family": "Manager"}]},
        {"resourceType": "Location", "id": "north", "name": "North VW", "status": "active"},
        {"resourceType": "Location", "id": "south", "name": "South VW", "status": "active"},
    ]
    for ward, phone in (("north", "0300 000 0001"), ("south", "0300 000 0002")):
        resources.append(
            {
                "resourceType": "CareTeam",
                "id": f"team-{ward}",
                "status": "active",
                "telecom": [{"system": "phone", "value": phone}],
            }
        )
    resources += [
        _episode("e1", "p1", "north"),
        _episode("e2", "p2", "north"),
        _episode("e3", "p3", "south"),
        _episode("e4", "p4", "north", status="finished"),
        _episode("e5", "p5", "north", code=SOCIAL_CARE_PACKAGE),
    ]
    return resources


async def seed_wards(client: httpx.AsyncClient) -> None:
    """Write the seed through the REST API (so it is validated and indexed like any client's data)."""
    for res in seed_resources():
        resp = await client.put(f"/{res['resourceType']}/{res['id']}", json=res)
        assert resp.status_code in (200, 201), resp.text


NOW = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)


async def test_entries_are_active_case_managed_episodes_per_ward(client: httpx.AsyncClient, services: Services) -> None:
    await seed_wards(client)
    with services.store.reader() as uow:
        north = ward_entries(uow, ward="north", now=NOW)
        every = ward_entries(uow, ward=None, now=NOW)
        by_location_ref = ward_entries(uow, ward="Location/south", now=NOW)
        other_org = ward_entries(uow, ward=None, organization="Organization/elsewhere", now=NOW)
    assert [e.episode_id for e in north] == ["e1", "e2"]  # e4 finished, e5 not case-managed
    assert [(e.ward_id, e.patient_id) for e in every] == [("north", "p1"), ("north", "p2"), ("south", "p3")]
    assert [e.patient_id for e in by_location_ref] == ["p3"]
    assert other_org == []


async def test_rows_carry_people_and_team_contact_and_respect_visible(
    client: httpx.AsyncClient, services: Services
) -> None:
    await seed_wards(client)
    with services.store.reader() as uow:
        rows = current_ward_list(uow, ward="north", visible=lambda pid: True, now=NOW)
        hidden = current_ward_list(uow, ward="north", visible=lambda pid: pid != "p2", now=NOW)
    assert [(r.patient_id, r.name) for r in rows] == [("p2", "Alf Synthetic"), ("p1", "Bea Synthetic")]
    bea = rows[1]
    assert (bea.nhs_number, bea.hospital_numbers, bea.ward) == (NHS["p1"], "H-p1", "north VW")
    assert (bea.case_manager, bea.contact, bea.care_plan_id) == ("Casey Manager", "0300 000 0001", "cp-p1")
    assert [r.patient_id for r in hidden] == ["p1"]


def test_config_reads_extras_then_defaults() -> None:
    default = WardListConfig.from_sources(object(), {})
    assert (default.push_time.isoformat("minutes"), default.timezone) == ("20:00", "Europe/London")
    conf = WardListConfig.from_sources(
        object(), {"ward_list_push_time": "21:15", "ward_list_receivers": "Organization/a, Organization/b"}
    )
    assert conf.push_time == parse_hhmm("21:15")
    assert conf.receivers == ("Organization/a", "Organization/b")


class HideGuard:
    """A guard that withholds one Patient from one organisation (stands in for the consent engine)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str | None, list[str]]] = []

    def allow(self, access: AccessContext, interaction: str, rtype: str) -> None:
        return None

    def visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: list[StoredResource],
        *,
        interaction: str = "read",
        query: str | None = None,
    ) -> list[StoredResource]:
        self.asked.append((access.organization, [r.id for r in rows]))
        return [r for r in rows if not (access.organization == "Organization/acute" and r.id == "p2")]


async def test_visibility_is_decided_for_the_receiving_organisation_in_one_call(
    client: httpx.AsyncClient, services: Services
) -> None:
    await seed_wards(client)
    guard = HideGuard()
    repo = receiver_repository(services.store, "Organization/acute", guard)
    assert not repo.access.is_system
    with services.store.reader() as uow:
        entries = ward_entries(uow, ward="north", now=NOW)
        visible = patient_visibility(repo, uow, [e.patient_id for e in entries])
        rows = current_ward_list(uow, ward="north", visible=visible, entries=entries)
    assert [r.patient_id for r in rows] == ["p1"]
    assert guard.asked == [("Organization/acute", ["p1", "p2"])]
