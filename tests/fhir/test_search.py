"""Search (https://hl7.org/fhir/R4/search.html): parameter types, modifiers, chaining, includes, paging."""

from __future__ import annotations

from typing import Any

import httpx

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


async def seed(client: httpx.AsyncClient) -> dict[str, str]:
    ids: dict[str, str] = {}
    people = [
        ("ada", "Lovelace", "Ada", "female", "1938-12-10", "9990000018", "WS1 2AB"),
        ("bert", "Evans", "Albert", "male", "1941-03-05", "9990000085", "WS2 4CD"),
        ("cerys", "Morgan-Évans", "Cerys", "female", "1946-07-21", "9990000158", "WS3 6EF"),
    ]
    for key, family, given, gender, dob, nhs, pc in people:
        res = {
            "resourceType": "Patient",
            "identifier": [{"system": NHS_SYSTEM, "value": nhs}, {"system": "urn:trust:mrn", "value": f"MRN-{key}"}],
            "name": [{"family": family, "given": [given]}],
            "gender": gender,
            "birthDate": dob,
            "address": [{"postalCode": pc}],
        }
        ids[key] = (await client.post("/Patient", json=res)).json()["id"]
    for key, cls, start in (("ada", "EMER", "2026-10-01T10:00:00Z"), ("bert", "IMP", "2026-11-20T08:30:00+00:00")):
        enc = {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls},
            "subject": {"reference": f"Patient/{ids[key]}"},
            "period": {"start": start},
        }
        ids[f"enc-{key}"] = (await client.post("/Encounter", json=enc)).json()["id"]
    return ids


async def total(client: httpx.AsyncClient, query: str) -> int:
    response = await client.get(query)
    assert response.status_code == 200, response.text
    value: int = response.json()["total"]
    return value


async def test_token_forms(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await total(client, f"/Patient?identifier={NHS_SYSTEM}|9990000018") == 1
    assert await total(client, "/Patient?identifier=9990000085") == 1
    assert await total(client, f"/Patient?identifier={NHS_SYSTEM}|") == 3
    assert await total(client, "/Patient?identifier=|9990000018") == 0  # that value has a system
    assert await total(client, "/Patient?gender=female") == 2
    assert await total(client, "/Patient?gender:not=female") == 1
    assert await total(client, "/Patient?gender=female,male") == 3


async def test_string_forms(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await total(client, "/Patient?family=love") == 1
    assert await total(client, "/Patient?family=LOVE") == 1
    assert await total(client, "/Patient?family:exact=love") == 0
    assert await total(client, "/Patient?family:exact=Lovelace") == 1
    assert await total(client, "/Patient?family:contains=evans") == 2  # accent-insensitive: Évans
    assert await total(client, "/Patient?name=ada") == 1
    assert await total(client, "/Patient?address-postalcode=WS1") == 1


async def test_date_prefixes_and_partial_dates(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await total(client, "/Patient?birthdate=1938") == 1
    assert await total(client, "/Patient?birthdate=1938-12") == 1
    assert await total(client, "/Patient?birthdate=1938-12-10") == 1
    assert await total(client, "/Patient?birthdate=lt1941-03-05") == 1
    assert await total(client, "/Patient?birthdate=le1941-03-05") == 2
    assert await total(client, "/Patient?birthdate=gt1941") == 1
    assert await total(client, "/Patient?birthdate=ge1941") == 2
    assert await total(client, "/Patient?birthdate=ne1941-03-05") == 2
    assert await total(client, "/Patient?birthdate=sa1941-03-05") == 1
    assert await total(client, "/Patient?birthdate=eb1941-03-05") == 1
    assert await total(client, "/Patient?birthdate=ge1940&birthdate=le1942") == 1
    assert await total(client, "/Encounter?date=2026-11") == 0  # open-ended periods are not within a month
    assert await total(client, "/Encounter?date=sa2026-10-15") == 1
    assert await total(client, "/Encounter?date=ge2026-10-01T11:00:00%2B01:00") == 2  # open-ended periods
    assert (await client.get("/Patient?birthdate=not-a-date")).status_code == 400


async def test_reference_forms_and_chaining(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    ada = ids["ada"]
    assert await total(client, f"/Encounter?subject=Patient/{ada}") == 1
    assert await total(client, f"/Encounter?patient={ada}") == 1
    assert await total(client, f"/Encounter?subject:Patient={ada}") == 1
    assert await total(client, f"/Encounter?subject=http://testserver/fhir/Patient/{ada}") == 1
    assert await total(client, f"/Encounter?subject:Patient.identifier={NHS_SYSTEM}|9990000018") == 1
    assert await total(client, "/Encounter?patient.family=evans") == 1
    assert await total(client, "/Encounter?class=EMER&patient.gender=female") == 1
    assert await total(client, "/Patient?_has:Encounter:patient:class=IMP") == 1


async def test_include_and_revinclude(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    bundle = (await client.get(f"/Encounter?_id={ids['enc-ada']}&_include=Encounter:patient")).json()
    modes = sorted((e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"])
    assert modes == [("include", "Patient"), ("match", "Encounter")]
    assert bundle["total"] == 1
    rev = (await client.get(f"/Patient?_id={ids['bert']}&_revinclude=Encounter:subject")).json()
    assert sorted(e["resource"]["resourceType"] for e in rev["entry"]) == ["Encounter", "Patient"]


async def test_id_lastupdated_summary_elements_total(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    assert await total(client, f"/Patient?_id={ids['ada']},{ids['bert']}") == 2
    assert await total(client, "/Patient?_lastUpdated=gt2020-01-01") == 3
    assert await total(client, "/Patient?_lastUpdated=lt2020-01-01") == 0
    count = (await client.get("/Patient?_summary=count")).json()
    assert count["total"] == 3 and "entry" not in count
    nototal = (await client.get("/Patient?_total=none")).json()
    assert "total" not in nototal and len(nototal["entry"]) == 3
    subset = (await client.get(f"/Patient?_id={ids['ada']}&_elements=gender")).json()["entry"][0]["resource"]
    assert set(subset) == {"resourceType", "id", "meta", "gender"}
    assert any(t["code"] == "SUBSETTED" for t in subset["meta"]["tag"])


async def test_sort(client: httpx.AsyncClient) -> None:
    await seed(client)

    async def order(q: str) -> list[str]:
        return [e["resource"]["birthDate"] for e in (await client.get(q)).json()["entry"]]

    assert await order("/Patient?_sort=birthdate") == ["1938-12-10", "1941-03-05", "1946-07-21"]
    assert await order("/Patient?_sort=-birthdate") == ["1946-07-21", "1941-03-05", "1938-12-10"]
    families = [e["resource"]["name"][0]["family"] for e in (await client.get("/Patient?_sort=family")).json()["entry"]]
    assert families == ["Evans", "Lovelace", "Morgan-Évans"]


async def test_paging_stays_correct_while_data_changes(client: httpx.AsyncClient) -> None:
    for i in range(7):
        await client.post("/Patient", json={"resourceType": "Patient", "birthDate": f"1950-01-0{i + 1}"})
    first = (await client.get("/Patient?_count=3&_sort=birthdate")).json()
    seen = [e["resource"]["birthDate"] for e in first["entry"]]
    # data changes underneath: one earlier row deleted, one inserted before the cursor
    await client.delete(f"/Patient/{first['entry'][0]['resource']['id']}")
    await client.post("/Patient", json={"resourceType": "Patient", "birthDate": "1940-01-01"})
    url: Any = next(link["url"] for link in first["link"] if link["relation"] == "next")
    while url:
        page = (await client.get(url.replace("http://testserver/fhir", ""))).json()
        seen += [e["resource"]["birthDate"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert seen == [f"1950-01-0{i + 1}" for i in range(7)]  # nothing skipped, nothing twice


async def test_previous_link_and_tampered_cursor(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await client.post("/Patient", json={"resourceType": "Patient", "birthDate": f"1960-01-0{i + 1}"})
    first = (await client.get("/Patient?_count=2&_sort=birthdate")).json()
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next").replace(
        "http://testserver/fhir", ""
    )
    second = (await client.get(nxt)).json()
    prev = next(link["url"] for link in second["link"] if link["relation"] == "previous")
    back = (await client.get(prev.replace("http://testserver/fhir", ""))).json()
    assert [e["resource"]["id"] for e in back["entry"]] == [e["resource"]["id"] for e in first["entry"]]
    # the same cursor glued onto another search is refused
    cursor = nxt.split("_cursor=")[1]
    assert (await client.get(f"/Patient?_count=2&_sort=-birthdate&_cursor={cursor}")).status_code == 400


async def test_post_search_and_lenient_unknown(client: httpx.AsyncClient) -> None:
    await seed(client)
    posted = await client.post(
        "/Patient/_search", content="gender=male", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert posted.json()["total"] == 1
    lenient = (await client.get("/Patient?gender=male&colour=blue")).json()
    assert lenient["total"] == 1
    assert lenient["entry"][-1]["search"]["mode"] == "outcome"
    assert "colour" not in lenient["link"][0]["url"]
