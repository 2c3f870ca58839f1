"""Bulk Data export, the REST contract (https://hl7.org/fhir/uv/bulkdata/export.html): kick-off
(system, Patient and Group level), status polling, the manifest, NDJSON download, DELETE, errors,
scopes, restart and retention. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx

from gateway.fhir.export.jobs import RUNNING, ExportJobs
from gateway.fhir.services import Services


async def seed(admin: httpx.AsyncClient) -> dict[str, str]:
    ids: dict[str, str] = {}
    ids["org"] = (await admin.post("/Organization", json={"resourceType": "Organization", "name": "Trust"})).json()[
        "id"
    ]
    for key in ("p1", "p2"):
        ids[key] = (await admin.post("/Patient", json={"resourceType": "Patient", "gender": "female"})).json()["id"]
        enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
        enc["subject"] = {"reference": f"Patient/{ids[key]}"}
        ids[f"enc-{key}"] = (await admin.post("/Encounter", json=enc)).json()["id"]
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"}}
    obs["subject"] = {"reference": f"Patient/{ids['p1']}"}
    ids["obs"] = (await admin.post("/Observation", json=obs)).json()["id"]
    group = {
        "resourceType": "Group",
        "type": "person",
        "actual": True,
        "member": [{"entity": {"reference": f"Patient/{ids['p1']}"}}],
    }
    ids["group"] = (await admin.post("/Group", json=group)).json()["id"]
    return ids


def counts(manifest: dict[str, Any]) -> dict[str, int]:
    return {o["type"]: o["count"] for o in manifest["output"]}


async def test_kick_off_poll_manifest_and_download(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    kicked = await bulk.kick_off("admin", "/$export?_outputFormat=application/fhir%2Bndjson")
    assert kicked.status_code == 202
    assert kicked.headers["content-location"].startswith("http://testserver/fhir/$export-poll-status?_jobId=")
    assert kicked.json()["resourceType"] == "OperationOutcome"
    status_path = bulk.local(kicked.headers["content-location"])
    waiting = await bulk.caller("admin").get(status_path)
    assert waiting.status_code == 202 and waiting.headers["x-progress"] == "queued"
    queued = bulk.jobs.get(bulk.job_id(kicked))
    running = replace(queued, status=RUNNING, types_done=2)
    assert running.progress == f"2 of {queued.types_total} resource types exported"
    manifest = await bulk.finish("admin", kicked)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == "http://testserver/fhir/$export?_outputFormat=application/fhir%2Bndjson"
    assert manifest["transactionTime"].endswith("Z") and manifest["error"] == []
    assert counts(manifest) == {"Encounter": 2, "Group": 1, "Observation": 1, "Organization": 1, "Patient": 2}
    files = await bulk.files("admin", manifest)
    assert {r["id"] for r in files["Patient"]} == {ids["p1"], ids["p2"]}
    again = await bulk.caller("admin").get(status_path)
    assert again.status_code == 200 and again.headers["content-type"].startswith("application/json")
    assert "expires" in again.headers


async def test_type_since_and_format_aliases(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    first = await bulk.export("admin", "/$export?_type=Patient,Observation&_outputFormat=ndjson")
    assert counts(first) == {"Observation": 1, "Patient": 2}
    repeated = await bulk.export("admin", "/$export?_type=Patient&_type=Encounter&_outputFormat=application/ndjson")
    assert counts(repeated) == {"Encounter": 2, "Patient": 2}
    admin = bulk.caller("admin")
    await admin.put(f"/Patient/{ids['p2']}", json={"resourceType": "Patient", "id": ids["p2"], "gender": "male"})
    since = first["transactionTime"].replace("+", "%2B")
    later = await bulk.export("admin", f"/$export?_type=Patient,Observation&_since={since}")
    assert counts(later) == {"Patient": 1}
    assert [r["id"] for r in (await bulk.files("admin", later))["Patient"]] == [ids["p2"]]


async def test_patient_and_group_level(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    patients = await bulk.export("admin", "/Patient/$export")
    # the patient compartment's types only: a Group of patients is one of them, an Organization is not
    assert counts(patients) == {"Encounter": 2, "Group": 1, "Observation": 1, "Patient": 2}
    group = await bulk.export("admin", f"/Group/{ids['group']}/$export")
    files = await bulk.files("admin", group)
    assert {t: {r["id"] for r in rs} for t, rs in files.items()} == {
        "Patient": {ids["p1"]},
        "Encounter": {ids["enc-p1"]},
        "Observation": {ids["obs"]},
        "Group": {ids["group"]},
    }
    missing = await bulk.kick_off("admin", "/Group/no-such-group/$export")
    assert missing.status_code == 404 and missing.json()["resourceType"] == "OperationOutcome"
    assert (await bulk.kick_off("admin", "/Patient/$export?_type=Organization")).status_code == 400


async def test_bad_requests_answer_operation_outcomes(bulk: Any) -> None:
    admin = bulk.caller("admin")
    for path in (
        "/$export?_outputFormat=text/csv",
        "/$export?_since=yesterday",
        "/$export?_type=NoSuchType",
        "/$export?_typeFilter=Patient%3Fgender%3Dmale",
        "/$export?_elements=id",
    ):
        got = await bulk.kick_off("admin", path)
        assert got.status_code == 400, path
        assert got.json()["resourceType"] == "OperationOutcome"
    no_async = await admin.get("/$export")
    assert no_async.status_code == 400 and "respond-async" in no_async.text
    lenient = await admin.get(
        "/$export?_elements=id&_type=Patient,NoSuchType", headers={"Prefer": "respond-async, handling=lenient"}
    )
    assert lenient.status_code == 202
    assert {i["severity"] for i in lenient.json()["issue"]} == {"warning"}
    assert (await bulk.kick_off("btg")).status_code == 403  # break-glass is for one person, not a population


async def test_post_kick_off_with_parameters(bulk: Any) -> None:
    await seed(bulk.caller("admin"))
    body = {"resourceType": "Parameters", "parameter": [{"name": "_type", "valueString": "Patient"}]}
    kicked = await bulk.caller("admin").post("/$export", json=body, headers={"Prefer": "respond-async"})
    assert counts(await bulk.finish("admin", kicked)) == {"Patient": 2}


async def test_scopes_choose_the_types(bulk: Any) -> None:
    admin = bulk.caller("admin")
    await seed(admin)
    await admin.put("/Basic/isa", json=agreement())
    only_obs = await bulk.export("obs-only")
    assert counts(only_obs) == {"Observation": 1}
    refused = await bulk.kick_off("obs-only", "/$export?_type=Patient")
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"
    assert counts(await bulk.export("obs-only", "/$export?_type=Patient,Observation")) == {"Observation": 1}


def agreement() -> dict[str, Any]:
    from gateway.consent.agreements import build_agreement

    return build_agreement(id="isa", recipients=["Organization/trust-a"], purposes=["TREAT"])


async def test_delete_cancels_and_removes_files(bulk: Any) -> None:
    await seed(bulk.caller("admin"))
    admin = bulk.caller("admin")
    kicked = await bulk.kick_off("admin")
    manifest = await bulk.finish("admin", kicked)
    job_id = bulk.job_id(kicked)
    assert bulk.jobs.files.folder(job_id).is_dir()
    status_path = bulk.local(kicked.headers["content-location"])
    deleted = await admin.delete(status_path)
    assert deleted.status_code == 202
    assert (await admin.get(status_path)).status_code == 404
    assert (await admin.get(bulk.local(manifest["output"][0]["url"]))).status_code == 404
    assert not bulk.jobs.files.folder(job_id).exists()
    assert (await admin.delete(status_path)).status_code == 404
    # a queued job deleted before it runs never writes anything
    queued = await bulk.kick_off("admin")
    assert (await admin.delete(bulk.local(queued.headers["content-location"]))).status_code == 202
    bulk.jobs.start(bulk.job_id(queued))
    bulk.jobs.wait(bulk.job_id(queued), timeout=60)
    assert not bulk.jobs.files.folder(bulk.job_id(queued)).exists()


async def test_a_failed_job_answers_an_operation_outcome(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    admin = bulk.caller("admin")
    kicked = await bulk.kick_off("admin", f"/Group/{ids['group']}/$export")
    await admin.delete(f"/Group/{ids['group']}")  # gone before the job runs
    bulk.jobs.start(bulk.job_id(kicked))
    bulk.jobs.wait(bulk.job_id(kicked), timeout=60)
    failed = await admin.get(bulk.local(kicked.headers["content-location"]))
    assert failed.status_code == 500
    assert failed.json()["resourceType"] == "OperationOutcome"
    assert not bulk.jobs.files.folder(bulk.job_id(kicked)).exists()


async def test_a_restarted_gateway_runs_the_unfinished_job(bulk: Any, services: Services) -> None:
    await seed(bulk.caller("admin"))
    kicked = await bulk.kick_off("admin", "/$export?_type=Patient")
    job_id = bulk.job_id(kicked)
    # another process (a restart) finds the queued job in the database and runs it
    restarted = ExportJobs(services.store, bulk.jobs.files, guard=bulk.jobs.guard)
    assert restarted.resume() == [job_id]
    assert restarted.wait(job_id, timeout=60) is not None
    status = await bulk.caller("admin").get(bulk.local(kicked.headers["content-location"]))
    assert status.status_code == 200 and counts(status.json()) == {"Patient": 2}
    assert bulk.jobs.resume() == []  # done: nothing left to resume


async def test_files_and_status_expire_after_retention(bulk: Any, services: Services) -> None:
    await seed(bulk.caller("admin"))
    kicked = await bulk.kick_off("admin", "/$export?_type=Patient")
    manifest = await bulk.finish("admin", kicked)
    job_id = bulk.job_id(kicked)
    later = ExportJobs(
        services.store, bulk.jobs.files, now=lambda: bulk.jobs.now() + bulk.jobs.retention + timedelta(seconds=1)
    )
    assert later.get_for("gateway:test-admin", job_id) is None  # expired jobs answer like missing
    assert later.expire() == 1
    assert not bulk.jobs.files.folder(job_id).exists()
    admin = bulk.caller("admin")
    assert (await admin.get(bulk.local(kicked.headers["content-location"]))).status_code == 404
    assert (await admin.get(bulk.local(manifest["output"][0]["url"]))).status_code == 404


async def test_capability_statement_advertises_export(bulk: Any) -> None:
    cap = (await bulk.caller("admin").get("/metadata")).json()
    rest = cap["rest"][0]
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"} in rest[
        "operation"
    ]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {o["definition"] for o in by_type["Patient"]["operation"]} >= {
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
    }
    assert {o["definition"] for o in by_type["Group"]["operation"]} >= {
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
    }
