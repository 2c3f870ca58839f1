"""`GET /api/ward-list` and `care-gateway ward-list` (issue 5, item 6): CSV, FHIR List and Group."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fhir.resources.R4B import get_fhir_model_class

from gateway.alerts.ward_list import CSV_COLUMNS
from gateway.alerts.ward_list_cli import register
from gateway.auth.context import AccessContext
from gateway.fhir.services import Services
from gateway.web.ward_list import install
from tests.alerts.test_ward_list_service import NHS, seed_wards
from tests.conftest import Database, make_settings

URL = "http://testserver/api/ward-list"


@pytest.fixture
async def seeded(app: FastAPI, services: Services, client: httpx.AsyncClient) -> httpx.AsyncClient:
    install(app, services)
    await seed_wards(client)
    return client


async def test_csv_lists_the_wards_current_people(seeded: httpx.AsyncClient) -> None:
    resp = await seeded.get(URL, params={"ward": "north", "format": "csv"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["cache-control"] == "no-store"
    table = list(csv.reader(io.StringIO(resp.text)))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [(r[0], r[2]) for r in table[1:]] == [(NHS["p2"], "Alf Synthetic"), (NHS["p1"], "Bea Synthetic")]


async def test_default_is_a_valid_fhir_list(seeded: httpx.AsyncClient) -> None:
    resp = await seeded.get(URL, params={"ward": "north", "organization": "Organization/acute"})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/fhir+json")
    doc = resp.json()
    get_fhir_model_class("List").model_validate(doc)
    assert [e["item"]["reference"] for e in doc["entry"]] == ["Patient/p2", "Patient/p1"]
    assert doc["id"].startswith("ward-list-north-acute-")
    assert doc["title"] == "north VW: ward list for Organization/acute"


async def test_group_and_all_wards(seeded: httpx.AsyncClient) -> None:
    resp = await seeded.get(URL, params={"format": "fhir-group"})
    group = resp.json()
    get_fhir_model_class("Group").model_validate(group)
    assert group["quantity"] == 3  # both wards; the finished episode and the care package left out
    assert {m["entity"]["reference"] for m in group["member"]} == {"Patient/p1", "Patient/p2", "Patient/p3"}


async def test_unknown_format_is_a_400_outcome(seeded: httpx.AsyncClient) -> None:
    resp = await seeded.get(URL, params={"format": "xml"})
    assert resp.status_code == 400
    assert resp.json()["resourceType"] == "OperationOutcome"


async def test_cli_writes_the_list_to_a_file(seeded: httpx.AsyncClient, tmp_path: Path, database: Database) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    out = tmp_path / "out" / "south.json"
    args = parser.parse_args(["ward-list", "--ward", "south", "--format", "fhir", "--output", str(out)])
    assert args.func(args, make_settings(tmp_path / "cli", database.url)) == 0
    doc = orjson.loads(out.read_bytes())
    assert doc["resourceType"] == "List"
    assert [e["item"]["reference"] for e in doc["entry"]] == ["Patient/p3"]

    csv_out = tmp_path / "north.csv"
    args = parser.parse_args(["ward-list", "--ward", "north", "--format", "csv", "--output", str(csv_out)])
    assert args.func(args, make_settings(tmp_path / "cli", database.url)) == 0
    assert csv_out.read_bytes().count(b"\r\n") == 3  # header + p1 + p2


async def test_an_organisation_cannot_ask_for_another_organisations_view(
    seeded: httpx.AsyncClient, services: Services
) -> None:
    services.authenticate = lambda request: AccessContext(
        client_id="acute-pas", organization="Organization/acute", scopes=frozenset({"system/Patient.rs"})
    )
    assert (await seeded.get(URL, params={"organization": "Organization/ooh"})).status_code == 403
    own = await seeded.get(URL, params={"ward": "south"})
    assert own.status_code == 200
    assert own.json()["id"].startswith("ward-list-south-acute-")
