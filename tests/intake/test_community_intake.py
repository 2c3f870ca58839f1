"""Community-provider intake through `POST /intake/community` (records and FHIR Bundles) and the CLI,
on SQLite and PostgreSQL: per-record report, one Patient per person, Provenance naming the source."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.fhir.services import Services
from gateway.intake.cli import register_ingest
from gateway.intake.web import install
from gateway.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "community"


@pytest.fixture
async def http(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings, services, components=False)
    install(app, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def current(services: Services, rtype: str) -> list[dict[str, Any]]:
    with services.store.reader() as uow:
        rows, _ = uow.history(rtype, count=1000)
        return [s.json() for s in uow.fetch_many((rtype, i) for i in sorted({r.id for r in rows}))]


def version_count(services: Services) -> int:
    with services.store.reader() as uow:
        return uow.history(count=1)[1]


async def test_records_are_reported_linked_and_a_resend_changes_nothing(
    http: httpx.AsyncClient, services: Services
) -> None:
    data = (FIXTURES / "contact_records.json").read_bytes()
    response = await http.post("/intake/community", content=data, headers={"content-type": "application/json"})
    assert response.status_code == 200
    report = response.json()
    assert report["totals"] == {"records": 7, "accepted": 7, "rejected": 0}
    assert report["records"][0] == {
        "record": 1,
        "record_id": "CN-V-100231",
        "status": "accepted",
        "reasons": [],
        "resource_types": ["Patient", "Encounter"],
    }
    patients = current(services, "Patient")
    # CN-40021 and the 111 caller share an NHS number: one Patient; Bert and Cora are the others.
    assert len(patients) == 3
    ada = next(p for p in patients if "111-5523109" in {i["value"] for i in p["identifier"]})
    subjects = {e["subject"]["reference"] for e in current(services, "Encounter")}
    assert f"Patient/{ada['id']}" in subjects
    assert all(ref.startswith("Patient/") for ref in subjects)
    provenance = current(services, "Provenance")
    assert len(provenance) == 7
    assert all(p["agent"][0]["who"]["reference"].endswith("/source/northtown-community") for p in provenance)
    before = version_count(services)
    again = await http.post("/intake/community", content=data)
    assert again.json() == report
    assert version_count(services) == before


async def test_bad_records_are_rejected_with_reasons_and_the_rest_go_in(
    http: httpx.AsyncClient, services: Services
) -> None:
    response = await http.post("/intake/community", content=(FIXTURES / "contact_records_bad.json").read_bytes())
    report = response.json()
    assert report["totals"]["rejected"] == 5
    assert all(r["reasons"] for r in report["records"])
    assert any("check digit" in reason.lower() for reason in report["records"][0]["reasons"])
    assert current(services, "Encounter") == []
    garbage = await http.post("/intake/community", content=b"{not json")
    assert garbage.status_code == 422
    assert garbage.json()["quarantined"] is True


async def test_a_transaction_bundle_is_resolved_to_one_patient(http: httpx.AsyncClient, services: Services) -> None:
    data = (FIXTURES / "provider_transaction_bundle.json").read_bytes()
    report = (await http.post("/intake/community?source=northtown-community", content=data)).json()
    assert report["format"] == "fhir-bundle"
    assert report["totals"] == {"records": 4, "accepted": 4, "rejected": 0}
    [patient] = current(services, "Patient")
    for rtype in ("Encounter", "ServiceRequest", "CareTeam"):
        [res] = current(services, rtype)
        assert res["subject"] == {"reference": f"Patient/{patient['id']}"}
    # The same file again is answered from its receipt; a new file with the same identified
    # resources updates them in place (unidentified POSTs are new resources, as FHIR create is).
    before = version_count(services)
    assert (await http.post("/intake/community", content=data)).json() == report
    assert version_count(services) == before
    await http.post("/intake/community", content=data + b"\n")
    assert len(current(services, "Patient")) == 1
    assert len(current(services, "Encounter")) == 1


def test_cli_ingests_community_files(
    settings: Settings, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    register_ingest(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ingest", "community", str(FIXTURES / "contact_records.json")])
    assert args.func(args, settings) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert out["totals"]["accepted"] == 7
    assert len(current(services, "Encounter")) == 5
