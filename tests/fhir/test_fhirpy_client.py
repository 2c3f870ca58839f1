"""The REST contract through a real FHIR client (fhirpy) against a real uvicorn on loopback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome
from fhirpy.base.exceptions import ResourceNotFound


def test_fhirpy_create_read_search_page_update_delete_history(live_server: Any) -> None:
    client = SyncFHIRClient(live_server.fhir_base)
    for i in range(12):
        client.resource("Patient", name=[{"family": f"Client{i:02d}"}], gender="other").save()

    found = client.resources("Patient").search(family="client0").sort("family").limit(5)
    names = [p["name"][0]["family"] for p in found.fetch_all()]  # follows next links
    assert names == [f"Client{i:02d}" for i in range(10)]
    assert client.resources("Patient").search(gender="other").count() == 12

    patient = client.resources("Patient").search(family="Client03").first()
    assert patient is not None
    patient["gender"] = "female"
    patient.save()
    assert patient["meta"]["versionId"] == "2"

    # If-Match on a stale version: fhirpy has no header hook, so this one call is plain HTTP.
    stale = {"resourceType": "Patient", "id": patient.id, "name": [{"family": "Stale"}]}
    refused = httpx.put(f"{live_server.fhir_base}/Patient/{patient.id}", json=stale, headers={"If-Match": 'W/"1"'})
    assert refused.status_code == 412
    current = httpx.put(f"{live_server.fhir_base}/Patient/{patient.id}", json=stale, headers={"If-Match": 'W/"2"'})
    assert current.status_code == 200

    history = client.execute(f"Patient/{patient.id}/_history", method="get")
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]

    patient.delete()
    with pytest.raises((ResourceNotFound, FhirpyOutcome)):
        client.reference("Patient", patient.id).to_resource()
