"""One person, one record: HL7 v2 and social-care person records without a usable key are matched
on demographics (certain → same Patient, probable → linked Patient + review Task, twins → apart),
through the real HTTP intake on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.fhir.services import Services
from gateway.identity.linking import REVIEW_PROBABLE_MATCH
from gateway.intake.web import install
from gateway.settings import Settings

HOSPITAL_A04 = (
    "MSH|^~\\&|EPIC|Z9X|CAREGW|VWARD|20260714093512||ADT^A04^ADT_A01|HOSP-1|P|2.4\r"
    "EVN|A04|20260714093500\r"
    "PID|1||E1000001^^^EPI^MR~9990000018^^^NHS^NH||PARKER^Alice^^^Mrs^^L||19470312|F|||"
    "12 Willow Lane^^Northtown^^NT1 4AB^GBR^H\r"
    "PV1|1|E|ED^MAJ^CUB4^Z9X" + "|" * 16 + "V1^^^EPI^VN\r"
).encode()


def ambulance_a04(control_id: str, incident: str, family: str, given: str, dob: str, address: str = "") -> bytes:
    """An ambulance crew's registration: its own incident number, no NHS number, typed in a hurry."""
    return (
        f"MSH|^~\\&|AMBCAD|NWAS|CAREGW|VWARD|20260714100000||ADT^A04^ADT_A01|{control_id}|P|2.4\r"
        "EVN|A04|20260714100000\r"
        f"PID|1||{incident}^^^NWAS^MR||{family}^{given}^^^^^L||{dob}|F|||{address}\r"
        "PV1|1|E|AMB^^^NWAS" + "|" * 16 + f"{control_id}^^^NWAS^VN\r"
    ).encode()


@pytest.fixture
def intake_app(settings: Settings, services: Services) -> FastAPI:
    app = create_app(settings, services, components=False)
    install(app, services)
    return app


@pytest.fixture
async def http(intake_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=intake_app), base_url="http://testserver") as c:
        yield c


async def post(http: httpx.AsyncClient, message: bytes) -> str:
    response = await http.post("/intake/hl7v2", content=message)
    assert response.status_code == 200
    return response.content.decode("latin-1").split("\r")[1].split("|")[1]  # MSA-1


def current(services: Services, rtype: str) -> list[dict[str, Any]]:
    with services.store.reader() as uow:
        rows, _ = uow.history(rtype, count=1000)
        return [s.json() for s in uow.fetch_many((rtype, i) for i in sorted({r.id for r in rows}))]


def values(patient: dict[str, Any]) -> set[str]:
    return {i["value"] for i in patient.get("identifier") or []}


async def test_ambulance_a04_with_a_surname_typo_joins_the_existing_patient(
    http: httpx.AsyncClient, services: Services
) -> None:
    assert await post(http, HOSPITAL_A04) == "AA"
    typo = ambulance_a04("AMB-1", "INC-7731", "PARKRE", "Alice", "19470312", "^^^^NT1 4AB")
    assert await post(http, typo) == "AA"
    [patient] = current(services, "Patient")
    assert {"E1000001", "9990000018", "INC-7731"} <= values(patient)
    assert patient["name"][0]["family"] == "PARKER"  # the typo adds nothing
    [hospital, ambulance] = sorted(current(services, "Encounter"), key=lambda e: str(e["identifier"]))
    assert hospital["subject"]["reference"] == ambulance["subject"]["reference"] == f"Patient/{patient['id']}"
    assert current(services, "Task") == []
    # The same crew record sent again changes nothing; a later message finds the Patient by its number.
    assert await post(http, typo) == "AA"
    assert len(current(services, "Patient")) == 1


async def test_a_probable_match_is_a_linked_patient_with_a_review_task(
    http: httpx.AsyncClient, services: Services
) -> None:
    assert await post(http, HOSPITAL_A04) == "AA"
    # Surname typo, day and month transposed, no address: probable, not certain.
    assert await post(http, ambulance_a04("AMB-2", "INC-7732", "PARKRE", "Alice", "19471203")) == "AA"
    patients = {p["id"]: p for p in current(services, "Patient")}
    assert len(patients) == 2
    [new] = [p for p in patients.values() if "INC-7732" in values(p)]
    [old] = [p for p in patients.values() if p is not new]
    assert new["link"] == [{"other": {"reference": f"Patient/{old['id']}"}, "type": "seealso"}]
    [task] = current(services, "Task")
    assert task["code"]["coding"][0]["code"] == REVIEW_PROBABLE_MATCH
    assert task["focus"] == {"reference": f"Patient/{new['id']}"}
    assert task["for"] == {"reference": f"Patient/{old['id']}"}
    assert task["status"] == "requested"
    # The Provenance of the message names the Task it raised.
    targets = {t["reference"].split("/_history")[0] for p in current(services, "Provenance") for t in p["target"]}
    assert f"Task/{task['id']}" in targets


async def test_twins_are_not_linked(http: httpx.AsyncClient, services: Services) -> None:
    assert await post(http, HOSPITAL_A04) == "AA"
    twin = ambulance_a04("AMB-3", "INC-7733", "PARKER", "Edith", "19470312", "^^^^NT1 4AB")
    assert await post(http, twin) == "AA"
    patients = current(services, "Patient")
    assert len(patients) == 2
    assert all("link" not in p for p in patients)
    assert current(services, "Task") == []
