"""Issue 6, done when: a case-management app using fhirpy pulls one person's unified record from
three sources with provenance, writes an assessment and a care plan that validate against the
shipped profiles (and gets clear errors when they do not), and reads the worklist and caseloads.

Runs the fully wired gateway (tokens and consent on) on the demo data, over real HTTP.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from gateway.app import build_services, create_app, demo_credentials
from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM
from gateway.demo.load import ensure_demo_loaded
from gateway.paths import FIXTURES_DIR
from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncFHIRClient, httpx.Client]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data: Path = tmp_path_factory.mktemp("gw")
    settings = Settings(data_dir=data, base_url=base, mllp_port=0, ward_list_push_enabled=False, log_level="WARNING")
    services = build_services(settings)
    ensure_demo_loaded(services)
    creds = {c["client_id"]: c for c in demo_credentials(services)}["demo-case-management"]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline
        time.sleep(0.02)
    token = httpx.post(
        f"{base}/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], creds["client_secret"]),
    ).json()["access_token"]
    fhir = SyncFHIRClient(settings.fhir_base, authorization=f"Bearer {token}")
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    yield fhir, api
    api.close()
    server.should_exit = True
    thread.join(timeout=10)
    services.store.engine.dispose()


def demo_resource(name: str, rid: str) -> dict[str, Any]:
    bundle = orjson.loads((FIXTURES_DIR / "demo" / name).read_bytes())
    found: dict[str, Any] = next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == rid)
    return copy.deepcopy(found)


def test_unified_record_from_three_sources_with_provenance(app_client: tuple[SyncFHIRClient, httpx.Client]) -> None:
    fhir, _ = app_client
    everything = fhir.execute("Patient/p-ada/$everything", method="get", params={"_count": "1000"})
    resources = [e["resource"] for e in everything["entry"]]
    sources = {
        t["code"]
        for r in resources
        for t in (r.get("meta") or {}).get("tag", [])
        if t.get("system") == SOURCE_ORGANIZATION_TAG_SYSTEM
    }
    assert len(sources) >= 3, sources  # hospital, council, community (and the case team)
    provenance = [r for r in resources if r["resourceType"] == "Provenance"]
    assert provenance, "each fact traceable to its source"
    assert {"Encounter", "EpisodeOfCare", "CarePlan", "CareTeam"} <= {r["resourceType"] for r in resources}


def test_assessment_and_care_plan_validate_and_bad_ones_are_refused(
    app_client: tuple[SyncFHIRClient, httpx.Client],
) -> None:
    fhir, _ = app_client
    assessment = demo_resource("04-virtual-ward.json", "assessment-ada")
    assessment.pop("id")
    saved = fhir.resource("QuestionnaireResponse", **assessment)
    saved.save()
    assert saved.id

    plan = demo_resource("04-virtual-ward.json", "plan-ada")
    plan.pop("id")
    new_plan = fhir.resource("CarePlan", **plan)
    new_plan.save()
    assert new_plan["meta"]["versionId"] == "1"

    broken = copy.deepcopy(assessment)
    broken["item"] = broken["item"][:1]  # a completed assessment missing required domains
    with pytest.raises(OperationOutcome) as refused:
        fhir.resource("QuestionnaireResponse", **broken).save()
    assert "required" in str(refused.value).lower() or "item" in str(refused.value)

    no_subject = {k: v for k, v in plan.items() if k != "subject"}
    with pytest.raises(OperationOutcome) as bad_plan:
        fhir.resource("CarePlan", **no_subject).save()
    assert "subject" in str(bad_plan.value)


def test_worklist_and_caseloads(app_client: tuple[SyncFHIRClient, httpx.Client]) -> None:
    _, api = app_client
    worklist = api.get("/api/case-management/case-finding")
    assert worklist.status_code == 200, worklist.text
    body = worklist.json()
    assert body["worklist"], body
    caseloads = api.get("/api/case-management/caseloads").json()
    assert caseloads["caseloads"]
