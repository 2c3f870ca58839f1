"""SMART `patient/` scopes for backend clients (hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
the patient context is fixed at registration, returned in the token response, and confines every
read, search, operation and write to that person's compartment (their linked records included).
Real signed assertions (RS384) against the fully secured gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.app import build_services, create_app
from gateway.auth.assertion import ASSERTION_TYPE
from gateway.auth.clients import ClientError, ClientRepository
from gateway.auth.token_endpoint import TokenEndpoint, auth_router
from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM, build_agreement
from gateway.settings import Settings
from gateway.store.api import Store
from gateway.store.search.query import SearchQuery

ORG = "Organization/trust-a"


@dataclass
class Gw:
    http: httpx.AsyncClient
    store: Store
    clients: ClientRepository
    ids: dict[str, str]
    rsa_key: Any
    kit: Any

    async def token(self, client_id: str, scope: str | None = None) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.rsa_key.sign(self.kit.claims(client_id, now=time.time())),
        }
        if scope is not None:
            form["scope"] = scope
        return await self.http.post("/auth/token", data=form)

    async def as_client(self, client_id: str, scope: str | None = None) -> httpx.AsyncClient:
        response = await self.token(client_id, scope)
        assert response.status_code == 200, response.text
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return self.http


def seed(store: Store) -> dict[str, str]:
    """Person A (two linked records, one per organisation), person B, and their encounters."""
    ids: dict[str, str] = {}
    with store.writer() as uow:
        uow.update(build_agreement(id="isa-trust", recipients=[ORG], purposes=["TREAT"]))
        ids["a"] = uow.create({"resourceType": "Patient", "name": [{"family": "Ashdown"}]}).id
        ids["a2"] = uow.create(
            {
                "resourceType": "Patient",
                "name": [{"family": "Ashdown"}],
                "link": [{"other": {"reference": f"Patient/{ids['a']}"}, "type": "seealso"}],
            }
        ).id
        ids["b"] = uow.create({"resourceType": "Patient", "name": [{"family": "Bellamy"}]}).id
        for key in ("a", "a2", "b"):
            enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
            ids[f"enc-{key}"] = uow.create({**enc, "subject": {"reference": f"Patient/{ids[key]}"}}).id
        ids["org"] = uow.create({"resourceType": "Organization", "name": "Trust A"}).id
    return ids


@pytest.fixture
async def gw(tmp_path: Any, database: Any, rsa_key: Any, kit: Any) -> AsyncIterator[Gw]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database.url,
        base_url=kit.base_url,
        log_level="WARNING",
        mllp_port=0,
        ward_list_push_enabled=False,
    )
    services = build_services(settings)
    app = create_app(settings, services, components=False)
    endpoint = services.extras["auth"]
    assert isinstance(endpoint, TokenEndpoint)
    app.include_router(auth_router(endpoint))
    ids = seed(services.store)
    clients = ClientRepository(services.store.engine)
    jwks = kit.jwks(rsa_key)
    common = {"organization": ORG, "role": "patient-app", "jwks": jwks}
    clients.add(
        client_id="pa",
        name="A's app",
        scopes="patient/*.rs patient/Encounter.c patient/Subscription.c",
        patient=ids["a"],
        **common,
    )
    clients.add(client_id="pa-sys", name="A mixed", scopes="patient/*.rs system/Patient.rs", patient=ids["a"], **common)
    clients.add(client_id="sys", name="System", scopes="system/*.rs", **common)
    clients.add(
        client_id="pa-w", name="A writes", scopes="patient/*.rs patient/Encounter.cud", patient=ids["a"], **common
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=kit.base_url) as http:
        yield Gw(http, services.store, clients, ids, rsa_key, kit)
    for hook in reversed(services.extras.get("shutdown", [])):
        await hook()
    await endpoint.jwks.aclose()
    services.store.engine.dispose()


def entry_ids(bundle: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])}


async def test_token_response_returns_the_patient_context(gw: Gw) -> None:
    response = await gw.token("pa")
    assert response.status_code == 200
    assert response.json()["patient"] == gw.ids["a"]
    assert "patient" not in (await gw.token("sys")).json()
    # asking only for system/ scopes of a patient-bound client gives no patient context
    assert "patient" not in (await gw.token("pa-sys", "system/Patient.rs")).json()


def test_patient_scopes_need_a_patient_at_registration(gw: Gw, kit: Any, rsa_key: Any) -> None:
    common = {"organization": ORG, "role": "r", "jwks": kit.jwks(rsa_key)}
    with pytest.raises(ClientError, match="patient context"):
        gw.clients.add(client_id="x", name="x", scopes="patient/*.rs", **common)
    with pytest.raises(ClientError, match="only meaningful"):
        gw.clients.add(client_id="y", name="y", scopes="system/*.rs", patient="Patient/1", **common)
    with pytest.raises(ClientError, match="Patient id"):
        gw.clients.add(client_id="z", name="z", scopes="patient/*.rs", patient="Group/1", **common)
    assert (
        gw.clients.add(client_id="w", name="w", scopes="patient/*.rs", patient="Patient/p1", **common).patient == "p1"
    )


async def test_reads_reach_the_patient_and_linked_records_only(gw: Gw) -> None:
    http = await gw.as_client("pa")
    assert (await http.get(f"/fhir/Patient/{gw.ids['a']}")).status_code == 200
    assert (await http.get(f"/fhir/Patient/{gw.ids['a2']}")).status_code == 200  # same person, other record
    refused = await http.get(f"/fhir/Patient/{gw.ids['b']}")
    missing = await http.get("/fhir/Patient/no-such-id")
    assert refused.status_code == missing.status_code == 404
    assert refused.text.replace(gw.ids["b"], "ID") == missing.text.replace("no-such-id", "ID")
    assert (await http.get(f"/fhir/Encounter/{gw.ids['enc-b']}")).status_code == 404
    assert (await http.get(f"/fhir/Encounter/{gw.ids['enc-b']}/_history/1")).status_code == 404
    assert (await http.get(f"/fhir/Organization/{gw.ids['org']}")).status_code == 200  # names no patient


async def test_searches_count_and_include_only_the_context(gw: Gw) -> None:
    http = await gw.as_client("pa")
    patients = (await http.get("/fhir/Patient")).json()
    assert patients["total"] == 2 and entry_ids(patients) == {gw.ids["a"], gw.ids["a2"]}
    encounters = (await http.get("/fhir/Encounter?_include=Encounter:patient")).json()
    assert encounters["total"] == 2
    assert entry_ids(encounters) == {gw.ids["enc-a"], gw.ids["enc-a2"], gw.ids["a"], gw.ids["a2"]}
    assert (await http.get("/fhir/Encounter?patient.family=Bellamy")).json()["total"] == 0
    assert (await http.get(f"/fhir/Encounter?subject=Patient/{gw.ids['b']}")).json()["total"] == 0


async def test_operations_are_confined(gw: Gw) -> None:
    http = await gw.as_client("pa")
    assert (await http.get(f"/fhir/Patient/{gw.ids['b']}/$everything")).status_code == 404
    everything = (await http.get(f"/fhir/Patient/{gw.ids['a']}/$everything")).json()
    got = entry_ids(everything)
    assert {gw.ids["a"], gw.ids["a2"], gw.ids["enc-a"], gw.ids["enc-a2"]} <= got
    assert not got & {gw.ids["b"], gw.ids["enc-b"]}


async def test_writes_stay_inside_the_context(gw: Gw) -> None:
    http = await gw.as_client("pa")
    enc = {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}
    mine = await http.post("/fhir/Encounter", json={**enc, "subject": {"reference": f"Patient/{gw.ids['a2']}"}})
    assert mine.status_code == 201
    other = await http.post("/fhir/Encounter", json={**enc, "subject": {"reference": f"Patient/{gw.ids['b']}"}})
    assert other.status_code == 403
    with gw.store.reader() as uow:
        rows = uow.search(SearchQuery("Encounter", count=100)).rows
    from_b = [r for r in rows if r.json()["subject"]["reference"].endswith(gw.ids["b"])]
    assert len(from_b) == 1  # nothing was committed
    sub = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "alerts",
        "criteria": "http://example.org/topic",
        "channel": {"type": "rest-hook", "endpoint": "https://hook.example/x", "payload": "application/fhir+json"},
    }
    refused = await http.post("/fhir/Subscription", json=sub)
    assert refused.status_code == 403 and "patient/ one" in refused.text


async def test_a_put_outside_the_context_answers_like_a_put_to_a_free_id(gw: Gw) -> None:
    """Another person's Encounter id and an id nobody uses get the same answer, so a PUT is no
    oracle for which ids exist; nothing is committed for either."""
    http = await gw.as_client("pa-w")
    enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
    mine = {**enc, "subject": {"reference": f"Patient/{gw.ids['a']}"}}
    theirs = await http.put(f"/fhir/Encounter/{gw.ids['enc-b']}", json={**mine, "id": gw.ids["enc-b"]})
    free = await http.put("/fhir/Encounter/no-such-id", json={**mine, "id": "no-such-id"})
    assert theirs.status_code == free.status_code == 405
    assert theirs.text == free.text
    with gw.store.writer() as uow:
        stored_b = uow.read("Encounter", gw.ids["enc-b"])
        assert stored_b.version_id == 1 and uow.get("Encounter", "no-such-id") is None
        tag = {"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": ORG.split("/")[1]}
        same = {**stored_b.json(), "meta": {"tag": [tag]}}  # as if this organisation had written it
        uow.update(same)
    unchanged = await http.put(f"/fhir/Encounter/{gw.ids['enc-b']}", json=same)  # their exact content: no oracle
    assert unchanged.status_code == 405 and unchanged.text == free.text
    deleted = await http.post("/fhir/Encounter", json=mine)
    assert deleted.status_code == 201
    with gw.store.writer() as uow:
        uow.delete("Encounter", deleted.json()["id"])
    again = await http.put(f"/fhir/Encounter/{deleted.json()['id']}", json={**mine, "id": deleted.json()["id"]})
    assert again.status_code == 405 and again.text == free.text
    # the same in a transaction Bundle
    answers = []
    for rid in (gw.ids["enc-b"], "no-such-id"):
        entry = {"resource": {**mine, "id": rid}, "request": {"method": "PUT", "url": f"Encounter/{rid}"}}
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
        answer = await http.post("/fhir", json=bundle)
        answers.append((answer.status_code, answer.text.replace(rid, "ID")))
    assert answers[0] == answers[1] and answers[0][0] == 405
    # inside the context an update works, and a new content outside it is refused as before
    own = await http.put(
        f"/fhir/Encounter/{gw.ids['enc-a']}", json={**mine, "id": gw.ids["enc-a"], "status": "cancelled"}
    )
    assert own.status_code == 200
    away = {**mine, "id": gw.ids["enc-a"], "subject": {"reference": f"Patient/{gw.ids['b']}"}}
    assert (await http.put(f"/fhir/Encounter/{gw.ids['enc-a']}", json=away)).status_code == 403


async def test_a_wider_scope_is_not_confined(gw: Gw) -> None:
    http = await gw.as_client("pa-sys")
    assert (await http.get(f"/fhir/Patient/{gw.ids['b']}")).status_code == 200  # system/Patient.rs
    assert (await http.get(f"/fhir/Encounter/{gw.ids['enc-b']}")).status_code == 404  # patient/*.rs only


def test_searches_are_narrowed_to_the_record_by_index(gw: Gw) -> None:
    """The patient context becomes an `_id` criterion, so a search reads one record, not the type."""
    from gateway.auth.context import AccessContext
    from gateway.fhir.patient_context import PatientContext

    access = AccessContext(client_id="pa", organization=ORG, scopes=frozenset({"patient/*.rs"}), patient=gw.ids["a"])
    context = PatientContext(access)
    with gw.store.reader() as uow:
        for rtype, expected in (
            ("Encounter", {gw.ids["enc-a"], gw.ids["enc-a2"]}),
            ("Patient", {gw.ids["a"], gw.ids["a2"]}),
            ("Observation", {"__none__"}),
        ):
            narrowed = context.narrow(uow, SearchQuery(rtype))
            assert narrowed.criteria[-1].param.code == "_id"
            assert set(narrowed.criteria[-1].values) == expected
        organization = SearchQuery("Organization")
        assert context.narrow(uow, organization) is organization  # no patient's type: filtered, not narrowed
