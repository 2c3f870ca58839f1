"""The store-facing worklist loaders and the `care-gateway case-finding | caseloads | rounds` commands."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.codes import EPISODE_TYPE_SYSTEM, VIRTUAL_WARD
from gateway.record.cli import register, table
from gateway.record.worklists import Person, group_people
from gateway.settings import Settings


def test_group_people_joins_links_either_way_and_prefers_the_surviving_record() -> None:
    patients: dict[str, dict[str, Any]] = {
        "a": {"link": [{"type": "replaced-by", "other": {"reference": "Patient/c"}}]},
        "b": {},
        "c": {},
        "d": {},
    }
    people = group_people(patients, [("a", "c"), ("b", "a")], patients)
    assert people == [Person("b", ("a", "b", "c")), Person("d", ("d",))]
    retired = {**patients, "b": {"active": False}}
    assert group_people(retired, [("a", "c"), ("b", "a")], retired)[0].patient_id == "c"


def test_table_lines_up_columns() -> None:
    assert table(("a", "bb"), [(1, None), ("long", 2)]).splitlines() == ["a     bb", "----  --", "1", "long  2"]


def run(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    assert args.func(args, settings) == 0
    return json.loads(capsys.readouterr().out)


async def post(client: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    response = await client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    rid: str = response.json()["id"]
    return rid


async def test_cli_commands_read_the_store(
    client: httpx.AsyncClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    frail = await post(client, {"resourceType": "Patient", "birthDate": "1930-01-01"})
    for days in (3, 30):
        start = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
        await post(
            client,
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                "subject": {"reference": f"Patient/{frail}"},
                "period": {"start": start},
            },
        )
    cm = await post(client, {"resourceType": "Practitioner"})
    ward = await post(client, {"resourceType": "Location"})
    team = await post(client, {"resourceType": "CareTeam", "status": "active"})
    managed = await post(client, {"resourceType": "Patient"})
    await post(
        client,
        {
            "resourceType": "EpisodeOfCare",
            "status": "active",
            "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
            "patient": {"reference": f"Patient/{managed}"},
            "careManager": {"reference": f"Practitioner/{cm}"},
            "team": [{"reference": f"CareTeam/{team}"}],
            "period": {"start": "2025-01-01"},
            "extension": [
                {
                    "url": "https://care-gateway.example.org/fhir/StructureDefinition/virtual-ward",
                    "valueReference": {"reference": f"Location/{ward}"},
                }
            ],
        },
    )
    worklist = run(settings, capsys, "case-finding", "--threshold", "5", "--format", "json")
    assert [(w["patient"], w["points"]) for w in worklist] == [(frail, 6)]  # aged 85+ (4) and two A&E (2)
    loads = run(settings, capsys, "caseloads", "--limit", "0", "--format", "json")
    assert loads == [
        {"careManager": f"Practitioner/{cm}", "active": 1, "highRisk": 0, "warnings": ["caseload-over-limit"]}
    ]
    rounds = run(settings, capsys, "rounds", "--ward", ward, "--date", "2025-01-02", "--format", "json")
    assert [(r["patient"], r["frequency"], r["overdueDays"]) for r in rounds] == [(managed, "monthly", 1)]
