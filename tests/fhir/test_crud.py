"""REST contract: read, vread, create, update, delete, history, conditional ops, headers, Prefer.

https://hl7.org/fhir/R4/http.html — run on SQLite and on the real PostgreSQL.
"""

from __future__ import annotations

import httpx

from gateway.identity.nhs_number import with_check_digit

NHS = with_check_digit("999123456") or "9991234560"


def patient(family: str = "Testperson", **extra: object) -> dict[str, object]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
        "name": [{"family": family, "given": ["Alex"]}],
        "gender": "female",
        "birthDate": "1950-04-03",
        **extra,
    }


async def test_create_read_vread_headers(client: httpx.AsyncClient) -> None:
    created = await client.post("/Patient", json=patient())
    assert created.status_code == 201
    assert created.headers["content-type"].startswith("application/fhir+json")
    body = created.json()
    rid = body["id"]
    assert body["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(f"/fhir/Patient/{rid}/_history/1")
    assert "Last-Modified" in created.headers

    read = await client.get(f"/Patient/{rid}")
    assert read.status_code == 200
    assert read.json()["name"][0]["family"] == "Testperson"
    assert read.headers["ETag"] == 'W/"1"'

    vread = await client.get(f"/Patient/{rid}/_history/1")
    assert vread.status_code == 200 and vread.json()["meta"]["versionId"] == "1"
    assert (await client.get(f"/Patient/{rid}/_history/9")).status_code == 404


async def test_server_assigns_id_on_create(client: httpx.AsyncClient) -> None:
    created = await client.post("/Patient", json={**patient(), "id": "client-chosen"})
    assert created.status_code == 201
    assert created.json()["id"] != "client-chosen"


async def test_update_if_match_and_history(client: httpx.AsyncClient) -> None:
    rid = (await client.post("/Patient", json=patient())).json()["id"]
    updated = await client.put(f"/Patient/{rid}", json={**patient("Renamed"), "id": rid}, headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200
    assert updated.json()["meta"]["versionId"] == "2"
    stale = await client.put(f"/Patient/{rid}", json={**patient("Stale"), "id": rid}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert (await client.get(f"/Patient/{rid}")).json()["name"][0]["family"] == "Renamed"

    history = (await client.get(f"/Patient/{rid}/_history")).json()
    assert history["type"] == "history" and history["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert history["entry"][1]["request"]["method"] == "POST"


async def test_identical_update_makes_no_new_version(client: httpx.AsyncClient) -> None:
    rid = (await client.post("/Patient", json=patient())).json()["id"]
    again = await client.put(f"/Patient/{rid}", json={**patient(), "id": rid})
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "1"


async def test_create_on_update(client: httpx.AsyncClient) -> None:
    made = await client.put("/Patient/chosen-1", json={**patient(), "id": "chosen-1"})
    assert made.status_code == 201
    assert (await client.get("/Patient/chosen-1")).status_code == 200


async def test_delete_tombstone_gone_and_history(client: httpx.AsyncClient) -> None:
    rid = (await client.post("/Patient", json=patient())).json()["id"]
    assert (await client.delete(f"/Patient/{rid}")).status_code == 204
    gone = await client.get(f"/Patient/{rid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    history = (await client.get(f"/Patient/{rid}/_history")).json()
    assert history["total"] == 2
    assert history["entry"][0]["request"]["method"] == "DELETE" and "resource" not in history["entry"][0]
    assert (await client.get(f"/Patient/{rid}/_history/1")).status_code == 200
    assert (await client.delete("/Patient/never-existed")).status_code == 204
    assert (await client.get("/Patient?_id=" + rid)).json()["total"] == 0


async def test_type_and_system_history(client: httpx.AsyncClient) -> None:
    await client.post("/Patient", json=patient())
    await client.post("/Organization", json={"resourceType": "Organization", "name": "Org"})
    assert (await client.get("/Patient/_history")).json()["total"] == 1
    assert (await client.get("/_history")).json()["total"] == 2


async def test_conditional_create(client: httpx.AsyncClient) -> None:
    header = {"If-None-Exist": f"identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}"}
    first = await client.post("/Patient", json=patient(), headers=header)
    second = await client.post("/Patient", json=patient("Other"), headers=header)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    await client.put(f"/Patient/dup-{NHS}", json={**patient(), "id": f"dup-{NHS}"})
    third = await client.post("/Patient", json=patient(), headers=header)
    assert third.status_code == 412


async def test_conditional_update(client: httpx.AsyncClient) -> None:
    url = f"/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS}"
    made = await client.put(url, json=patient())
    assert made.status_code == 201
    changed = await client.put(url, json=patient("Changed"))
    assert changed.status_code == 200
    assert changed.json()["id"] == made.json()["id"] and changed.json()["meta"]["versionId"] == "2"


async def test_prefer_return(client: httpx.AsyncClient) -> None:
    minimal = await client.post("/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and "Location" in minimal.headers
    oo = await client.post("/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert oo.json()["resourceType"] == "OperationOutcome"


async def test_errors_are_operation_outcomes(client: httpx.AsyncClient) -> None:
    cases = [
        (await client.post("/Patient", content=b"{not json", headers={"content-type": "application/fhir+json"}), 400),
        (await client.post("/Unicorn", json={"resourceType": "Unicorn"}), 404),
        (await client.post("/Patient", json={"resourceType": "Organization", "name": "x"}), 400),
        (await client.put("/Patient/a", json={**patient(), "id": "b"}), 400),
        (await client.post("/Patient", json={**patient(), "birthDate": "03/04/1950"}), 422),
        (await client.get("/Patient/does-not-exist"), 404),
        (await client.get("/Patient?unknown-param=1", headers={"Prefer": "handling=strict"}), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["resourceType"] == "OperationOutcome"
    invalid = (await client.post("/Patient", json={**patient(), "birthDate": "03/04/1950"})).json()
    assert invalid["issue"][0]["expression"] == ["Patient.birthDate"]
    assert (await client.get("/Patient")).json()["total"] == 0  # no 4xx wrote anything


async def test_oversize_body_is_413(client: httpx.AsyncClient, services: object) -> None:
    big = patient(text={"status": "generated", "div": "<div>" + "x" * (11 * 1024 * 1024) + "</div>"})
    response = await client.post("/Patient", json=big)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"


async def test_metadata(client: httpx.AsyncClient) -> None:
    cap = (await client.get("/metadata")).json()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    types = {r["type"]: r for r in cap["rest"][0]["resource"]}
    for rtype in ("Patient", "Encounter", "EpisodeOfCare", "CarePlan", "CareTeam", "Consent", "Flag", "Basic"):
        assert rtype in types
    assert {"name": "identifier", "definition": types["Patient"]["searchParam"][0]["definition"], "type": "token"}
    assert any(p["name"] == "identifier" for p in types["Patient"]["searchParam"])


async def test_health_and_ready(app: object) -> None:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).json() == {"status": "ready"}
