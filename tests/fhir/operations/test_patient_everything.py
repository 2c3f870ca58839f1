"""`Patient/[id]/$everything` (https://hl7.org/fhir/R4/patient-operation-everything.html).

One person known to three sources (hospital, social care, community) through two linked Patient
records; the hospital's Encounter was re-sent by the community feed (same identifier) and must
appear once, with the Provenance of the copy kept.
"""

from __future__ import annotations

from typing import Any

import httpx

from gateway.codes import SOURCE_TAG_SYSTEM
from gateway.fhir.operations import registry_imports  # noqa: F401  (registers the operations)
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, with_check_digit

ENC_ID_SYSTEM = "https://care-gateway.example.org/source/hospital/encounter-id"


def tagged(source: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "meta": {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": source}]}}


async def create(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def encounter(patient: str, start: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": f"Patient/{patient}"},
        "period": {"start": start, "end": start},
        **extra,
    }


async def seed(client: httpx.AsyncClient) -> dict[str, str]:
    nhs = with_check_digit("999000101")
    ids: dict[str, str] = {}
    a = await create(
        client,
        tagged("hospital", {"resourceType": "Patient", "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]}),
    )
    ids["a"] = a["id"]
    b = await create(
        client,
        tagged(
            "social-care",
            {
                "resourceType": "Patient",
                "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs}],
                "link": [{"other": {"reference": f"Patient/{ids['a']}"}, "type": "seealso"}],
            },
        ),
    )
    ids["b"] = b["id"]
    ids["other"] = (await create(client, {"resourceType": "Patient", "gender": "unknown"}))["id"]
    ids["gp"] = (await create(client, {"resourceType": "Practitioner", "name": [{"family": "Gp"}]}))["id"]
    ids["org"] = (await create(client, {"resourceType": "Organization", "name": "Community Trust"}))["id"]
    same = {"identifier": [{"system": ENC_ID_SYSTEM, "value": "V1"}]}
    ids["enc_hosp"] = (await create(client, tagged("hospital", encounter(ids["a"], "2025-01-10T10:00:00Z", **same))))[
        "id"
    ]
    ids["prov_hosp"] = (
        await create(
            client,
            tagged(
                "hospital",
                {
                    "resourceType": "Provenance",
                    "target": [{"reference": f"Encounter/{ids['enc_hosp']}"}],
                    "recorded": "2025-01-10T10:01:00Z",
                    "agent": [{"who": {"display": "hospital PAS"}}],
                },
            ),
        )
    )["id"]
    resent = encounter(
        ids["b"],
        "2025-01-10T10:00:00Z",
        participant=[{"individual": {"reference": f"Practitioner/{ids['gp']}"}}],
        **same,
    )
    ids["enc_comm"] = (await create(client, tagged("community", resent)))["id"]
    ids["prov_comm"] = (
        await create(
            client,
            tagged(
                "community",
                {
                    "resourceType": "Provenance",
                    "target": [{"reference": f"Encounter/{ids['enc_comm']}"}],
                    "recorded": "2025-01-11T09:00:00Z",
                    "agent": [{"who": {"reference": f"Organization/{ids['org']}"}}],
                },
            ),
        )
    )["id"]
    ids["cond"] = (
        await create(
            client,
            tagged(
                "social-care",
                {
                    "resourceType": "Condition",
                    "subject": {"reference": f"Patient/{ids['b']}"},
                    "code": {"text": "frailty"},
                    "onsetDateTime": "2020-05-01",
                },
            ),
        )
    )["id"]
    ids["enc_later"] = (await create(client, tagged("hospital", encounter(ids["a"], "2025-06-01T08:00:00Z"))))["id"]
    ids["obs_other"] = (
        await create(
            client,
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "subject": {"reference": f"Patient/{ids['other']}"},
            },
        )
    )["id"]
    return ids


def refs(bundle: dict[str, Any]) -> list[str]:
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])]


async def everything(client: httpx.AsyncClient, patient: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/Patient/{patient}/$everything{query}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_everything_joins_linked_records_dedupes_and_brings_provenance(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    bundle = await everything(client, ids["b"], "?_count=100")
    got = refs(bundle)
    assert got[0] == f"Patient/{ids['b']}"  # the Patient asked for comes first
    assert len(got) == len(set(got)) == bundle["total"]
    assert set(got) == {
        f"Patient/{ids['a']}",
        f"Patient/{ids['b']}",
        f"Encounter/{ids['enc_comm']}",  # the newer copy of the same fact
        f"Encounter/{ids['enc_later']}",
        f"Condition/{ids['cond']}",
        f"Provenance/{ids['prov_comm']}",
        f"Practitioner/{ids['gp']}",
        f"Organization/{ids['org']}",
    }
    tags = {
        t["code"]
        for e in bundle["entry"]
        for t in e["resource"].get("meta", {}).get("tag", [])
        if t["system"] == SOURCE_TAG_SYSTEM
    }
    assert tags == {"hospital", "social-care", "community"}
    assert bundle["type"] == "searchset"


async def test_everything_from_either_linked_record_is_the_same(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    from_a = await everything(client, ids["a"], "?_count=100")
    from_b = await everything(client, ids["b"], "?_count=100")
    assert set(refs(from_a)) == set(refs(from_b))
    assert refs(from_a)[0] == f"Patient/{ids['a']}"


async def test_type_filter_and_post_parameters(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    bundle = await everything(client, ids["a"], "?_type=Encounter,Condition")
    assert set(refs(bundle)) == {
        f"Encounter/{ids['enc_comm']}",
        f"Encounter/{ids['enc_later']}",
        f"Condition/{ids['cond']}",
    }
    body = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Condition"}]}
    response = await client.post(f"/Patient/{ids['a']}/$everything", json=body)
    assert response.status_code == 200, response.text
    assert refs(response.json()) == [f"Condition/{ids['cond']}"]


async def test_type_filter_naming_no_compartment_type_finds_nothing(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    bundle = await everything(client, ids["a"], "?_type=Practitioner")
    assert bundle["total"] == 0 and refs(bundle) == []


async def test_since_filters_by_last_updated(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    newest = await create(client, encounter(ids["a"], "2025-07-01T08:00:00Z"))
    since = newest["meta"]["lastUpdated"]
    bundle = await everything(client, ids["a"], f"?_since={since.replace('+', '%2B')}")
    assert refs(bundle) == [f"Encounter/{newest['id']}"]


async def test_start_and_end_filter_care_dates(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    later = await everything(client, ids["a"], "?start=2025-05-01")
    assert set(refs(later)) == {f"Patient/{ids['a']}", f"Patient/{ids['b']}", f"Encounter/{ids['enc_later']}"}
    earlier = await everything(client, ids["a"], "?end=2025-02-01&_type=Encounter,Condition,Provenance")
    assert set(refs(earlier)) == {
        f"Encounter/{ids['enc_comm']}",
        f"Condition/{ids['cond']}",
        f"Provenance/{ids['prov_comm']}",
    }


async def test_count_pages_through_next_links(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    whole = refs(await everything(client, ids["a"], "?_count=100"))
    seen: list[str] = []
    page = await everything(client, ids["a"], "?_count=3")
    pages = 1
    while True:
        assert len(page.get("entry", [])) <= 3
        assert page["total"] == len(whole)
        seen.extend(refs(page))
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        assert "_count=3" in nxt[0]
        response = await client.get(nxt[0])
        assert response.status_code == 200, response.text
        page, pages = response.json(), pages + 1
    assert seen == whole
    assert pages == 3  # 8 resources, 3 a page


async def test_unknown_patient_and_bad_dates(client: httpx.AsyncClient) -> None:
    assert (await client.get("/Patient/nope/$everything")).status_code == 404
    ids = await seed(client)
    response = await client.get(f"/Patient/{ids['a']}/$everything?start=yesterday")
    assert response.status_code == 400
    assert "start" in response.text
