"""Bulk Data export on the fully secured gateway, with real access tokens from the token endpoint:
status and file URLs answer only the client that kicked the export off, and a `patient/`-scoped
client exports only its patient's compartment. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from gateway.app import build_services, create_app
from gateway.auth.clients import ClientRepository
from gateway.auth.token_endpoint import TokenEndpoint, auth_router
from gateway.consent.agreements import build_agreement
from gateway.fhir.export.jobs import ExportJobs
from gateway.fhir.export.web import exports_of
from gateway.settings import Settings

BASE = "https://gw.example"
ORG = "Organization/trust-a"
SECRET = "a-long-enough-test-secret-0123456789"


@dataclass
class Gw:
    http: httpx.AsyncClient
    jobs: ExportJobs
    ids: dict[str, str]

    async def headers(self, client_id: str) -> dict[str, str]:
        got = await self.http.post("/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, SECRET))
        assert got.status_code == 200, got.text
        return {"Authorization": f"Bearer {got.json()['access_token']}"}

    def local(self, url: str) -> str:
        assert url.startswith(BASE)
        return url[len(BASE) :]


@pytest.fixture
async def gw(tmp_path: Any, database: Any) -> AsyncIterator[Gw]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database.url,
        base_url=BASE,
        log_level="WARNING",
        mllp_port=0,
        ward_list_push_enabled=False,
    )
    services = build_services(settings)
    app = create_app(settings, services, components=False)
    endpoint = services.extras["auth"]
    assert isinstance(endpoint, TokenEndpoint)
    app.include_router(auth_router(endpoint))
    ids: dict[str, str] = {}
    with services.store.writer() as uow:
        uow.update(build_agreement(id="isa-trust", recipients=[ORG], purposes=["TREAT"]))
        ids["a"] = uow.create({"resourceType": "Patient", "gender": "female"}).id
        link = [{"other": {"reference": f"Patient/{ids['a']}"}, "type": "seealso"}]
        ids["a2"] = uow.create({"resourceType": "Patient", "gender": "female", "link": link}).id
        ids["b"] = uow.create({"resourceType": "Patient", "gender": "male"}).id
        for key in ("a", "a2", "b"):
            enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
            ids[f"enc-{key}"] = uow.create({**enc, "subject": {"reference": f"Patient/{ids[key]}"}}).id
    clients = ClientRepository(services.store.engine)
    for cid, scope, patient in (
        ("exporter", "system/*.rs", None),
        ("other", "system/*.rs", None),
        ("patient-app", "patient/*.rs", ids["a"]),
    ):
        clients.add(client_id=cid, name=cid, organization=ORG, role="r", scopes=scope, secret=SECRET, patient=patient)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield Gw(http, exports_of(services), ids)
    for hook in reversed(services.extras.get("shutdown", [])):
        await hook()
    await endpoint.jwks.aclose()
    services.store.engine.dispose()


async def run(gw: Gw, client_id: str, path: str) -> tuple[httpx.Response, dict[str, Any]]:
    headers = await gw.headers(client_id)
    kicked = await gw.http.get(path, headers={**headers, "Prefer": "respond-async"})
    assert kicked.status_code == 202, kicked.text
    gw.jobs.wait(kicked.headers["content-location"].rsplit("=", 1)[1], timeout=60)
    status = await gw.http.get(gw.local(kicked.headers["content-location"]), headers=headers)
    assert status.status_code == 200, status.text
    return kicked, status.json()


async def test_urls_answer_only_the_client_that_asked(gw: Gw) -> None:
    kicked, manifest = await run(gw, "exporter", "/fhir/$export?_type=Patient")
    status_path = gw.local(kicked.headers["content-location"])
    file_path = gw.local(manifest["output"][0]["url"])
    mine, theirs = await gw.headers("exporter"), await gw.headers("other")
    assert (await gw.http.get(file_path, headers=mine)).status_code == 200
    missing = await gw.http.get("/fhir/$export-poll-status?_jobId=" + "f" * 32, headers=theirs)
    for response in (
        await gw.http.get(status_path, headers=theirs),
        await gw.http.get(file_path, headers=theirs),
        await gw.http.delete(status_path, headers=theirs),
    ):
        assert response.status_code == 404 and response.text == missing.text
    assert (await gw.http.get(status_path)).status_code == 401  # no token at all
    assert (await gw.http.get(file_path)).status_code == 401
    assert (await gw.http.get(status_path, headers=mine)).status_code == 200  # untouched by the attempts


async def test_a_patient_scoped_client_exports_its_patient_only(gw: Gw) -> None:
    _, manifest = await run(gw, "patient-app", "/fhir/Patient/$export")
    headers = await gw.headers("patient-app")
    got: dict[str, set[str]] = {}
    for item in manifest["output"]:
        body = (await gw.http.get(gw.local(item["url"]), headers=headers)).content
        got[item["type"]] = {orjson.loads(line)["id"] for line in body.splitlines()}
    ids = gw.ids
    assert got == {"Patient": {ids["a"], ids["a2"]}, "Encounter": {ids["enc-a"], ids["enc-a2"]}}
