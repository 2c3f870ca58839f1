"""`EpisodeOfCare/[id]/$everything`: one episode of case management with its person, team and work."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.codes import EPISODE_TYPE_SYSTEM, VIRTUAL_WARD
from gateway.fhir.operations import registry_imports  # noqa: F401  (registers the operations)


async def create(client: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    response = await client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    rid: str = response.json()["id"]
    return rid


def subject(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


async def seed(client: httpx.AsyncClient) -> dict[str, str]:
    ids: dict[str, str] = {}
    ids["a"] = await create(client, {"resourceType": "Patient"})
    ids["b"] = await create(
        client, {"resourceType": "Patient", "link": [{"other": subject(ids["a"]), "type": "seealso"}]}
    )
    ids["cm"] = await create(client, {"resourceType": "Practitioner", "name": [{"family": "Manager"}]})
    ids["nurse"] = await create(client, {"resourceType": "Practitioner", "name": [{"family": "Nurse"}]})
    ids["org"] = await create(client, {"resourceType": "Organization", "name": "Virtual ward provider"})
    ids["carer"] = await create(client, {"resourceType": "RelatedPerson", "patient": subject(ids["a"])})
    ids["team"] = await create(
        client,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": subject(ids["a"]),
            "participant": [
                {"member": {"reference": f"Practitioner/{ids['nurse']}"}},
                {"member": {"reference": f"RelatedPerson/{ids['carer']}"}},
            ],
        },
    )
    ids["ep"] = await create(
        client,
        {
            "resourceType": "EpisodeOfCare",
            "status": "active",
            "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
            "patient": subject(ids["a"]),
            "managingOrganization": {"reference": f"Organization/{ids['org']}"},
            "careManager": {"reference": f"Practitioner/{ids['cm']}"},
            "team": [{"reference": f"CareTeam/{ids['team']}"}],
            "period": {"start": "2025-03-01"},
        },
    )
    plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject(ids["a"])}
    ids["plan_in"] = await create(client, {**plan, "period": {"start": "2025-04-01"}})
    ids["plan_before"] = await create(client, {**plan, "period": {"start": "2024-01-01", "end": "2024-02-01"}})
    ids["enc_linked"] = await create(
        client,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
            "subject": subject(ids["a"]),
            "episodeOfCare": [{"reference": f"EpisodeOfCare/{ids['ep']}"}],
            "period": {"start": "2024-12-01"},  # before the period, but filed under the episode
        },
    )
    ids["task"] = await create(
        client,
        {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "for": subject(ids["a"]),
            "authoredOn": "2025-05-02",
        },
    )
    ids["qr"] = await create(
        client,
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": subject(ids["b"]),
            "authored": "2025-06-01",
        },
    )
    ids["cond"] = await create(
        client, {"resourceType": "Condition", "subject": subject(ids["a"]), "code": {"text": "not episode work"}}
    )
    return ids


async def test_episode_everything_gathers_people_team_and_work(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    response = await client.get(f"/EpisodeOfCare/{ids['ep']}/$everything")
    assert response.status_code == 200, response.text
    bundle = response.json()
    got = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert got[0] == f"EpisodeOfCare/{ids['ep']}"
    assert set(got) == {
        f"EpisodeOfCare/{ids['ep']}",
        f"Patient/{ids['a']}",
        f"Patient/{ids['b']}",
        f"Practitioner/{ids['cm']}",
        f"Practitioner/{ids['nurse']}",
        f"Organization/{ids['org']}",
        f"RelatedPerson/{ids['carer']}",
        f"CareTeam/{ids['team']}",
        f"CarePlan/{ids['plan_in']}",
        f"Encounter/{ids['enc_linked']}",
        f"Task/{ids['task']}",
        f"QuestionnaireResponse/{ids['qr']}",
    }
    assert bundle["total"] == len(got) == len(set(got))


async def test_episode_everything_type_filter_and_missing(client: httpx.AsyncClient) -> None:
    ids = await seed(client)
    response = await client.get(f"/EpisodeOfCare/{ids['ep']}/$everything?_type=CarePlan")
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [ids["plan_in"]]
    assert (await client.get("/EpisodeOfCare/missing/$everything")).status_code == 404
