"""Consent on every read path, attacked the way other FHIR servers leaked.

HAPI #1507/#3418 (totals), #3382 (page links replayed by another user), #6065 (_has), #6855
(bulk export bypassing checks), chained search as an oracle, _include pulling hidden resources,
refused-vs-missing responses, labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson

from gateway.consent.agreements import build_agreement
from gateway.fhir.export.web import exports_of
from gateway.fhir.services import Services

Caller = Callable[[str], httpx.AsyncClient]


def agreement_for_trust() -> dict[str, Any]:
    return build_agreement(
        id="isa-trust",
        recipients=["Organization/trust-a"],
        purposes=["TREAT"],
        title="Trust direct care",
        break_glass=True,
    )


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
            "actor": [
                {
                    "role": {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
                        ]
                    },
                    "reference": {"reference": org},
                }
            ],
        },
    }


async def seed(admin: httpx.AsyncClient) -> dict[str, str]:
    assert (await admin.put("/Basic/isa-trust", json=agreement_for_trust())).status_code in (200, 201)
    ids: dict[str, str] = {}
    for key, family in (("open", "Openshaw"), ("hidden", "Hiddleston"), ("labelled", "Labelle")):
        body: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family}], "gender": "female"}
        if key == "labelled":
            body["meta"] = {
                "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]
            }
        ids[key] = (await admin.post("/Patient", json=body)).json()["id"]
        enc = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "EMER" if key != "hidden" else "IMP"},
            "subject": {"reference": f"Patient/{ids[key]}"},
        }
        ids[f"enc-{key}"] = (await admin.post("/Encounter", json=enc)).json()["id"]
    assert (await admin.post("/Consent", json=objection(ids["hidden"], "Organization/trust-a"))).status_code == 201
    return ids


async def test_no_agreement_sees_nothing(as_caller: Caller) -> None:
    ids = await seed(as_caller("admin"))
    council = as_caller("council")
    assert (await council.get("/Patient")).json()["total"] == 0
    assert (await council.get("/Encounter")).json()["total"] == 0
    assert (await council.get(f"/Patient/{ids['open']}")).status_code == 404


async def test_consent_deny_hides_exactly_that_person(as_caller: Caller) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")
    listing = (await trust.get("/Patient")).json()
    assert listing["total"] == 1  # open only: hidden is objected, labelled is restricted
    assert [e["resource"]["id"] for e in listing["entry"]] == [ids["open"]]
    encounters = (await trust.get("/Encounter")).json()
    # the labelled Patient resource is withheld; that person's unlabelled Encounter is not
    assert encounters["total"] == 2
    assert ids["enc-hidden"] not in {e["resource"]["id"] for e in encounters["entry"]}


async def test_refused_read_answers_like_a_missing_one(as_caller: Caller) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")
    refused = await trust.get(f"/Patient/{ids['hidden']}")
    missing = await trust.get("/Patient/no-such-id")
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
    assert refused.text.replace(ids["hidden"], "ID") == missing.text.replace("no-such-id", "ID")
    assert "Hiddleston" not in refused.text
    assert (await trust.get(f"/Patient/{ids['hidden']}/_history")).status_code == 404
    assert (await trust.get(f"/Patient/{ids['hidden']}/_history/1")).status_code == 404


async def test_chained_and_has_searches_are_no_oracle(as_caller: Caller) -> None:
    await seed(as_caller("admin"))
    trust = as_caller("trust")
    assert (await trust.get("/Encounter?patient.family=Hiddleston")).json()["total"] == 0
    assert (await trust.get("/Encounter?patient.family=Openshaw")).json()["total"] == 1
    assert (await trust.get("/Patient?_has:Encounter:patient:class=IMP")).json()["total"] == 0
    assert (await trust.get("/Patient?_has:Encounter:patient:class=EMER")).json()["total"] == 1
    assert (await trust.get("/Patient?family=Hidd")).json()["total"] == 0
    assert (await trust.get("/Patient?_summary=count")).json()["total"] == 1


async def test_include_and_revinclude_do_not_pull_hidden_resources(as_caller: Caller) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")
    bundle = (
        await trust.get(f"/Encounter?_include=Encounter:patient&_id={ids['enc-open']},{ids['enc-hidden']}")
    ).json()
    returned = {e["resource"]["id"] for e in bundle.get("entry", [])}
    assert returned == {ids["enc-open"], ids["open"]}
    rev = (await trust.get("/Patient?_revinclude=Encounter:patient")).json()
    assert {e["resource"]["id"] for e in rev["entry"]} == {ids["open"], ids["enc-open"]}


async def test_labels_of_hidden_data_never_show(as_caller: Caller) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")
    body = (await trust.get("/Patient?_security=R")).text
    assert ids["labelled"] not in body
    assert (await trust.get("/Patient?_security=R")).json()["total"] == 0


async def test_page_links_are_bound_to_the_caller(as_caller: Caller) -> None:
    admin = as_caller("admin")
    await seed(admin)
    for i in range(4):
        await admin.post("/Patient", json={"resourceType": "Patient", "name": [{"family": f"Extra{i}"}]})
    trust = as_caller("trust")
    first = (await trust.get("/Patient?_count=2")).json()
    nxt = next(link["url"] for link in first["link"] if link["relation"] == "next").replace(
        "http://testserver/fhir", ""
    )
    assert (await trust.get(nxt)).status_code == 200
    assert (await as_caller("trust-2").get(nxt)).status_code == 400  # same organisation, other client


async def test_paging_counts_only_visible(as_caller: Caller) -> None:
    admin = as_caller("admin")
    ids = await seed(admin)
    trust = as_caller("trust")
    seen: list[str] = []
    url: str | None = "/Patient?_count=1"
    while url:
        page = (await trust.get(url)).json()
        assert page["total"] == 1
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
        url = url.replace("http://testserver/fhir", "") if url else None
    assert seen == [ids["open"]]


async def test_match_is_no_oracle(as_caller: Caller) -> None:
    await seed(as_caller("admin"))
    trust = as_caller("trust")
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "resource",
                "resource": {"resourceType": "Patient", "name": [{"family": "Hiddleston"}], "gender": "female"},
            }
        ],
    }
    found = (await trust.post("/Patient/$match", json=params)).json()
    assert all(e["resource"]["name"][0]["family"] != "Hiddleston" for e in found.get("entry", []))


async def test_reads_and_searches_are_audited(as_caller: Caller, audit_sink: Any) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")
    await trust.get(f"/Patient/{ids['open']}")
    await trust.get(f"/Patient/{ids['hidden']}")
    await trust.get("/Encounter")
    events = audit_sink.events
    outcomes = [e["outcome"] for e in events if e["action"] == "R"]
    assert "0" in outcomes and any(o != "0" for o in outcomes)
    assert any(e["action"] == "E" for e in events)


async def test_writes_are_stamped_with_the_writers_organisation_and_audited(as_caller: Caller, audit_sink: Any) -> None:
    await seed(as_caller("admin"))
    trust = as_caller("trust")
    claimed = {"system": "https://care-gateway.example.org/fhir/CodeSystem/source-organization", "code": "council-b"}
    made = await trust.post("/Patient", json={"resourceType": "Patient", "meta": {"tag": [claimed]}})
    assert made.status_code == 201
    tags = made.json()["meta"]["tag"]
    assert [t["code"] for t in tags if t["system"] == claimed["system"]] == ["trust-a"]  # no borrowed identity
    assert any(e["action"] == "C" and e["outcome"] == "0" for e in audit_sink.events)


async def test_an_organisation_sees_what_it_supplied_without_an_agreement(as_caller: Caller) -> None:
    await seed(as_caller("admin"))
    council = as_caller("council")
    # council scopes are read/search only, so the admin writes on its behalf with its tag
    tag = {"system": "https://care-gateway.example.org/fhir/CodeSystem/source-organization", "code": "council-b"}
    await as_caller("admin").post("/Patient", json={"resourceType": "Patient", "meta": {"tag": [tag]}})
    assert (await council.get("/Patient")).json()["total"] == 1


async def test_break_glass_reveals_audits_and_notifies_the_case_manager(as_caller: Caller, audit_sink: Any) -> None:
    admin = as_caller("admin")
    ids = await seed(admin)
    episode = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": f"Patient/{ids['hidden']}"},
        "careManager": {"reference": "Practitioner/cm-1"},
    }
    assert (await admin.post("/EpisodeOfCare", json=episode)).status_code == 201
    assert (await as_caller("trust").get(f"/Patient/{ids['hidden']}")).status_code == 404
    opened = await as_caller("btg").get(f"/Patient/{ids['hidden']}")
    assert opened.status_code == 200
    alerts = [e for e in audit_sink.events if any(t.get("code") == "110113" for t in [e["type"]])]
    assert alerts, "break-glass must be audited as a security alert"
    notes = (await admin.get(f"/Communication?patient={ids['hidden']}")).json()
    assert notes["total"] == 1
    note = notes["entry"][0]["resource"]
    assert note["recipient"] == [{"reference": "Practitioner/cm-1"}]
    assert "unconscious" in note["payload"][0]["contentString"]
    await as_caller("btg").get(f"/Patient/{ids['hidden']}")  # a second look in the same hour: no second note
    assert (await admin.get(f"/Communication?patient={ids['hidden']}")).json()["total"] == 1


async def _export(as_caller: Caller, services: Services, who: str) -> tuple[str, dict[str, Any], dict[str, set[str]]]:
    client = as_caller(who)
    kicked = await client.get("/$export", headers={"Prefer": "respond-async"})
    assert kicked.status_code == 202
    status_path = kicked.headers["content-location"].replace("http://testserver/fhir", "")
    exports_of(services).wait(status_path.rsplit("=", 1)[1], timeout=60)
    manifest = (await client.get(status_path)).json()
    exported: dict[str, set[str]] = {}
    for item in manifest["output"]:
        body = (await client.get(item["url"].replace("http://testserver/fhir", ""))).content
        exported[item["type"]] = {orjson.loads(line)["id"] for line in body.splitlines()}
        assert item["count"] == len(body.splitlines())  # counts are of what was written
    return status_path, manifest, exported


async def test_export_does_not_bypass_policy(as_caller: Caller, services: Services) -> None:
    ids = await seed(as_caller("admin"))
    _, _, council = await _export(as_caller, services, "council")
    assert not set().union(*council.values()) & set(ids.values())  # no agreement: nobody's data
    status_path, manifest, trust = await _export(as_caller, services, "trust")
    assert trust["Patient"] == {ids["open"]}
    assert trust["Encounter"] == {ids["enc-open"], ids["enc-labelled"]}
    assert ids["hidden"] not in str(trust) and ids["enc-hidden"] not in str(trust)
    # the status and the files are the trust client's alone
    other = as_caller("trust-2")
    assert (await other.get(status_path)).status_code == 404
    assert (await other.get(manifest["output"][0]["url"].replace("http://testserver/fhir", ""))).status_code == 404
