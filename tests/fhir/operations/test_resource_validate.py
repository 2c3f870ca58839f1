"""$validate and validation on write against the shipped profiles.

https://hl7.org/fhir/R4/resource-operation-validate.html
"""

from __future__ import annotations

import httpx

from gateway.codes import EPISODE_TYPE_SYSTEM, VIRTUAL_WARD
from gateway.record.validation.urls import CASE_MANAGED_EPISODE_OF_CARE


def episode(**extra: object) -> dict[str, object]:
    return {
        "resourceType": "EpisodeOfCare",
        "meta": {"profile": [CASE_MANAGED_EPISODE_OF_CARE]},
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
        "patient": {"reference": "Patient/p1"},
        "managingOrganization": {"reference": "Organization/o1"},
        "period": {"start": "2026-11-01"},
        "statusHistory": [{"status": "active", "period": {"start": "2026-11-01"}}],
        **extra,
    }


async def test_validate_reports_the_missing_element_with_its_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/EpisodeOfCare/$validate", json=episode())
    assert response.status_code == 200
    issues = response.json()["issue"]
    assert any(i["severity"] == "error" and i.get("expression") == ["EpisodeOfCare.careManager"] for i in issues)


async def test_validate_with_parameters_and_a_valid_resource(client: httpx.AsyncClient) -> None:
    good = episode(careManager={"reference": "Practitioner/cm"}, team=[{"reference": "CareTeam/t"}])
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": good}]}
    issues = (await client.post("/EpisodeOfCare/$validate", json=params)).json()["issue"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")]


async def test_write_of_a_profiled_resource_is_validated(client: httpx.AsyncClient) -> None:
    refused = await client.post("/EpisodeOfCare", json=episode())
    assert refused.status_code == 422
    assert any(i.get("expression") == ["EpisodeOfCare.careManager"] for i in refused.json()["issue"])
    good = episode(careManager={"reference": "Practitioner/cm"}, team=[{"reference": "CareTeam/t"}])
    created = await client.post("/EpisodeOfCare", json=good)
    assert created.status_code == 201
    rid = created.json()["id"]
    instance = (await client.get(f"/EpisodeOfCare/{rid}/$validate")).json()
    assert instance["resourceType"] == "OperationOutcome"
    assert not [i for i in instance["issue"] if i["severity"] in ("error", "fatal")]


async def test_validate_is_advertised(client: httpx.AsyncClient) -> None:
    cap = (await client.get("/metadata")).json()
    episode_cap = next(r for r in cap["rest"][0]["resource"] if r["type"] == "EpisodeOfCare")
    assert {
        "name": "validate",
        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
    } in episode_cap["operation"]
