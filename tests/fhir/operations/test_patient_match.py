"""Patient/$match over the stored Patients (https://hl7.org/fhir/R4/patient-operation-match.html)."""

from __future__ import annotations

import httpx

from gateway.codes import MATCH_GRADE_EXT, NHS_NUMBER_SYSTEM


def person(given: str, family: str, dob: str, postcode: str, nhs: str | None = None) -> dict[str, object]:
    res: dict[str, object] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "birthDate": dob,
        "gender": "female",
        "address": [{"postalCode": postcode}],
    }
    if nhs:
        res["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]
    return res


def params(resource: dict[str, object], **extra: object) -> dict[str, object]:
    parameter: list[dict[str, object]] = [{"name": "resource", "resource": resource}]
    if "only_certain" in extra:
        parameter.append({"name": "onlyCertainMatches", "valueBoolean": extra["only_certain"]})
    return {"resourceType": "Parameters", "parameter": parameter}


async def test_match_finds_the_person_without_an_nhs_number(client: httpx.AsyncClient) -> None:
    target = (
        await client.post("/Patient", json=person("Margaret", "Hughes", "1944-02-17", "WS1 2AB", "9990000018"))
    ).json()
    await client.post("/Patient", json=person("Margaret", "Hughes", "1971-08-02", "WS9 9ZZ"))  # same name, not her
    # an ambulance record: nickname, typo in the surname, no NHS number
    response = await client.post("/Patient/$match", json=params(person("Peggy", "Hughs", "1944-02-17", "WS1 2AB")))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    first = bundle["entry"][0]
    assert first["resource"]["id"] == target["id"]
    assert first["search"]["mode"] == "match" and 0 < first["search"]["score"] <= 1
    grade = next(e["valueCode"] for e in first["search"]["extension"] if e["url"] == MATCH_GRADE_EXT)
    assert grade in ("certain", "probable")


async def test_match_sees_patients_written_after_the_first_call(client: httpx.AsyncClient) -> None:
    query = params(person("Owain", "Price", "1950-05-05", "WS2 4CD", "9990000085"))
    assert not (await client.post("/Patient/$match", json=query)).json().get("entry")
    await client.post("/Patient", json=person("Owain", "Price", "1950-05-05", "WS2 4CD", "9990000085"))
    entries = (await client.post("/Patient/$match", json=query)).json()["entry"]
    assert len(entries) == 1


async def test_match_rejects_bad_input(client: httpx.AsyncClient) -> None:
    bad = await client.post("/Patient/$match", json={"resourceType": "Parameters", "parameter": []})
    assert bad.status_code == 400
    assert bad.json()["resourceType"] == "OperationOutcome"
