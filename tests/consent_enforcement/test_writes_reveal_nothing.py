"""Writes never touch, nor reveal, what the caller's reads would hide.

Conditional create, update and delete, conditional references in a transaction, and updates and
deletes by id all start by finding something; each finds only what the caller may see. A
conditional create whose criteria matched someone the caller may not see used to answer 200 with
that resource's content, and a conditional update by NHS number answered 200 or 201 depending on
whether a hidden person with that number existed.
"""

from __future__ import annotations

from typing import Any

from tests.consent_enforcement.test_leaks import Caller, seed

NHS = "https://fhir.nhs.uk/Id/nhs-number"
HIDDEN_NHS = "9990000018"


async def seed_with_identifier(as_caller: Caller) -> dict[str, str]:
    admin = as_caller("admin")
    ids = await seed(admin)
    hidden = (await admin.get(f"/Patient/{ids['hidden']}")).json()
    hidden["identifier"] = [{"system": NHS, "value": HIDDEN_NHS}]
    assert (await admin.put(f"/Patient/{ids['hidden']}", json=hidden)).status_code == 200
    return ids


async def unchanged(as_caller: Caller, ref: str, family: str | None = "Hiddleston") -> None:
    current = await as_caller("admin").get(f"/{ref}")
    assert current.status_code == 200, f"{ref} must still be there"
    if family is not None:
        assert current.json()["name"][0]["family"] == family


async def test_conditional_create_never_returns_a_hidden_match(as_caller: Caller) -> None:
    ids = await seed_with_identifier(as_caller)
    trust = as_caller("trust")
    made = await trust.post(
        "/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": NHS, "value": HIDDEN_NHS}]},
        headers={"If-None-Exist": f"identifier={NHS}|{HIDDEN_NHS}"},
    )
    assert made.status_code == 201  # for this caller nothing matched: its own new record
    assert made.json()["id"] != ids["hidden"] and "Hiddleston" not in made.text
    by_id = await trust.post(
        "/Encounter",
        json={"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}},
        headers={"If-None-Exist": f"_id={ids['enc-hidden']}"},
    )
    assert by_id.status_code == 201 and by_id.json()["id"] != ids["enc-hidden"]
    visible = await trust.post(
        "/Encounter",
        json={"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}},
        headers={"If-None-Exist": f"_id={ids['enc-open']}"},
    )
    assert visible.status_code == 200 and visible.json()["id"] == ids["enc-open"]


async def test_conditional_update_and_delete_see_only_visible_matches(as_caller: Caller) -> None:
    ids = await seed_with_identifier(as_caller)
    trust = as_caller("trust")
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Overwritten"}],
        "identifier": [{"system": NHS, "value": HIDDEN_NHS}],
    }
    updated = await trust.put(f"/Patient?identifier={NHS}|{HIDDEN_NHS}", json=body)
    assert updated.status_code == 201 and updated.json()["id"] != ids["hidden"]
    await unchanged(as_caller, f"Patient/{ids['hidden']}")
    deleted = await trust.delete(f"/Patient?identifier={NHS}|{HIDDEN_NHS}&family=Hiddleston")
    assert deleted.status_code == 204
    await unchanged(as_caller, f"Patient/{ids['hidden']}")


async def test_update_by_id_of_a_hidden_resource_is_refused_without_a_trace_of_it(
    as_caller: Caller, audit_sink: Any
) -> None:
    ids = await seed_with_identifier(as_caller)
    trust = as_caller("trust")
    body = {"resourceType": "Patient", "id": ids["hidden"], "name": [{"family": "Overwritten"}]}
    refused = await trust.put(f"/Patient/{ids['hidden']}", json=body)
    assert refused.status_code == 409
    assert "Hiddleston" not in refused.text and "versionId" not in refused.text
    pinned = await trust.put(f"/Patient/{ids['hidden']}", json=body, headers={"If-Match": 'W/"9"'})
    assert pinned.status_code == 409  # the version check would tell the current version: not reached
    await unchanged(as_caller, f"Patient/{ids['hidden']}")
    refusals = [e for e in audit_sink.events if e["action"] == "U" and e["outcome"] != "0"]
    assert refusals, "a refused update is audited"
    mine = await trust.put(
        f"/Patient/{ids['open']}", json={"resourceType": "Patient", "id": ids["open"], "name": [{"family": "Open"}]}
    )
    assert mine.status_code == 200  # what the caller may see, it may change


async def test_delete_by_id_of_a_hidden_resource_answers_like_a_missing_one(as_caller: Caller) -> None:
    ids = await seed_with_identifier(as_caller)
    trust = as_caller("trust")
    hidden = await trust.delete(f"/Patient/{ids['hidden']}")
    missing = await trust.delete("/Patient/no-such-id")
    assert hidden.status_code == missing.status_code == 204
    assert hidden.headers.get("etag") is None and missing.headers.get("etag") is None
    await unchanged(as_caller, f"Patient/{ids['hidden']}")


async def test_transactions_resolve_only_to_visible_resources(as_caller: Caller) -> None:
    ids = await seed_with_identifier(as_caller)
    trust = as_caller("trust")
    conditional_reference = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "request": {"method": "POST", "url": "Encounter"},
                "resource": {
                    "resourceType": "Encounter",
                    "status": "planned",
                    "class": {"code": "AMB"},
                    "subject": {"reference": f"Patient?identifier={NHS}|{HIDDEN_NHS}"},
                },
            }
        ],
    }
    hidden_ref = await trust.post("/", json=conditional_reference)
    conditional_reference["entry"][0]["resource"]["subject"]["reference"] = f"Patient?identifier={NHS}|9990000026"
    missing_ref = await trust.post("/", json=conditional_reference)
    assert hidden_ref.status_code == missing_ref.status_code == 404
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={NHS}|{HIDDEN_NHS}"},
                "resource": {"resourceType": "Patient", "identifier": [{"system": NHS, "value": HIDDEN_NHS}]},
            },
            {
                "request": {"method": "PUT", "url": f"Patient/{ids['hidden']}"},
                "resource": {"resourceType": "Patient", "id": ids["hidden"], "name": [{"family": "Overwritten"}]},
            },
            {"request": {"method": "DELETE", "url": f"Encounter/{ids['enc-hidden']}"}},
        ],
    }
    answered = (await trust.post("/", json=batch)).json()["entry"]
    assert answered[0]["response"]["status"].startswith("201")
    assert answered[0]["resource"]["id"] != ids["hidden"]
    assert answered[1]["response"]["status"] == "409" and "Hiddleston" not in str(answered[1])
    assert answered[2]["response"]["status"].startswith("204") and "etag" not in answered[2]["response"]
    await unchanged(as_caller, f"Patient/{ids['hidden']}")
    await unchanged(as_caller, f"Encounter/{ids['enc-hidden']}", family=None)
