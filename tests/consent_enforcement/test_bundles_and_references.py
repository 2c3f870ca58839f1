"""Paths that reach resources through another one: batch entries and `$everything`'s references.

HAPI let the entries of a Bundle skip the consent hook (#6125) and `$everything` follow List and
Group links to other people's data (#5283). Here a batch's GET entries answer hidden resources
exactly like missing ones, and `$everything` brings only what the caller may see, whatever the
person's List, Group or CarePlan points at.
"""

from __future__ import annotations

from tests.consent_enforcement.test_leaks import Caller, seed


async def test_batch_reads_answer_hidden_like_missing(as_caller: Caller) -> None:
    ids = await seed(as_caller("admin"))
    trust = as_caller("trust")

    def entries(rid: str) -> list[dict[str, object]]:
        return [
            {"request": {"method": "GET", "url": f"Patient/{rid}"}},
            {"request": {"method": "GET", "url": f"Patient/{rid}/_history/1"}},
            {"request": {"method": "GET", "url": f"Patient?_id={rid}"}},
        ]

    hidden = await trust.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": entries(ids["hidden"])})
    missing = await trust.post("/", json={"resourceType": "Bundle", "type": "batch", "entry": entries("no-such-id")})
    assert hidden.status_code == missing.status_code == 200
    assert hidden.text.replace(ids["hidden"], "ID") == missing.text.replace("no-such-id", "ID").replace(
        missing.json()["entry"][2]["resource"]["meta"]["lastUpdated"],
        hidden.json()["entry"][2]["resource"]["meta"]["lastUpdated"],
    )
    assert "Hiddleston" not in hidden.text


async def test_everything_does_not_follow_links_to_hidden_resources(as_caller: Caller) -> None:
    admin = as_caller("admin")
    ids = await seed(admin)
    hidden_condition = {
        "resourceType": "Condition",
        "subject": {"reference": f"Patient/{ids['hidden']}"},
        "code": {"text": "hidden diagnosis"},
    }
    ids["cond-hidden"] = (await admin.post("/Condition", json=hidden_condition)).json()["id"]
    pointers = [
        {
            "resourceType": "List",
            "status": "current",
            "mode": "working",
            "subject": {"reference": f"Patient/{ids['open']}"},
            "entry": [
                {"item": {"reference": f"Encounter/{ids['enc-hidden']}"}},
                {"item": {"reference": f"Patient/{ids['hidden']}"}},
            ],
        },
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": f"Patient/{ids['open']}"},
            "addresses": [{"reference": f"Condition/{ids['cond-hidden']}"}],
        },
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{ids['hidden']}"}}],
        },
    ]
    for body in pointers:
        assert (await admin.post(f"/{body['resourceType']}", json=body)).status_code == 201
    everything = await as_caller("trust").get(f"/Patient/{ids['open']}/$everything")
    assert everything.status_code == 200
    returned = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in everything.json()["entry"]}
    assert ("List", next(i for t, i in returned if t == "List")) in returned  # the pointer itself is the person's
    for hidden in (("Encounter", ids["enc-hidden"]), ("Patient", ids["hidden"]), ("Condition", ids["cond-hidden"])):
        assert hidden not in returned
    assert "hidden diagnosis" not in everything.text and "Hiddleston" not in everything.text
