"""An export shows a caller exactly what its searches show: the consent engine decides every
resource (HAPI #6855: bulk export bypassing checks), counts count only what was written, the
export is audited, and status and file URLs belong to the client that asked."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.audit.events import DCM, EXPORT
from gateway.consent.agreements import build_agreement

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


def objection(patient_id: str, org: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
        "provision": {
            "type": "deny",
            "actor": [{"role": {"coding": [{"code": "IRCP"}]}, "reference": {"reference": org}}],
        },
    }


async def seed(admin: httpx.AsyncClient, *, council_agreement: bool = False) -> dict[str, str]:
    await admin.put(
        "/Basic/isa-trust",
        json=build_agreement(id="isa-trust", recipients=["Organization/trust-a"], purposes=["TREAT"]),
    )
    if council_agreement:
        body = build_agreement(id="isa-council", recipients=["Organization/council-b"], purposes=["TREAT"])
        await admin.put("/Basic/isa-council", json=body)
    ids: dict[str, str] = {}
    for key in ("open", "hidden", "labelled"):
        body: dict[str, Any] = {"resourceType": "Patient", "gender": "female"}
        if key == "labelled":
            body["meta"] = {"security": [{"system": CONFIDENTIALITY, "code": "R"}]}
        ids[key] = (await admin.post("/Patient", json=body)).json()["id"]
        enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}}
        enc["subject"] = {"reference": f"Patient/{ids[key]}"}
        ids[f"enc-{key}"] = (await admin.post("/Encounter", json=enc)).json()["id"]
    consent = await admin.post("/Consent", json=objection(ids["hidden"], "Organization/trust-a"))
    assert consent.status_code == 201
    ids["consent"] = consent.json()["id"]
    return ids


async def searched(client: httpx.AsyncClient, rtype: str) -> set[str]:
    bundle = (await client.get(f"/{rtype}?_count=1000")).json()
    return {e["resource"]["id"] for e in bundle.get("entry", [])}


def exported(files: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    return {t: {r["id"] for r in rs} for t, rs in files.items()}


async def test_no_agreement_gets_an_empty_export(bulk: Any) -> None:
    await seed(bulk.caller("admin"))
    manifest = await bulk.export("council", "/Patient/$export")
    assert manifest["output"] == [] and manifest["error"] == []
    # system level: nobody's data either; what is left is what its searches show (the agreement itself)
    everything = exported(await bulk.files("council", await bulk.export("council")))
    assert everything == {"Basic": await searched(bulk.caller("council"), "Basic")}


async def test_an_export_holds_exactly_what_the_callers_searches_show(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    trust = bulk.caller("trust")
    for path in ("/$export", "/Patient/$export"):
        manifest = await bulk.export("trust", path)
        files = exported(await bulk.files("trust", manifest))
        assert files["Patient"] == {ids["open"]} == await searched(trust, "Patient")
        # the objector's Encounter is hidden; the labelled person's unlabelled Encounter is not
        assert files["Encounter"] == {ids["enc-open"], ids["enc-labelled"]} == await searched(trust, "Encounter")
        assert {o["type"]: o["count"] for o in manifest["output"]}["Patient"] == 1


async def test_a_deny_for_one_organisation_hides_that_data_from_that_organisation_only(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"), council_agreement=True)
    trust = exported(await bulk.files("trust", await bulk.export("trust")))
    council = exported(await bulk.files("council", await bulk.export("council")))
    assert ids["hidden"] not in trust["Patient"] and ids["enc-hidden"] not in trust["Encounter"]
    assert ids["hidden"] in council["Patient"] and ids["enc-hidden"] in council["Encounter"]
    assert trust["Patient"] | {ids["hidden"]} == council["Patient"]
    assert trust["Encounter"] | {ids["enc-hidden"]} == council["Encounter"]


async def test_sensitive_labels_are_withheld(bulk: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    manifest = await bulk.export("trust", "/$export?_type=Patient")
    body = b"".join([(await bulk.caller("trust").get(bulk.local(o["url"]))).content for o in manifest["output"]])
    assert ids["labelled"].encode() not in body and CONFIDENTIALITY.encode() not in body


async def test_the_export_is_audited(bulk: Any, audit_sink: Any) -> None:
    ids = await seed(bulk.caller("admin"))
    audit_sink.events.clear()
    await bulk.export("trust", "/$export?_type=Patient,Encounter")
    mine = [e for e in audit_sink.events if e["agent"][0]["who"]["identifier"]["value"] == "trust-pas"]
    exports = [e for e in mine if e["type"]["system"] == DCM and e["type"]["code"] == EXPORT]
    assert len(exports) == 1 and exports[0]["outcome"] == "0"
    named = {
        ent["what"]["reference"] for e in mine for ent in e.get("entity", []) if "reference" in ent.get("what", {})
    }
    # the people whose data left (the labelled person's unlabelled Encounter did), never the objector
    assert {f"Patient/{ids['open']}", f"Patient/{ids['labelled']}"} <= named
    assert f"Patient/{ids['hidden']}" not in named


async def test_status_and_files_are_bound_to_the_caller(bulk: Any) -> None:
    await seed(bulk.caller("admin"))
    kicked = await bulk.kick_off("trust")
    manifest = await bulk.finish("trust", kicked)
    status_path = bulk.local(kicked.headers["content-location"])
    file_path = bulk.local(manifest["output"][0]["url"])
    other = bulk.caller("trust-2")  # same organisation, another client
    missing_status = await other.get("/$export-poll-status?_jobId=" + "0" * 32)
    for response in (await other.get(status_path), await other.get(file_path), await other.delete(status_path)):
        assert response.status_code == 404
        assert response.text == missing_status.text
    assert (await bulk.caller("trust").get(status_path)).status_code == 200  # still there for its owner
    assert (await bulk.caller("trust").get(file_path + "x")).status_code == 404
    job = bulk.job_id(kicked)
    for name in ("..%2F..%2Fgateway.db", "Patient.json", "errors.ndjson"):
        assert (await bulk.caller("trust").get(f"/$export-file/{job}/{name}")).status_code == 404
