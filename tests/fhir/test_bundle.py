"""transaction and batch Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

import httpx

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def tx(entries: list[dict[str, object]], kind: str = "transaction") -> dict[str, object]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


async def test_transaction_rewrites_urn_uuid_references(client: httpx.AsyncClient) -> None:
    bundle = tx(
        [
            {
                "fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
                "resource": {"resourceType": "Patient", "identifier": [{"system": NHS_SYSTEM, "value": "9990000018"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "status": "in-progress",
                    "class": {"code": "EMER"},
                    "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"},
                },
                "request": {"method": "POST", "url": "Encounter"},
            },
        ]
    )
    response = await client.post("", json=bundle)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created", "201 Created"]
    patient_id = result["entry"][0]["resource"]["id"]
    assert result["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert (await client.get(f"/Encounter?patient={patient_id}")).json()["total"] == 1


async def test_transaction_is_all_or_nothing(client: httpx.AsyncClient) -> None:
    bundle = tx(
        [
            {
                "resource": {"resourceType": "Patient", "gender": "female"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {"resourceType": "Patient", "birthDate": "not-a-date"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ]
    )
    response = await client.post("", json=bundle)
    assert response.status_code == 422
    assert "entry 1" in response.json()["issue"][0]["diagnostics"]
    assert (await client.get("/Patient")).json()["total"] == 0
    assert (await client.get("/_history")).json()["total"] == 0


async def test_transaction_conditional_entries(client: httpx.AsyncClient) -> None:
    def entry() -> dict[str, object]:
        return {
            "fullUrl": "urn:uuid:22222222-2222-4222-8222-222222222222",
            "resource": {"resourceType": "Patient", "identifier": [{"system": NHS_SYSTEM, "value": "9990000085"}]},
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={NHS_SYSTEM}|9990000085"},
        }

    flag = {
        "resource": {
            "resourceType": "Flag",
            "status": "active",
            "code": {"text": "case-managed"},
            "subject": {"reference": f"Patient?identifier={NHS_SYSTEM}|9990000085"},
        },
        "request": {"method": "PUT", "url": "Flag?identifier=urn:x|flag-1"},
    }
    first = (await client.post("", json=tx([entry()]))).json()
    second = (await client.post("", json=tx([entry(), flag]))).json()
    assert first["entry"][0]["response"]["status"] == "201 Created"
    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert second["entry"][0]["resource"]["id"] == first["entry"][0]["resource"]["id"]
    assert second["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{first['entry'][0]['resource']['id']}"
    assert (await client.get("/Patient")).json()["total"] == 1


async def test_batch_entries_fail_independently(client: httpx.AsyncClient) -> None:
    bundle = tx(
        [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"request": {"method": "GET", "url": "Patient/missing"}},
            {
                "resource": {"resourceType": "Patient", "birthDate": "x"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
        "batch",
    )
    result = (await client.post("", json=bundle)).json()
    assert result["type"] == "batch-response"
    assert [e["response"]["status"][:3] for e in result["entry"]] == ["201", "404", "422"]
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert (await client.get("/Patient")).json()["total"] == 1


async def test_bad_bundles(client: httpx.AsyncClient) -> None:
    assert (await client.post("", json={"resourceType": "Patient"})).status_code == 400
    assert (await client.post("", json={"resourceType": "Bundle", "type": "collection"})).status_code == 400
    missing = tx([{"resource": {"resourceType": "Patient"}, "request": {"method": "POST"}}])
    assert (await client.post("", json=missing)).status_code == 400


async def test_batch_search_entry_is_a_searchset(client: httpx.AsyncClient) -> None:
    await client.post("/Patient", json={"resourceType": "Patient", "gender": "female"})
    await client.post("/Patient", json={"resourceType": "Patient", "gender": "male"})
    result = (
        await client.post("", json=tx([{"request": {"method": "GET", "url": "Patient?gender=female"}}], "batch"))
    ).json()
    found = result["entry"][0]["resource"]
    assert found["type"] == "searchset" and found["total"] == 1
    assert found["entry"][0]["resource"]["gender"] == "female"
